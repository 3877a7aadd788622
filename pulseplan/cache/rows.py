"""A read-through Redis cache of connection rows, in front of any :class:`Storage`.

What is cached: the results of ``get_connection`` and ``list_connections`` (the API's reads),
for ``REDIS_CACHE_TTL`` seconds (300). These are storage rows, so the token fields are
*ciphertext*; the storage layer never sees a plaintext token and this module cannot decrypt
(it does not import the cipher). A row whose token fields are not ciphertext envelopes is never
cached (:func:`~pulseplan.cache.rowcodec.holds_ciphertext`). ``get_connection_by_id``, which
refresh decisions and background jobs use, is never cached: it always reads the database.

Layout: one Redis hash per user, ``{prefix}conns:{sha256(user_id)[:32]}`` (no user id in key
names), with a field ``gen`` (a random generation token) and one field per cached read
(``get:{provider}``, ``list``) holding ``{gen}|{json}``. The hash gets its TTL when it is created
and keeps it, so no entry is older than the TTL.

* A read is one ``HMGET gen field``; an entry counts only if it carries the current ``gen``.
* A miss reads the database and fills with a Lua script that writes only if ``gen`` is still
  the one seen before the database read. A write that invalidated in between changed ``gen``, so
  a reader holding a pre-write row can never store it (the classic cache-fill race).
* Every write that touches a user's connections (upsert, update, delete, claims, claim release)
  invalidates *after* the database write, in a ``finally`` (an error may hide a committed write):
  ``DEL`` the hash, then create it again with a fresh ``gen`` and a full TTL, in one transaction.
  Updates by id learn the user id from the returned row (or an id -> user map of rows seen).

Redis unreachable: reads go to the database (no cache) and writes still succeed. An
invalidation that failed leaves a possibly stale entry in Redis, so this process then

1. serves nothing from the cache until ``TTL + fill budget`` seconds after the failure (any
   Redis error in this process, from any component, starts that window): every entry that could
   predate the write has expired by then, because entries never outlive their hash's TTL and
   fills are dropped when the database read took longer than the fill budget;
2. remembers the users whose invalidation failed and replays the invalidation as soon as Redis
   answers again (on the next cache call or health check), before others read the stale entries.

Limits (documented in .env.example): another process that never saw a Redis error may
serve such a user's pre-write row until this process's replay succeeds or the TTL ends, whichever
comes first. That needs a Redis this process could not reach while the other could (partition)
or a short outage with no traffic in the other process. Such a row is still ciphertext of a real
grant and refresh decisions never use it (they read by id from the database); the worst case is
a connection list up to one TTL out of date. The replay list is bounded (10,000 users); beyond
that only the TTL bounds it. A process that dies with pending invalidations loses them (TTL again).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable
from collections.abc import Sequence
from contextlib import suppress
from datetime import datetime
from functools import partial
from typing import Any

from loguru import logger
from redis.asyncio import Redis

from pulseplan.cache import rowcodec
from pulseplan.cache.client import RedisClient
from pulseplan.cache.client import RedisUnavailable
from pulseplan.cache.delegate import DelegatingStorage
from pulseplan.cache.locks import ttl_ms
from pulseplan.observability import metrics
from pulseplan.storage.base import Storage
from pulseplan.storage.models import Connection
from pulseplan.storage.models import NewConnection

#: Provider names worth a hash field; anything else is read from the database uncached.
PROVIDER = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
LIST_FIELD = "list"
MAX_PENDING = 10_000
MAX_OWNERS = 50_000
INVALIDATE_CHUNK = 500

#: KEYS[1] user hash; ARGV: generation seen before the database read ('' = none), field,
#: value, a fresh generation (used when the hash does not exist), TTL in ms.
FILL = """
local gen = redis.call('HGET', KEYS[1], 'gen')
if gen == false then
  if ARGV[1] ~= '' then return 0 end
  gen = ARGV[4]
  redis.call('HSET', KEYS[1], 'gen', gen)
elseif gen ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[2], gen .. '|' .. ARGV[3])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return 1
"""


class CachedStorage(DelegatingStorage):
    """Delegates everything to ``inner``; caches the two per-user reads in Redis.

    Counters for metrics (see :meth:`stats`): :attr:`hits`, :attr:`misses`, :attr:`bypassed`
    (reads sent to the database because Redis was unusable or recently failed),
    :attr:`refused` (rows not cached because a token field was not ciphertext),
    :attr:`invalidation_failures`.

    :param ciphertext_only: refuse to cache rows whose token fields are not ciphertext envelopes
        (keep on; tests of the storage contract, whose rows hold placeholders, turn it off).
    :param fill_budget: a database read slower than this (seconds) is not cached.
    """

    def __init__(
        self,
        inner: Storage,
        client: RedisClient,
        *,
        ttl: float = 300.0,
        ciphertext_only: bool = True,
        fill_budget: float = 1.0,
    ):
        super().__init__(inner)
        self.client = client
        self.ttl = ttl
        self.ciphertext_only = ciphertext_only
        self.fill_budget = fill_budget
        self.hits = 0
        self.misses = 0
        self.bypassed = 0
        self.refused = 0
        self.invalidation_failures = 0
        self._bypass_until = 0.0
        self._pending: set[str] = set()
        self._owners: OrderedDict[str, str] = OrderedDict()

    def __repr__(self) -> str:
        return f"CachedStorage({self.inner.name}, {self.client!r})"

    def key(self, user_id: str) -> str:
        """The user's cache hash (a digest: no user ids in Redis key names)."""
        return self.client.key("conns", hashlib.sha256(user_id.encode()).hexdigest()[:32])

    # ------------------------------------------------------------------ cache state

    def _quiet(self) -> bool:
        """No Redis trouble recent enough for a stale entry to survive in Redis."""
        now = time.monotonic()
        last = self.client.last_error_at
        if last is not None and now - last < self.ttl + self.fill_budget:
            return False
        return now >= self._bypass_until and self.client.available

    @property
    def paused(self) -> bool:
        """Reads bypass the cache now (Redis unusable, or trouble within the last TTL)."""
        return not self._quiet() or bool(self._pending)

    async def _cache_ready(self) -> bool:
        if self._pending and self.client.available:
            await self.flush_pending()
        return self._quiet() and not self._pending

    async def flush_pending(self) -> bool:
        """Replay invalidations that failed during an outage; ``True`` when none are left."""
        if not self._pending:
            return True
        users = list(self._pending)
        try:
            for start in range(0, len(users), INVALIDATE_CHUNK):
                chunk = users[start : start + INVALIDATE_CHUNK]
                await self.client.run(partial(self._invalidation, users=chunk))
                self._pending.difference_update(chunk)
        except RedisUnavailable:
            return False
        logger.info("replayed cache invalidations for {} user(s) after a Redis outage", len(users))
        return True

    def _remember(self, rows: Iterable[Connection | None]) -> None:
        # user_id never changes for a connection id, so this map is never wrong, only partial.
        for row in rows:
            if row is None:
                continue
            self._owners[row.id] = row.user_id
            self._owners.move_to_end(row.id)
        while len(self._owners) > MAX_OWNERS:
            self._owners.popitem(last=False)

    # ------------------------------------------------------------------ invalidation

    async def _invalidation(self, redis: Redis, users: Sequence[str]) -> None:
        async with redis.pipeline(transaction=True) as pipe:
            for user_id in users:
                key = self.key(user_id)
                pipe.delete(key)
                pipe.hset(key, "gen", secrets.token_hex(8))
                pipe.pexpire(key, ttl_ms(self.ttl))
            await pipe.execute()

    async def _invalidate(self, users: Iterable[str]) -> None:
        distinct = sorted(set(users))
        if not distinct:
            return
        try:
            await self.client.run(lambda r: self._invalidation(r, distinct))
        except RedisUnavailable:
            self._invalidation_failed(distinct)

    def _invalidation_failed(self, users: Sequence[str]) -> None:
        self.invalidation_failures += 1
        self._bypass_until = time.monotonic() + self.ttl + self.fill_budget
        room = MAX_PENDING - len(self._pending)
        self._pending.update(users[: max(room, 0)])
        if len(users) > room:
            logger.warning(
                "cache invalidation backlog full; other workers may serve rows up to {:g}s old",
                self.ttl,
            )

    async def _invalidate_by_id(self, connection_id: str) -> None:
        """Invalidate after a write whose outcome (and row) is unknown."""
        user_id = self._owners.get(connection_id)
        if user_id is None:
            try:
                row = await self.inner.get_connection_by_id(connection_id)
            except Exception:
                # Nobody to invalidate by name: stop trusting this process's cache instead.
                self._bypass_until = time.monotonic() + self.ttl + self.fill_budget
                return
            if row is None:
                return
            user_id = row.user_id
        await self._invalidate([user_id])

    # ------------------------------------------------------------------ cached reads

    async def _lookup(self, user_id: str, field: str) -> tuple[bool, bytes | None, str | None]:
        """``(usable, generation, cached text)``; ``usable`` is False when Redis is not."""
        if not await self._cache_ready():
            return False, None, None
        key = self.key(user_id)
        try:
            gen, raw = await self.client.run(lambda r: r.hmget(key, ["gen", field]))
        except RedisUnavailable:
            return False, None, None
        gen, raw = _bytes(gen), _bytes(raw)
        if gen is not None and raw is not None and raw.startswith(gen + b"|"):
            return True, gen, raw[len(gen) + 1 :].decode()
        return True, gen, None

    async def _fill(
        self,
        user_id: str,
        gen: bytes | None,
        field: str,
        text: str,
        rows: Sequence[Connection | None],
        started: float,
    ) -> None:
        if time.monotonic() - started > self.fill_budget:
            return  # the row may predate a write whose invalidation we did not see
        if self.ciphertext_only and not all(
            r is None or rowcodec.holds_ciphertext(r) for r in rows
        ):
            self.refused += 1
            logger.warning(
                "a connection row holds a token field that is not ciphertext; not cached"
            )
            return
        args: list[str | int] = [
            "" if gen is None else gen.decode(),
            field,
            text,
            secrets.token_hex(8),
            ttl_ms(self.ttl),
        ]
        # A failure was logged by the client, and the next reads bypass the cache.
        with suppress(RedisUnavailable):
            await self.client.script(FILL, [self.key(user_id)], args)

    async def get_connection(self, user_id: str, provider: str) -> Connection | None:
        if not PROVIDER.fullmatch(provider):
            return await self.inner.get_connection(user_id, provider)  # not a name worth caching
        field = f"get:{provider}"
        usable, gen, text = await self._lookup(user_id, field)
        if text is not None:
            try:
                cached = rowcodec.load_row(text)
            except (ValueError, KeyError, TypeError):
                cached = None
            else:
                if cached is None or (cached.user_id, cached.provider) == (user_id, provider):
                    self.hits += 1
                    metrics.cache_hit("connections")
                    return cached
        started = time.monotonic()
        row = await self.inner.get_connection(user_id, provider)
        self._remember([row])
        if not usable:
            self.bypassed += 1
            return row
        self.misses += 1
        metrics.cache_miss("connections")
        await self._fill(user_id, gen, field, rowcodec.dump_row(row), [row], started)
        return row

    async def list_connections(self, user_id: str) -> list[Connection]:
        usable, gen, text = await self._lookup(user_id, LIST_FIELD)
        if text is not None:
            try:
                cached = rowcodec.load_rows(text)
            except (ValueError, KeyError, TypeError):
                pass
            else:
                if all(row.user_id == user_id for row in cached):
                    self.hits += 1
                    metrics.cache_hit("connections")
                    return cached
        started = time.monotonic()
        rows = await self.inner.list_connections(user_id)
        self._remember(rows)
        if not usable:
            self.bypassed += 1
            return rows
        self.misses += 1
        metrics.cache_miss("connections")
        await self._fill(user_id, gen, LIST_FIELD, rowcodec.dump_rows(rows), rows, started)
        return rows

    async def get_connection_by_id(self, connection_id: str) -> Connection | None:
        """Always the database: refresh decisions must see the authoritative row."""
        row = await self.inner.get_connection_by_id(connection_id)
        self._remember([row])
        return row

    # ------------------------------------------------------------------ writes (invalidate)

    async def upsert_connection(self, new: NewConnection) -> tuple[Connection, bool]:
        try:
            row, created = await self.inner.upsert_connection(new)
        finally:
            await self._invalidate([new.user_id])
        self._remember([row])
        return row, created

    async def update_connection(
        self, connection_id: str, expected_version: int, **changes: Any
    ) -> Connection | None:
        try:
            row = await self.inner.update_connection(connection_id, expected_version, **changes)
        except BaseException:
            await self._invalidate_by_id(connection_id)
            raise
        if row is not None:  # None: fenced out or gone, nothing was written
            self._remember([row])
            await self._invalidate([row.user_id])
        return row

    async def delete_connection(self, user_id: str, provider: str) -> Connection | None:
        try:
            return await self.inner.delete_connection(user_id, provider)
        finally:
            await self._invalidate([user_id])

    async def claim_due_connections(
        self,
        *,
        now: datetime,
        horizon: datetime,
        limit: int,
        owner: str,
        lease_seconds: float,
    ) -> list[Connection]:
        # The claim columns are not part of a Connection, so a failed claim leaves no cached
        # field stale; a successful one still invalidates, as every write does.
        rows = await self.inner.claim_due_connections(
            now=now, horizon=horizon, limit=limit, owner=owner, lease_seconds=lease_seconds
        )
        self._remember(rows)
        await self._invalidate(row.user_id for row in rows)
        return rows

    async def release_claim(self, connection_id: str, owner: str) -> None:
        try:
            await self.inner.release_claim(connection_id, owner)
        finally:
            # Claims came through here, so the owner is known; an unknown id needs no lookup
            # for the same reason as above (claim columns are not cached).
            user_id = self._owners.get(connection_id)
            if user_id is not None:
                await self._invalidate([user_id])

    # ------------------------------------------------------------------ metrics

    def stats(self) -> dict[str, int]:
        """Counters for metrics."""
        return {
            "hits": self.hits,
            "misses": self.misses,
            "bypassed": self.bypassed,
            "refused": self.refused,
            "invalidation_failures": self.invalidation_failures,
            "pending_invalidations": len(self._pending),
        }


def _bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value
