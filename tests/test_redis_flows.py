"""OAuth flow state in Redis: single-use take, expiry, and the database fallback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from pulseplan.cache.client import RedisUnavailable
from pulseplan.cache.flows import RedisFlowStore
from pulseplan.errors import FlowWriteUncertain
from pulseplan.storage.models import utcnow
from pulseplan.storage.sqlite import SQLiteStorage
from tests.redis_kit import REDIS_URL
from tests.redis_kit import AppliedThenFailed
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
async def storage(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    backend = SQLiteStorage(str(tmp_path / "flows.db"))
    await backend.open()
    await backend.migrate()
    yield backend
    await backend.close()


async def test_take_is_single_use_under_twenty_concurrent_takers(
    client: TrackedClient, storage: SQLiteStorage
) -> None:
    flows = RedisFlowStore(client, storage)
    now = utcnow()
    await flows.put_flow("state-hash", '{"user_id": "u1"}', now + timedelta(minutes=10))
    results = await asyncio.gather(*(flows.take_flow("state-hash", now) for _ in range(20)))
    assert [r for r in results if r is not None] == ['{"user_id": "u1"}']
    assert await storage.take_flow("state-hash", now) is None  # it never went to the database
    assert flows.fallback_puts == flows.fallback_takes == 0


async def test_flow_lives_in_redis_with_its_ttl(
    client: TrackedClient, storage: SQLiteStorage
) -> None:
    flows = RedisFlowStore(client, storage)
    await flows.put_flow("k", "payload", utcnow() + timedelta(minutes=10))
    redis = raw_redis()
    try:
        ttl = await redis.pttl(client.key("flow", "k"))
    finally:
        await redis.aclose()
    assert 590_000 < ttl <= 600_000


async def test_expiry_is_honoured(client: TrackedClient, storage: SQLiteStorage) -> None:
    flows = RedisFlowStore(client, storage)
    now = utcnow()
    await flows.put_flow("short", "payload", now + timedelta(minutes=1))
    # Taken after its expiry (time injected): refused, and gone for good.
    assert await flows.take_flow("short", now + timedelta(minutes=2)) is None
    assert await flows.take_flow("short", now) is None
    # Already expired when stored: nothing is kept anywhere.
    await flows.put_flow("stale", "payload", now - timedelta(seconds=1))
    assert await flows.take_flow("stale", now - timedelta(seconds=2)) is None
    redis = raw_redis()
    try:
        assert await redis.exists(client.key("flow", "stale")) == 0
    finally:
        await redis.aclose()


async def known_down() -> TrackedClient:
    """A client that has already seen Redis refuse it (as the app's client does after its
    start-up ping or any failed call)."""
    client = down_client()
    with pytest.raises(RedisUnavailable):
        await client.ping()
    assert client.down
    return client


async def test_redis_down_uses_the_database_single_use(storage: SQLiteStorage) -> None:
    flows = RedisFlowStore(await known_down(), storage)
    now = utcnow()
    await flows.put_flow("k", "payload", now + timedelta(minutes=10))
    assert flows.fallback_puts == 1
    results = await asyncio.gather(*(flows.take_flow("k", now) for _ in range(10)))
    assert [r for r in results if r is not None] == ["payload"]


async def test_a_flow_stored_during_an_outage_is_found_once_redis_is_back(
    client: TrackedClient, storage: SQLiteStorage
) -> None:
    now = utcnow()
    during_outage = RedisFlowStore(await known_down(), storage)
    await during_outage.put_flow("k", "payload", now + timedelta(minutes=10))
    recovered = RedisFlowStore(client, storage)  # same database, Redis reachable
    assert await recovered.take_flow("k", now) == "payload"
    assert await recovered.take_flow("k", now) is None
    assert await during_outage.take_flow("k", now) is None


async def test_a_write_that_may_have_landed_is_never_copied_to_the_database(
    client: TrackedClient, storage: SQLiteStorage
) -> None:
    # The SET reached Redis but the reply did not: writing the same key to the database as well
    # would leave two copies, each takeable once (two callbacks with one state would both win).
    now = utcnow()
    expires = now + timedelta(minutes=10)
    flaky = AppliedThenFailed(REDIS_URL, prefix=client.prefix)
    try:
        flows = RedisFlowStore(flaky, storage)
        with pytest.raises(FlowWriteUncertain):
            await flows.put_flow("uncertain", "payload", expires)
        assert await storage.take_flow("uncertain", now) is None  # no second copy
        # The client now counts Redis as down: the next flow (under a new key) goes only to
        # the database, without being sent to Redis at all.
        await flows.put_flow("next", "payload-2", expires)
        assert flows.fallback_puts == 1
    finally:
        await flaky.close()
    reader = RedisFlowStore(client, storage)
    assert await reader.take_flow("next", now) == "payload-2"
    assert await reader.take_flow("next", now) is None
    assert await reader.take_flow("uncertain", now) == "payload"  # the half-written copy
    assert await reader.take_flow("uncertain", now) is None
