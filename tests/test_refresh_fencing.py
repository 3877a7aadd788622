"""A refresher whose lease lapsed mid-call (a long pause, a slow provider) can neither overwrite
the newer row another worker wrote nor release the lock another worker now holds; and a sibling
whose refresh raced ours recovers instead of marking the connection dead."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import pytest

from pulseplan.broker.refresh import RefreshCoordinator
from pulseplan.locks import StorageLocks
from pulseplan.storage.models import Connection
from pulseplan.storage.sqlite import SQLiteStorage
from pulseplan.storage.sqlite import ts
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.vault import Vault
from pulseplan.testing.vault import new_user
from pulseplan.testing.vault import running_vault


@pytest.fixture
async def vault(tmp_path: Path) -> AsyncIterator[Vault]:
    async with running_vault(
        tmp_path, providers={"acme": FakeProvider("standard", rotation="rotate")}
    ) as v:
        yield v


def second_worker(vault: Vault) -> RefreshCoordinator:
    """Another worker's coordinator: same database, its own in-flight map and lock owner."""
    runtime = vault.runtime
    first = runtime.broker.refresher
    return RefreshCoordinator(
        storage=runtime.storage,
        codec=first.codec,
        plugins=runtime.plugins,
        locks=StorageLocks(runtime.storage),
        events=runtime.events,
        settings=runtime.settings,
    )


async def expire_lease(storage: SQLiteStorage, name: str) -> None:
    """Make the current holder's lease lapse, as a long pause would."""
    past = ts(datetime.now(UTC) - timedelta(seconds=1))
    await storage._rows(
        "UPDATE pulseplan_locks SET expires_at = ? WHERE name = ?",
        (past, name),
    )


async def lock_owner(storage: SQLiteStorage, name: str) -> str | None:
    rows = await storage._rows("SELECT owner FROM pulseplan_locks WHERE name = ?", (name,))
    return rows[0]["owner"] if rows else None


async def test_stale_holder_cannot_overwrite_or_release(vault: Vault) -> None:
    fake = vault.fakes["acme"]
    storage = vault.runtime.storage
    assert isinstance(storage, SQLiteStorage)
    row = await vault.expire_soon(await vault.connect(new_user()))
    lock = f"refresh:{row.id}"
    stalled = fake.fail_next("refresh", "slow")

    # Worker A takes the lock and its provider call stalls.
    a = asyncio.ensure_future(vault.runtime.broker.refresher.refresh(row))
    assert await asyncio.to_thread(stalled.wait_arrived)
    owner_a = await lock_owner(storage, lock)
    assert owner_a is not None

    # A's lease lapses; worker B refreshes and writes the newer row.
    await expire_lease(storage, lock)
    b = await second_worker(vault).refresh(row)
    assert b.refreshed
    newer = await storage.get_connection_by_id(row.id)
    assert newer is not None
    assert newer.version == row.version + 1
    # A third worker holds the lock now.
    assert await storage.acquire_lock(lock, "worker-c", 60, datetime.now(UTC))

    stalled.release()
    result = await a
    final = await storage.get_connection_by_id(row.id)
    assert final is not None
    assert final.version == newer.version  # A's late write was fenced out
    assert final.access_token == newer.access_token
    assert result.access_token == b.access_token  # A hands out the newer token
    assert await lock_owner(storage, lock) == "worker-c"  # and left C's lock alone
    assert fake.count("refresh") == 2


async def test_invalid_grant_after_a_sibling_rotated_is_not_death(tmp_path: Path) -> None:
    async with running_vault(
        tmp_path, providers={"acme": FakeProvider("standard", rotation="strict")}
    ) as vault:
        fake = vault.fakes["acme"]
        storage = vault.runtime.storage
        assert isinstance(storage, SQLiteStorage)
        row = await vault.expire_soon(await vault.connect(new_user()))
        stalled = fake.fail_next("refresh", "slow")
        a = asyncio.ensure_future(vault.runtime.broker.refresher.refresh(row))
        assert await asyncio.to_thread(stalled.wait_arrived)
        await expire_lease(storage, f"refresh:{row.id}")
        b = await second_worker(vault).refresh(row)  # rotates RT1 -> RT2 and stores it
        stalled.release()  # A now presents the rotated-out RT1: invalid_grant
        result = await a
        final: Connection | None = await storage.get_connection_by_id(row.id)
        assert final is not None
        assert final.status == "active"  # not marked needs_reauth
        assert result.access_token == b.access_token
        assert fake.count("refresh") == 2
