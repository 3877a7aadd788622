"""Key rotation end to end: rows written under key 1, the ring gains key 2 as primary,
``pulseplan keys rotate`` rewraps everything, a second run changes nothing, reads work
throughout; seed-format rows are converted by ``keys import-legacy``."""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pulseplan.crypto import TokenCipher
from pulseplan.rewrap import rewrap_all
from pulseplan.settings import Settings
from pulseplan.storage.models import Connection
from pulseplan.storage.models import NewConnection
from pulseplan.storage.sqlite import SQLiteStorage
from tests.conftest import BASE_ENV
from tests.crypto_seed import seed_encrypt
from tests.server import pulseplan

K1 = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
K2 = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
SEED_KEY = "test-master-key-0123456789abcdef"


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in BASE_ENV.items() if k != "TOKEN_ENCRYPTION_KEY"}
    return {
        **env,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'keys.db'}",
        "PULSEPLAN_DATA_DIR": str(tmp_path / "data"),
        **extra,
    }


def cipher_for(env: dict[str, str]) -> TokenCipher:
    return TokenCipher.from_settings(Settings.load(env, env_file=None, generate_dev_secrets=False))


def read_all(cipher: TokenCipher, rows: list[Connection]) -> list[str]:
    return [
        cipher.decrypt(r.access_token, user_id=r.user_id, provider=r.provider, field="access_token")
        for r in rows
    ]


async def all_rows(storage: SQLiteStorage) -> list[Connection]:
    rows: list[Connection] = []
    after = None
    while page := await storage.connections_page(after, 100):
        rows.extend(page)
        after = page[-1].id
    return rows


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    backend = SQLiteStorage(str(tmp_path / "keys.db"))
    await backend.open()
    await backend.migrate()
    yield backend
    await backend.close()


async def test_rotation_rewraps_everything_once_and_reads_work_throughout(
    tmp_path: Path, storage: SQLiteStorage
) -> None:
    old_env = env_for(tmp_path, TOKEN_ENCRYPTION_KEYS=f"v1:{K1}")
    new_env = env_for(
        tmp_path, TOKEN_ENCRYPTION_KEYS=f"v1:{K1},v2:{K2}", TOKEN_ENCRYPTION_PRIMARY="2"
    )
    old = cipher_for(old_env)
    plaintexts = {}
    for i in range(30):
        user = f"user-{i:02d}"
        plaintexts[user] = f"access-{i}"
        await storage.upsert_connection(
            NewConnection(
                user_id=user,
                provider="google",
                access_token=old.encrypt(
                    plaintexts[user], user_id=user, provider="google", field="access_token"
                ),
                refresh_token=old.encrypt(
                    f"refresh-{i}", user_id=user, provider="google", field="refresh_token"
                ),
                expires_at=None,
                scopes=(),
            )
        )
    new = cipher_for(new_env)
    rows = await all_rows(storage)
    assert read_all(new, rows) == [plaintexts[r.user_id] for r in rows]  # old rows still read

    raced: list[str] = []
    original_page = storage.connections_page

    async def snapshot() -> list[Connection]:
        rows: list[Connection] = []
        after = None
        while page := await original_page(after, 100):
            rows.extend(page)
            after = page[-1].id
        return rows

    async def page_with_reads(after: str | None, limit: int) -> list[Connection]:
        current = await snapshot()
        # Reads keep working mid-rotation, whichever key each row is under by now.
        assert read_all(new, current) == [plaintexts[r.user_id] for r in current]
        if after is not None and not raced:
            # A refresh writes a row the rotation has not reached yet (bumping its version).
            last = current[-1]
            fresh = new.encrypt(
                "access-refreshed", user_id=last.user_id, provider="google", field="access_token"
            )
            assert await storage.update_connection(last.id, last.version, access_token=fresh)
            plaintexts[last.user_id] = "access-refreshed"
            raced.append(last.id)
        return await original_page(after, limit)

    storage.connections_page = page_with_reads  # type: ignore[method-assign]
    report = await rewrap_all(storage, new, batch_size=7)
    storage.connections_page = original_page  # type: ignore[method-assign]
    assert raced
    assert report.failed == []
    assert report.scanned == 30
    assert report.rewrapped + report.unchanged == 30
    rows = await all_rows(storage)
    assert all(r.access_token.startswith("v2:") for r in rows)
    assert all(r.refresh_token and r.refresh_token.startswith("v2:") for r in rows)
    assert read_all(new, rows) == [plaintexts[r.user_id] for r in rows]
    again = await rewrap_all(storage, new)
    assert (again.rewrapped, again.unchanged) == (0, 30)
    # Key 1 can now be retired: a ring without it still reads everything.
    retired = cipher_for(env_for(tmp_path, TOKEN_ENCRYPTION_KEYS=f"v2:{K2}"))
    assert read_all(retired, rows) == [plaintexts[r.user_id] for r in rows]


async def test_rotation_never_overwrites_a_concurrent_write(
    tmp_path: Path, storage: SQLiteStorage
) -> None:
    old = cipher_for(env_for(tmp_path, TOKEN_ENCRYPTION_KEYS=f"v1:{K1}"))
    new = cipher_for(
        env_for(tmp_path, TOKEN_ENCRYPTION_KEYS=f"v1:{K1},v2:{K2}", TOKEN_ENCRYPTION_PRIMARY="2")
    )
    rows = []
    for i in range(3):
        row, _ = await storage.upsert_connection(
            NewConnection(
                user_id=f"u{i}",
                provider="google",
                access_token=old.encrypt(
                    "stale", user_id=f"u{i}", provider="google", field="access_token"
                ),
                refresh_token=None,
                expires_at=None,
                scopes=(),
            )
        )
        rows.append(row)
    # A refresh lands between the rotation's read and its write of the last row.
    target = max(rows, key=lambda r: r.id)
    original = storage.update_connection
    fired = False

    async def racing_update(connection_id: str, expected: int, **changes: object) -> object:
        nonlocal fired
        if connection_id == target.id and not fired:
            fired = True
            fresh = new.encrypt(
                "fresh", user_id=target.user_id, provider="google", field="access_token"
            )
            await original(connection_id, expected, access_token=fresh)
        return await original(connection_id, expected, **changes)

    storage.update_connection = racing_update  # type: ignore[method-assign,assignment]
    report = await rewrap_all(storage, new)
    storage.update_connection = original  # type: ignore[method-assign]
    assert report.failed == []
    final = await storage.get_connection_by_id(target.id)
    assert final is not None
    assert (
        new.decrypt(
            final.access_token, user_id=target.user_id, provider="google", field="access_token"
        )
        == "fresh"
    )


def test_keys_rotate_command_reports_and_is_idempotent(tmp_path: Path) -> None:
    import asyncio

    async def seed() -> None:
        backend = SQLiteStorage(str(tmp_path / "keys.db"))
        await backend.open()
        await backend.migrate()
        old = cipher_for(env_for(tmp_path, TOKEN_ENCRYPTION_KEYS=f"v1:{K1}"))
        for i in range(5):
            await backend.upsert_connection(
                NewConnection(
                    user_id=f"u{i}",
                    provider="google",
                    access_token=old.encrypt(
                        "at", user_id=f"u{i}", provider="google", field="access_token"
                    ),
                    refresh_token=None,
                    expires_at=None,
                    scopes=(),
                )
            )
        await backend.close()

    asyncio.run(seed())
    env = env_for(tmp_path, TOKEN_ENCRYPTION_KEYS=f"v1:{K1},v2:{K2}", TOKEN_ENCRYPTION_PRIMARY="2")
    first = pulseplan("keys", "rotate", "--batch-size", "2", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "scanned: 5  rewrapped: 5  unchanged: 0  failed: 0" in first.stdout
    assert "rewrapping" in first.stderr  # the progress bar
    second = pulseplan("keys", "rotate", env=env, cwd=tmp_path)
    assert "rewrapped: 0  unchanged: 5" in second.stdout


def test_import_legacy_converts_seed_rows_and_reports_bad_ones(tmp_path: Path) -> None:
    import asyncio

    user = "3f2a8c1e-5b7d-4e9a-8c6f-1a2b3c4d5e6f"

    async def seed() -> None:
        backend = SQLiteStorage(str(tmp_path / "keys.db"))
        await backend.open()
        await backend.migrate()
        await backend.upsert_connection(
            NewConnection(
                user_id=user,
                provider="google",
                access_token=seed_encrypt(SEED_KEY, user, "ya29.seed-token", encoding="utf8"),
                refresh_token=None,
                expires_at=None,
                scopes=(),
            )
        )
        await backend.upsert_connection(
            NewConnection(
                user_id="broken-user",
                provider="google",
                access_token="v1:" + "00" * 16 + ":" + "11" * 16 + ":" + "22" * 8,
                refresh_token=None,
                expires_at=None,
                scopes=(),
            )
        )
        await backend.close()

    asyncio.run(seed())
    env = env_for(
        tmp_path,
        TOKEN_ENCRYPTION_KEYS=f"v2:{K2}",
        TOKEN_ENCRYPTION_SEED_KEY=SEED_KEY,
        TOKEN_ENCRYPTION_SEED_ENCODING="utf8",
    )
    result = pulseplan("keys", "import-legacy", env=env, cwd=tmp_path)
    assert result.returncode == 1  # one row could not be read: reported, not aborted
    assert "rewrapped: 1" in result.stdout
    assert "failed: 1" in result.stdout
    assert "TamperedCiphertext" in result.stderr

    async def check() -> str:
        backend = SQLiteStorage(str(tmp_path / "keys.db"))
        await backend.open()
        row = await backend.get_connection(user, "google")
        await backend.close()
        assert row is not None
        return row.access_token

    stored = asyncio.run(check())
    assert stored.startswith("v2:")
    assert (
        cipher_for(env).decrypt(stored, user_id=user, provider="google", field="access_token")
        == "ya29.seed-token"
    )
