"""Refresh locks with Redis in front of the database lock table.

:class:`RedisLocks` is the textbook single-instance Redis lease (the ``SET`` command docs):
acquire is ``SET key owner NX PX ttl``; release and extend run in Lua and act only when the key
still holds the caller's owner token, so a holder whose lease lapsed cannot release or extend
the next owner's lock (Nango #2858).

:class:`LayeredLocks` is what the app uses, and the design choice is deliberate: **the storage
lock (the database lock table, on SQLite and PostgreSQL) is always taken and is the real mutual
exclusion; the Redis lock in front of it is only an optimisation.**

Why not Redis alone, falling back to the database when Redis is down? Because "Redis is down"
is not a global fact. Worker A may reach Redis while worker B cannot (a partition, a DNS blip,
B's breaker still open), or Redis may restart and lose its keys while A holds a lock. With a
Redis-only lock, A would hold the lock in Redis and B the one in the database, and both would
refresh the same connection: with a rotating refresh token, the second refresh uses a rotated-out
token, gets ``invalid_grant`` and can revoke the whole grant family (RFC 9700 §4.14.2). The
``version`` fence still keeps the row consistent, but it cannot un-send a refresh request. A
worker that cannot see Redis must still exclude the others, so the lock every worker agrees on
has to live where every worker must be able to write anyway: the database.

What Redis adds in front:

* waiting is cheap: while another owner holds ``refresh:{id}``, a waiter's poll is a Redis
  ``SET NX`` answered "busy", not a database write;
* the database sees one lock write per refresh instead of one per waiter poll.

Order of operations: Redis first (busy -> answer busy at once, no database write), then the
storage lock; when the storage lock is busy (held by a worker that could not see Redis, or a
lease Redis forgot in a restart) the Redis lock is given back immediately so it does not make
others wait for nothing. Release goes in the reverse order. When Redis is unreachable the Redis
step is skipped (logged once per outage by the client, counted in :attr:`LayeredLocks.skipped`)
and the storage lock alone decides, so exclusion never depends on Redis.

Alternatives considered: a Redis-only lock with a database fallback (unsafe, above); Redlock
(several Redis masters; still a lease without fencing, and not available on Upstash); a
PostgreSQL advisory lock (session-level ones break under transaction pooling, and
``pg_advisory_xact_lock`` would hold a pooled connection across the provider call). A possible
improvement that keeps this safety: pub/sub wake-ups on release so waiters stop polling at all.
"""

from __future__ import annotations

from pulseplan.cache.client import RedisClient
from pulseplan.cache.client import RedisUnavailable
from pulseplan.locks import LockManager

#: Delete the key only if it still holds our owner token.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

#: Reset the lease only if the key still holds our owner token.
EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


def ttl_ms(ttl: float) -> int:
    """A lease in whole milliseconds, at least 1 (``PX 0`` is an error)."""
    return max(1, round(ttl * 1000))


class RedisLocks:
    """:class:`~pulseplan.locks.LockManager` on Redis (one instance, owner-checked in Lua).

    :raises RedisUnavailable: from every method when Redis cannot be used.
    """

    def __init__(self, client: RedisClient):
        self.client = client

    def _key(self, name: str) -> str:
        return self.client.key("lock", name)

    async def acquire(self, name: str, owner: str, ttl: float) -> bool:
        key, px = self._key(name), ttl_ms(ttl)
        result = await self.client.run(lambda r: r.set(key, owner, nx=True, px=px))
        return bool(result)

    async def extend(self, name: str, owner: str, ttl: float) -> bool:
        result = await self.client.script(EXTEND, [self._key(name)], [owner, ttl_ms(ttl)])
        return bool(result)

    async def release(self, name: str, owner: str) -> bool:
        result = await self.client.script(RELEASE, [self._key(name)], [owner])
        return bool(result)


class LayeredLocks:
    """Redis lock in front of the storage lock; the storage lock always decides.

    Counters for metrics: :attr:`skipped` (calls that went to the database alone because Redis
    was unreachable) and :attr:`busy_in_redis` (waits answered by Redis, saving a database write).
    """

    def __init__(self, redis: RedisLocks, storage_locks: LockManager):
        self.redis = redis
        self.storage = storage_locks
        self.skipped = 0
        self.busy_in_redis = 0

    async def acquire(self, name: str, owner: str, ttl: float) -> bool:
        try:
            in_redis = await self.redis.acquire(name, owner, ttl)
        except RedisUnavailable:
            self.skipped += 1
            return await self.storage.acquire(name, owner, ttl)
        if not in_redis:
            # Someone holds it (or held it within its lease): wait without a database write.
            self.busy_in_redis += 1
            return False
        try:
            acquired = await self.storage.acquire(name, owner, ttl)
        except BaseException:
            await self._release_redis(name, owner)
            raise
        if not acquired:
            # Held in the database by a worker that went around Redis: give Redis back at once.
            await self._release_redis(name, owner)
        return acquired

    async def extend(self, name: str, owner: str, ttl: float) -> bool:
        extended = await self.storage.extend(name, owner, ttl)
        if extended:
            try:
                await self.redis.extend(name, owner, ttl)
            except RedisUnavailable:
                self.skipped += 1
        return extended

    async def release(self, name: str, owner: str) -> bool:
        try:
            released = await self.storage.release(name, owner)
        finally:
            await self._release_redis(name, owner)
        return released

    async def _release_redis(self, name: str, owner: str) -> None:
        try:
            await self.redis.release(name, owner)
        except RedisUnavailable:
            # The key expires with its lease; until then waiters poll Redis and the lease()
            # helper re-reads the row between polls, so nobody waits on it for long.
            self.skipped += 1

    def stats(self) -> dict[str, int]:
        """Counters for metrics."""
        return {"skipped": self.skipped, "busy_in_redis": self.busy_in_redis}
