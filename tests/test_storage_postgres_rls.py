"""Row-level security proof (issue 6 acceptance; DESIGN invariant 5): a query issued as user A's
role and claims returns none of user B's rows even with no ``user_id`` filter in the SQL, and
the backend's user-scoped methods run that way, so a wrong filter still cannot leak."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from pulseplan.storage.postgres import PostgresStorage
from tests.pg_fixtures import ScratchDatabase
from tests.pg_fixtures import open_storage
from tests.pg_fixtures import pg_database_fixture  # noqa: F401
from tests.pg_fixtures import pg_storage_fixture  # noqa: F401
from tests.storage_contract import audit
from tests.storage_contract import new

pytestmark = pytest.mark.postgres

A, B = str(uuid.uuid4()), str(uuid.uuid4())


@pytest.fixture
async def two_users(pg_storage: PostgresStorage) -> PostgresStorage:
    for user in (A, B):
        for provider in ("google", "notion"):
            await pg_storage.upsert_connection(new(user, provider))
    now = datetime.now(UTC)
    await pg_storage.add_audit([audit(A, now), audit(B, now), audit(B, now)])
    return pg_storage


@pytest.fixture
async def raw(pg_database: ScratchDatabase) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection as the application's (owner) role."""
    conn = await asyncpg.connect(pg_database.url)
    yield conn
    await conn.close()


async def as_user(conn: asyncpg.Connection, user_id: str) -> None:
    """What PostgREST does per request (inside the caller's transaction)."""
    await conn.execute("SET LOCAL ROLE authenticated")
    await conn.execute(
        "SELECT set_config('request.jwt.claims', $1, true)",
        json.dumps({"sub": user_id, "role": "authenticated"}),
    )


async def run_as(conn: asyncpg.Connection, who: str, sql: str, *args: Any) -> None:
    """Run ``sql`` in a transaction as user ``who`` (a user id) or as role ``who``."""
    async with conn.transaction():
        if who in ("anon", "authenticated"):
            await conn.execute(f"SET LOCAL ROLE {who}")
        else:
            await as_user(conn, who)
        await conn.execute(sql, *args)


async def test_raw_query_as_user_a_sees_none_of_b(
    two_users: PostgresStorage, raw: asyncpg.Connection
) -> None:
    async with raw.transaction():
        await as_user(raw, A)
        rows = await raw.fetch("SELECT user_id, provider FROM calendar_connections")
        audits = await raw.fetch("SELECT user_id FROM pulseplan_audit")
    assert {str(r["user_id"]) for r in rows} == {A}
    assert len(rows) == 2
    assert [str(r["user_id"]) for r in audits] == [A]
    # The same connection as the owner role sees everyone: the filter above was the database's.
    assert await raw.fetchval("SELECT count(*) FROM calendar_connections") == 4


async def test_user_a_cannot_change_or_create_b_rows(
    two_users: PostgresStorage, raw: asyncpg.Connection
) -> None:
    async with raw.transaction():
        await as_user(raw, A)
        assert await raw.execute("UPDATE calendar_connections SET email = 'x'") == "UPDATE 2"
        assert await raw.execute("DELETE FROM calendar_connections WHERE user_id = $1", B) == (
            "DELETE 0"
        )
    for forbidden, args in (
        # WITH CHECK: a row for someone else cannot be written...
        (
            "INSERT INTO calendar_connections (user_id, provider, access_token) "
            "VALUES ($1, 'canvas', 'ct')",
            [B],
        ),
        ("UPDATE calendar_connections SET user_id = $1", [B]),
        # ...and the audit trail is read-only for users (no grant, not just no policy).
        ("DELETE FROM pulseplan_audit", []),
        ("TRUNCATE calendar_connections", []),
    ):
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await run_as(raw, A, forbidden, *args)
    untouched = await two_users.list_connections(B)
    assert [c.email for c in untouched] == ["user@example.com"] * 2


async def test_no_claims_and_other_roles_see_nothing(
    two_users: PostgresStorage, raw: asyncpg.Connection
) -> None:
    async with raw.transaction():
        await raw.execute("SET LOCAL ROLE authenticated")
        assert await raw.fetchval("SELECT count(*) FROM calendar_connections") == 0
    for role, table in (
        ("anon", "calendar_connections"),
        ("authenticated", "pulseplan_agents"),
        ("authenticated", "pulseplan_oauth_flows"),
        ("authenticated", "pulseplan_locks"),
    ):
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await run_as(raw, role, f"SELECT * FROM {table}")  # noqa: S608 - fixed names


async def test_user_scope_applies_rls_to_unfiltered_sql(two_users: PostgresStorage) -> None:
    async with two_users.user_scope(A) as conn:
        assert await conn.fetchval("SELECT current_user") == "authenticated"
        rows = await conn.fetch("SELECT user_id FROM calendar_connections")
    assert {str(r["user_id"]) for r in rows} == {A}
    # The role and claims were transaction-local: the pooled connection is clean again.
    async with two_users.db.service() as conn:
        assert await conn.fetchval("SELECT current_user") != "authenticated"
        assert await conn.fetchval("SELECT count(*) FROM calendar_connections") == 4


def scoped_to(storage: PostgresStorage, user_id: str) -> Callable[[str], Any]:
    """Simulate a bug: whatever user a method asks for, its transaction runs as ``user_id``."""
    original = storage.db.user

    def user(_: str) -> AbstractAsyncContextManager[asyncpg.Connection]:
        return original(user_id)

    return user


@pytest.mark.parametrize("rls", ["on", "off"])
async def test_methods_cannot_reach_another_users_rows(
    pg_database: ScratchDatabase, monkeypatch: pytest.MonkeyPatch, rls: str
) -> None:
    """Methods whose SQL asks for B while the session belongs to A get nothing of B's: the
    database refuses. With RLS off the same mistake leaks (so this test can fail)."""
    storage = await open_storage(pg_database.url, rls=rls)
    try:
        for user in (A, B):
            await storage.upsert_connection(new(user, "google"))
        await storage.add_audit([audit(B, datetime.now(UTC))])
        monkeypatch.setattr(storage.db, "user", scoped_to(storage, A))
        found = await storage.get_connection(B, "google")
        leaked = [
            *([] if found is None else [found]),
            *await storage.list_connections(B),
            *await storage.list_audit(B),
        ]
        deleted = await storage.delete_connection(B, "google")
        if rls == "on":
            assert leaked == []
            assert deleted is None
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await storage.upsert_connection(new(B, "notion"))
        else:
            assert len(leaked) == 3
            assert deleted is not None
    finally:
        await storage.close()


async def test_stale_session_claims_on_a_pooled_connection_cannot_redirect(
    pg_database: ScratchDatabase,
) -> None:
    """auth.uid() reads the legacy ``request.jwt.claim.sub`` first: a value left at session
    level on a shared server connection must not decide whose rows a user query sees."""
    storage = await open_storage(pg_database.url, max_size=1)  # one connection: reused
    try:
        for user in (A, B):
            await storage.upsert_connection(new(user, "google"))
        async with storage.db.service() as conn:
            await conn.execute("SELECT set_config('request.jwt.claim.sub', $1, false)", B)
        assert [c.user_id for c in await storage.list_connections(A)] == [A]
        async with storage.user_scope(A) as conn:
            rows = await conn.fetch("SELECT user_id FROM calendar_connections")
        assert [str(r["user_id"]) for r in rows] == [A]
    finally:
        await storage.close()
