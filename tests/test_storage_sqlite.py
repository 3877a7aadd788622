"""The storage contract on the embedded SQLite backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pulseplan.storage.sqlite import SQLiteStorage
from tests.storage_contract import StorageContract
from tests.storage_contract import new


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    backend = SQLiteStorage(str(tmp_path / "db" / "pulseplan.db"))
    await backend.open()
    await backend.migrate()
    yield backend
    await backend.close()


class TestSQLiteStorage(StorageContract):
    pass


async def test_a_second_process_handle_sees_the_same_rows(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    first, second = SQLiteStorage(path), SQLiteStorage(path)
    for backend in (first, second):
        await backend.open()
        await backend.migrate()
    row, _ = await first.upsert_connection(new())
    assert await second.update_connection(row.id, row.version, access_token="ct-b") is not None
    assert await first.update_connection(row.id, row.version, access_token="ct-a") is None
    await first.close()
    await second.close()


async def test_seed_table_name_is_configurable(tmp_path: Path) -> None:
    backend = SQLiteStorage(str(tmp_path / "x.db"), connections_table="oauth_connections")
    await backend.open()
    await backend.migrate()
    await backend.upsert_connection(new())
    async with backend.db.execute("SELECT COUNT(*) FROM oauth_connections") as cursor:
        assert (await cursor.fetchone())[0] == 1
    await backend.close()
