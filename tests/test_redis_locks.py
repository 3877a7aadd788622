"""Redis refresh locks: owner rules in Lua, and the database lock staying the real exclusion."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pulseplan.cache.locks import LayeredLocks
from pulseplan.cache.locks import RedisLocks
from pulseplan.locks import StorageLocks
from pulseplan.locks import lease
from pulseplan.storage.models import utcnow
from pulseplan.storage.sqlite import SQLiteStorage
from tests.redis_kit import TrackedClient
from tests.redis_kit import down_client
from tests.redis_kit import live_client
from tests.redis_kit import raw_redis

pytestmark = pytest.mark.redis


@pytest.fixture
async def client() -> AsyncIterator[TrackedClient]:
    async with live_client() as c:
        yield c


@pytest.fixture
async def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "locks.db")


@pytest.fixture
async def storage(db_path: str) -> AsyncIterator[SQLiteStorage]:
    backend = SQLiteStorage(db_path)
    await backend.open()
    await backend.migrate()
    yield backend
    await backend.close()


async def test_second_owner_is_blocked_and_non_owners_change_nothing(
    client: TrackedClient,
) -> None:
    locks = RedisLocks(client)
    assert await locks.acquire("refresh:1", "A", 30)
    assert not await locks.acquire("refresh:1", "B", 30)
    assert not await locks.release("refresh:1", "B")
    assert not await locks.extend("refresh:1", "B", 30)
    redis = raw_redis()
    try:
        assert await redis.get(client.key("lock", "refresh:1")) == b"A"
        ttl = await redis.pttl(client.key("lock", "refresh:1"))
        assert 0 < ttl <= 30_000
        assert await locks.extend("refresh:1", "A", 60)
        assert await redis.pttl(client.key("lock", "refresh:1")) > 30_000
    finally:
        await redis.aclose()
    assert await locks.release("refresh:1", "A")
    assert await locks.acquire("refresh:1", "B", 30)
    assert await locks.release("refresh:1", "B")


async def test_an_expired_lease_lets_another_owner_in_and_the_stale_holder_is_powerless(
    client: TrackedClient,
) -> None:
    locks = RedisLocks(client)
    key = client.key("lock", "refresh:2")
    assert await locks.acquire("refresh:2", "A", 30)
    redis = raw_redis()
    try:
        await redis.delete(key)  # A's lease runs out (what PX does after 30 s)
        assert await locks.acquire("refresh:2", "B", 30)
        # A, paused past its lease, wakes up: it can neither extend nor release B's lock.
        assert not await locks.extend("refresh:2", "A", 30)
        assert not await locks.release("refresh:2", "A")
        assert await redis.get(key) == b"B"
    finally:
        await redis.aclose()
    assert not await locks.acquire("refresh:2", "C", 30)
    assert await locks.release("refresh:2", "B")


async def test_a_one_millisecond_lease_is_set_in_milliseconds(client: TrackedClient) -> None:
    locks = RedisLocks(client)
    assert await locks.acquire("refresh:ms", "A", 0.001)
    redis = raw_redis()
    try:
        assert await redis.pttl(client.key("lock", "refresh:ms")) <= 1
    finally:
        await redis.aclose()


async def test_fifty_concurrent_acquirers_exactly_one_wins(client: TrackedClient) -> None:
    locks = RedisLocks(client)
    results = await asyncio.gather(
        *(locks.acquire("refresh:race", f"owner-{i}", 30) for i in range(50))
    )
    assert results.count(True) == 1


async def test_layered_lock_with_redis_unreachable_still_excludes_via_the_database(
    db_path: str, storage: SQLiteStorage, logs: list[str]
) -> None:
    other = SQLiteStorage(db_path)  # a second worker's handle on the same database
    await other.open()
    first = LayeredLocks(RedisLocks(down_client()), StorageLocks(storage))
    second = LayeredLocks(RedisLocks(down_client()), StorageLocks(other))
    try:
        assert await first.acquire("refresh:x", "A", 30)
        assert not await second.acquire("refresh:x", "B", 30)
        assert not await second.release("refresh:x", "B")
        assert not await second.extend("refresh:x", "B", 30)
        assert await first.extend("refresh:x", "A", 30)
        assert await first.release("refresh:x", "A")
        assert await second.acquire("refresh:x", "B", 30)
        assert first.skipped >= 3
        assert second.skipped >= 3
    finally:
        await other.close()
    outage_lines = [line for line in logs if "unreachable" in line]
    assert len(outage_lines) == 2  # once per client (per worker), not once per call


async def test_a_worker_that_cannot_see_redis_still_excludes_one_that_can(
    client: TrackedClient, storage: SQLiteStorage
) -> None:
    with_redis = LayeredLocks(RedisLocks(client), StorageLocks(storage))
    blind = LayeredLocks(RedisLocks(down_client()), StorageLocks(storage))
    # The blind worker holds the lock through the database alone...
    assert await blind.acquire("refresh:y", "blind", 30)
    # ...so the other gets Redis but not the lock, and gives the Redis key back at once.
    assert not await with_redis.acquire("refresh:y", "seeing", 30)
    redis = raw_redis()
    try:
        assert await redis.exists(client.key("lock", "refresh:y")) == 0
    finally:
        await redis.aclose()
    # And the other way round: Redis and the database both held, the blind worker is refused.
    assert await blind.release("refresh:y", "blind")
    assert await with_redis.acquire("refresh:y", "seeing", 30)
    assert not await blind.acquire("refresh:y", "blind", 30)
    assert await with_redis.release("refresh:y", "seeing")


class CountingLocks(StorageLocks):
    """The storage lock, counting acquire attempts (each one is a database write)."""

    def __init__(self, storage: SQLiteStorage):
        super().__init__(storage)
        self.attempts = 0

    async def acquire(self, name: str, owner: str, ttl: float) -> bool:
        self.attempts += 1
        return await super().acquire(name, owner, ttl)


async def test_waiters_are_answered_by_redis_without_database_writes(
    client: TrackedClient, storage: SQLiteStorage
) -> None:
    db = CountingLocks(storage)
    locks = LayeredLocks(RedisLocks(client), db)
    assert await locks.acquire("refresh:z", "holder", 30)
    for i in range(10):
        assert not await locks.acquire("refresh:z", f"waiter-{i}", 30)
    assert db.attempts == 1
    assert locks.busy_in_redis == 10
    assert await locks.release("refresh:z", "holder")
    assert await storage.acquire_lock("refresh:z", "direct", 30, utcnow())  # database lock freed


@pytest.mark.parametrize("redis_up", [True, False])
async def test_lease_blocks_are_mutually_exclusive(
    redis_up: bool, client: TrackedClient, db_path: str, storage: SQLiteStorage
) -> None:
    # Two "workers" (own database handle and own Redis client each) run 10 lease blocks.
    other = SQLiteStorage(db_path)
    await other.open()
    second_client = client if redis_up else down_client()
    workers = [
        LayeredLocks(RedisLocks(client if redis_up else down_client()), StorageLocks(storage)),
        LayeredLocks(RedisLocks(second_client), StorageLocks(other)),
    ]
    inside = 0
    overlaps = 0
    entered = 0

    async def job(i: int) -> None:
        nonlocal inside, overlaps, entered
        async with lease(workers[i % 2], "refresh:lease", ttl=30, wait=30) as owner:
            assert owner is not None
            inside += 1
            entered += 1
            overlaps += inside > 1
            await asyncio.sleep(0)  # yield inside the critical section so overlap could happen
            await asyncio.sleep(0)
            inside -= 1

    try:
        await asyncio.gather(*(job(i) for i in range(10)))
    finally:
        await other.close()
    assert (entered, overlaps) == (10, 0)
