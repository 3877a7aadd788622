"""The shared backend: one Redis sorted set per subject, updated by one Lua script.

Members are ``{now_ms}-{random}`` scored by ``now_ms``, so requests in the same millisecond (or
from several workers at once) all count. Time is passed in by the caller (``ARGV``) rather than
read inside the script: scripts stay deterministic (replication, Upstash) and tests can move the
clock. Workers must therefore keep their clocks in sync (NTP); skew between workers shifts the
window edge by the skew, nothing worse.

The script only touches ``KEYS[1]`` and uses only ZREMRANGEBYSCORE, ZCARD, ZADD, ZRANGE and
PEXPIRE (a small command set that Upstash and every Redis >= 2.6 support). Every call sets
``PEXPIRE window + 1 s`` so an idle subject's key disappears on its own.
"""

from __future__ import annotations

import secrets

from pulseplan.cache.client import RedisClient
from pulseplan.cache.client import RedisUnavailable
from pulseplan.web.ratelimit.backends import BackendUnavailable
from pulseplan.web.ratelimit.backends import Window
from pulseplan.web.ratelimit.policy import Limit

# ARGV: now_ms, window_ms, limit, unique member, record ("1": count this request if allowed).
# Returns {allowed (0/1), count in window, score of the oldest counted request or now}.
SLIDING_WINDOW_LOG = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local allowed = 0
if count < limit then
  allowed = 1
  if ARGV[5] == '1' then
    redis.call('ZADD', key, now, ARGV[4])
    count = count + 1
  end
end
local oldest = now
if count > 0 then
  oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
end
redis.call('PEXPIRE', key, window + 1000)
return {allowed, count, oldest}
"""


class RedisBackend:
    """Sliding-window log in Redis, exact across every worker sharing it.

    :param client: the app's :class:`~pulseplan.cache.client.RedisClient` (pooled, with a
        circuit breaker: after a failure, calls fail fast for ``REDIS_RETRY_INTERVAL``).
    """

    name = "redis"

    def __init__(self, client: RedisClient, *, owned: bool = False) -> None:
        self.client = client
        self._owned = owned

    async def hit(self, key: str, limit: Limit, now_ms: int, *, record: bool = True) -> Window:
        member = f"{now_ms}-{secrets.token_hex(8)}"
        args: list[str | int] = [now_ms, limit.window_ms, limit.count, member, int(record)]
        try:
            allowed, count, oldest = await self.client.script(SLIDING_WINDOW_LOG, [key], args)
        except RedisUnavailable as exc:
            raise BackendUnavailable(str(exc)) from None
        return Window(bool(int(allowed)), int(count), int(oldest))

    async def aclose(self) -> None:
        # A client shared with other layers is closed by its owner, not here.
        if self._owned:
            await self.client.close()
