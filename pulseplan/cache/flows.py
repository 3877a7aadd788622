"""Pending OAuth flow state in Redis, with the database as the fallback.

A flow is written once and taken once (DESIGN.md §6.4: single use, expiring in minutes).

* ``put_flow``: ``SET pulseplan:flow:{key} {expires}|{payload} PX {ms until expiry}``; the key is
  already a SHA-256 of the state (``oauth.flows.flow_key``), so Redis never holds a usable state.
* ``take_flow``: ``GETDEL`` (Redis >= 6.2; Upstash has it), one atomic command, so of any number
  of concurrent callbacks with the same state exactly one gets the payload. The stored expiry is
  checked against the caller's ``now`` as well, so the result never depends on how promptly
  Redis expires keys.

When Redis is unreachable, flows go to the fallback store (the database). A flow written to the
database cannot be found in Redis, and one written to Redis cannot be found in the database, so:
write to Redis when it is up, else to the database; take from Redis first, then from the
database. Each flow lives in exactly one place, so the take stays single-use. The price: a state
that Redis does not know (used, expired, forged, or written during an outage) costs one database
query, which is the same query every callback costs without Redis.

"Up" and "down" must be certain for that. A SET that fails after it was sent (a timeout) may
have been applied, so its key is never written to the database as well: ``put_flow`` raises
:class:`~pulseplan.errors.FlowWriteUncertain` and the flow service retries under a new random
state (the old one was never handed out, so a half-written copy is unreachable). By then the
client counts Redis as down, and the retry goes straight to the database without touching Redis.

A flow written to Redis is unavailable while Redis is (the callback arrives during an outage)
and lost if Redis restarts without persistence: the user sees "unknown, used or expired state"
and starts again. That is the safe failure; a state is never accepted twice.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import TYPE_CHECKING

from pulseplan.cache.client import RedisClient
from pulseplan.cache.client import RedisUnavailable
from pulseplan.errors import FlowWriteUncertain
from pulseplan.storage.models import utcnow

if TYPE_CHECKING:
    from pulseplan.oauth.flows import FlowStore


class RedisFlowStore:
    """:class:`~pulseplan.oauth.flows.FlowStore` on Redis, falling back to ``fallback``.

    Counters for metrics: :attr:`fallback_puts` and :attr:`fallback_takes` (calls that used the
    fallback store because Redis was unreachable).
    """

    def __init__(self, client: RedisClient, fallback: FlowStore):
        self.client = client
        self.fallback = fallback
        self.fallback_puts = 0
        self.fallback_takes = 0

    def _key(self, key: str) -> str:
        return self.client.key("flow", key)

    async def put_flow(self, key: str, payload: str, expires_at: datetime) -> None:
        """Store a pending flow until ``expires_at`` (Redis when up, else the fallback).

        :raises FlowWriteUncertain: the SET was sent and failed; Redis may hold it.
        """
        ms = int((expires_at - utcnow()).total_seconds() * 1000)
        if ms <= 0:
            return  # already expired: nobody could take it, so there is nothing to keep
        if self.client.down or not self.client.available:
            # Known down: nothing is sent to Redis, so the database holds the only copy.
            self.fallback_puts += 1
            await self.fallback.put_flow(key, payload, expires_at)
            return
        value = f"{expires_at.timestamp():.6f}|{payload}"
        try:
            await self.client.run(lambda r: r.set(self._key(key), value, px=ms))
        except RedisUnavailable as exc:
            raise FlowWriteUncertain(f"Redis SET failed ({exc})") from None

    async def take_flow(self, key: str, now: datetime) -> str | None:
        """Atomically remove and return an unexpired flow from Redis, else from the fallback."""
        try:
            raw = await self.client.run(lambda r: r.getdel(self._key(key)))
        except RedisUnavailable:
            self.fallback_takes += 1
            raw = None
        if raw is None:
            # Not in Redis: it may have been stored while Redis was unreachable.
            return await self.fallback.take_flow(key, now)
        expires, _, payload = _text(raw).partition("|")
        try:
            expired = datetime.fromtimestamp(float(expires), UTC) <= now
        except (ValueError, OverflowError):
            return None  # not a value this module wrote: treat as unknown
        if expired:
            return None  # taken (so gone) but expired: same answer as the database store
        return payload

    def stats(self) -> dict[str, int]:
        """Counters for metrics."""
        return {"fallback_puts": self.fallback_puts, "fallback_takes": self.fallback_takes}


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
