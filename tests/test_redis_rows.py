"""The Redis row cache: the full storage contract through it, plus what only a cache can get
wrong (stale rows after writes, plaintext, fills racing writes, Redis outages)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from pulseplan.cache.rows import CachedStorage
from pulseplan.crypto import TokenCipher
from pulseplan.settings import Settings
from pulseplan.storage.models import Connection
from pulseplan.storage.models import utcnow
from pulseplan.storage.sqlite import SQLiteStorage
from tests.redis_kit import TrackedClient
from tests.redis_kit import down_client
from tests.redis_kit import live_client
from tests.redis_kit import proxy
from tests.redis_kit import proxy_url
from tests.redis_kit import raw_redis
from tests.storage_contract import StorageContract
from tests.storage_contract import new

pytestmark = pytest.mark.redis


@pytest.fixture
async def inner(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    backend = SQLiteStorage(str(tmp_path / "db" / "pulseplan.db"))
    await backend.open()
    await backend.migrate()
    yield backend
    await backend.close()


@pytest.fixture
async def client() -> AsyncIterator[TrackedClient]:
    async with live_client() as c:
        yield c


@pytest.fixture
async def storage(inner: SQLiteStorage, client: TrackedClient) -> CachedStorage:
    # The contract's rows hold placeholder strings, not ciphertext envelopes: allow caching them
    # so the contract runs through the cache paths, not around them.
    return CachedStorage(inner, client, ciphertext_only=False)


class TestCachedStorage(StorageContract):
    pass


async def hash_fields(storage: CachedStorage, user_id: str) -> dict[bytes, bytes]:
    redis = raw_redis()
    try:
        fields: dict[bytes, bytes] = await redis.hgetall(storage.key(user_id))  # type: ignore[assignment]
    finally:
        await redis.aclose()
    return fields


async def test_a_second_read_is_served_from_redis(
    storage: CachedStorage, inner: SQLiteStorage
) -> None:
    row, _ = await storage.upsert_connection(new())
    assert await storage.get_connection("u1", "google") == row
    assert [c.id for c in await storage.list_connections("u1")] == [row.id]
    assert (storage.hits, storage.misses) == (0, 2)
    # Changed behind the cache's back (no invalidation): the cache still answers.
    await inner.update_connection(row.id, row.version, access_token="ct-behind-the-back")
    cached = await storage.get_connection("u1", "google")
    listed = await storage.list_connections("u1")
    assert cached is not None
    assert (cached.access_token, cached.version) == (row.access_token, row.version)
    assert listed[0].access_token == row.access_token
    assert (storage.hits, storage.misses) == (2, 2)
    assert await storage.get_connection("u1", "notion") is None  # "not connected" is cached too
    assert await storage.get_connection("u1", "notion") is None
    assert storage.hits == 3


async def fill(storage: CachedStorage, user_id: str = "u1") -> None:
    await storage.get_connection(user_id, "google")
    await storage.list_connections(user_id)
    await storage.get_connection(user_id, "google")
    fields = await hash_fields(storage, user_id)
    assert {b"gen", b"get:google", b"list"} <= set(fields)


async def test_updates_invalidate(storage: CachedStorage) -> None:
    row, _ = await storage.upsert_connection(new())
    await fill(storage)
    updated = await storage.update_connection(row.id, row.version, access_token="ct-2")
    assert updated is not None
    got = await storage.get_connection("u1", "google")
    assert got is not None
    assert (got.access_token, got.version) == ("ct-2", updated.version)
    assert (await storage.list_connections("u1"))[0].access_token == "ct-2"


async def test_upserts_and_deletes_invalidate(storage: CachedStorage) -> None:
    await storage.upsert_connection(new())
    await fill(storage)
    await storage.upsert_connection(new(access_token="ct-replaced"))
    got = await storage.get_connection("u1", "google")
    assert got is not None
    assert got.access_token == "ct-replaced"
    await storage.upsert_connection(new(provider="notion"))
    assert [c.provider for c in await storage.list_connections("u1")] == ["google", "notion"]
    await fill(storage)
    await storage.delete_connection("u1", "google")
    assert await storage.get_connection("u1", "google") is None
    assert [c.provider for c in await storage.list_connections("u1")] == ["notion"]


async def test_claims_and_releases_invalidate(storage: CachedStorage) -> None:
    now = utcnow()
    row, _ = await storage.upsert_connection(new(expires_at=now + timedelta(minutes=1)))
    await fill(storage)
    claimed = await storage.claim_due_connections(
        now=now, horizon=now + timedelta(minutes=5), limit=10, owner="w1", lease_seconds=60
    )
    assert [c.id for c in claimed] == [row.id]
    assert set(await hash_fields(storage, "u1")) == {b"gen"}
    await fill(storage)
    await storage.release_claim(row.id, "w1")
    assert set(await hash_fields(storage, "u1")) == {b"gen"}


async def test_a_fenced_out_update_keeps_the_cache(storage: CachedStorage) -> None:
    row, _ = await storage.upsert_connection(new())
    await storage.update_connection(row.id, row.version, access_token="ct-2")
    await fill(storage)
    hits = storage.hits
    assert await storage.update_connection(row.id, row.version, access_token="ct-stale") is None
    got = await storage.get_connection("u1", "google")
    assert got is not None
    assert got.access_token == "ct-2"
    assert storage.hits == hits + 1


async def test_get_connection_by_id_always_reads_the_database(
    storage: CachedStorage, inner: SQLiteStorage
) -> None:
    row, _ = await storage.upsert_connection(new())
    first = await storage.get_connection_by_id(row.id)
    await inner.update_connection(row.id, row.version, access_token="ct-newer")
    second = await storage.get_connection_by_id(row.id)
    assert first is not None
    assert second is not None
    assert (first.access_token, second.access_token) == (row.access_token, "ct-newer")
    assert (storage.hits, storage.misses) == (0, 0)
    assert set(await hash_fields(storage, "u1")) == {b"gen"}  # nothing cached by id


async def test_cached_rows_hold_ciphertext_only(
    inner: SQLiteStorage, client: TrackedClient, make_settings: Callable[..., Settings]
) -> None:
    storage = CachedStorage(inner, client)  # ciphertext_only: the production setting
    cipher = TokenCipher.from_settings(make_settings())
    secret_access, secret_refresh = "ya29.plaintext-access-SECRET", "1//plaintext-refresh-SECRET"
    sealed = {
        field: cipher.encrypt(value, user_id="u1", provider="google", field=field)
        for field, value in (("access_token", secret_access), ("refresh_token", secret_refresh))
    }
    await storage.upsert_connection(new(**sealed))
    await fill(storage)
    blob = b"".join((await hash_fields(storage, "u1")).values())
    assert secret_access.encode() not in blob
    assert secret_refresh.encode() not in blob
    assert sealed["access_token"].encode() in blob
    assert sealed["refresh_token"].encode() in blob
    # A row whose token field is not a ciphertext envelope is never cached.
    await storage.upsert_connection(new("u2", access_token="plaintext-looking-token"))
    await storage.get_connection("u2", "google")
    await storage.list_connections("u2")
    assert storage.refused == 2
    assert set(await hash_fields(storage, "u2")) == {b"gen"}


class PausingStorage(SQLiteStorage):
    """SQLite whose ``get_connection`` can be held after reading, to order a race."""

    pause: asyncio.Event | None = None
    reached: asyncio.Event | None = None

    async def get_connection(self, user_id: str, provider: str) -> Connection | None:
        row = await super().get_connection(user_id, provider)
        if self.pause is not None and self.reached is not None:
            self.reached.set()
            await self.pause.wait()
        return row


async def test_a_fill_racing_a_write_never_stores_the_older_row(
    tmp_path: Path, client: TrackedClient
) -> None:
    inner = PausingStorage(str(tmp_path / "race.db"))
    await inner.open()
    await inner.migrate()
    storage = CachedStorage(inner, client, ciphertext_only=False)
    try:
        row, _ = await storage.upsert_connection(new())
        inner.pause, inner.reached = asyncio.Event(), asyncio.Event()
        reader = asyncio.create_task(storage.get_connection("u1", "google"))
        await inner.reached.wait()  # the reader holds the pre-write row, not yet cached
        pause, inner.pause, inner.reached = inner.pause, None, None
        updated = await storage.update_connection(row.id, row.version, access_token="ct-new")
        pause.set()
        old = await reader  # ...and now tries to cache it: refused, the generation moved
        assert old is not None
        assert updated is not None
        assert old.access_token == row.access_token
        got = await storage.get_connection("u1", "google")
        assert got is not None
        assert got.access_token == "ct-new"
    finally:
        await inner.close()


async def test_redis_down_reads_and_writes_go_to_the_database(inner: SQLiteStorage) -> None:
    storage = CachedStorage(inner, down_client(), ciphertext_only=False)
    row, _ = await storage.upsert_connection(new())
    assert await storage.get_connection("u1", "google") == row
    updated = await storage.update_connection(row.id, row.version, access_token="ct-2")
    assert updated is not None
    got = await storage.get_connection("u1", "google")
    assert got is not None
    assert got.access_token == "ct-2"
    assert [c.access_token for c in await storage.list_connections("u1")] == ["ct-2"]
    assert storage.hits == storage.misses == 0
    assert storage.bypassed == 3
    assert storage.invalidation_failures == 2


async def test_no_stale_row_is_served_after_a_write_during_an_outage(
    inner: SQLiteStorage,
) -> None:
    async with proxy() as relay, live_client(proxy_url(relay), retry_interval=0) as client:
        storage = CachedStorage(inner, client, ciphertext_only=False)
        row, _ = await storage.upsert_connection(new())
        await fill(storage)
        await relay.stop()  # Redis unreachable for this worker
        updated = await storage.update_connection(row.id, row.version, access_token="ct-outage")
        assert updated is not None
        assert storage.invalidation_failures == 1
        got = await storage.get_connection("u1", "google")
        assert got is not None
        assert got.access_token == "ct-outage"
        # The stale entry is still in Redis while this worker cannot reach it.
        assert b"get:google" in await hash_fields(storage, "u1")
        await relay.start()  # Redis is back: the missed invalidation is replayed first
        got = await storage.get_connection("u1", "google")
        assert got is not None
        assert got.access_token == "ct-outage"
        assert storage.paused  # and this worker keeps off the cache for one TTL
        assert set(await hash_fields(storage, "u1")) == {b"gen"}
        # A worker that never saw the outage gets the new row too.
        async with live_client(prefix=client.prefix) as other_client:
            other = CachedStorage(inner, other_client, ciphertext_only=False)
            seen = await other.get_connection("u1", "google")
            assert seen is not None
            assert seen.access_token == "ct-outage"
            assert other.hits == 0
