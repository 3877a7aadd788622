"""The storage contract on PostgreSQL: direct, with the statement cache off (transaction-pooler
mode), and through a real PgBouncer in ``pool_mode=transaction`` when it is installed. Plus
migrations, plain-PostgreSQL mode, and behaviour when the server is down or hangs."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import uuid
from collections.abc import AsyncIterator
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from pulseplan.storage import migrations
from pulseplan.storage.base import StorageError
from pulseplan.storage.postgres import PostgresStorage
from tests.pg_fixtures import SUPABASE_AUTH
from tests.pg_fixtures import PgBouncer
from tests.pg_fixtures import ScratchDatabase
from tests.pg_fixtures import admin_execute
from tests.pg_fixtures import open_storage
from tests.pg_fixtures import pg_database_fixture  # noqa: F401
from tests.pg_fixtures import pg_storage_fixture  # noqa: F401
from tests.pg_fixtures import pgbouncer
from tests.pg_fixtures import scratch_database
from tests.storage_contract import StorageContract
from tests.storage_contract import new
from tests.storage_uuid_users import UuidUsers
from tests.tcp_proxy import TcpProxy

ALL_MIGRATIONS = [name for name, _ in migrations.load("postgres", "calendar_connections")]

pytestmark = pytest.mark.postgres

PULSEPLAN = Path(__file__).resolve().parent.parent / "pulseplan"


class TestPostgresStorage(StorageContract):
    @pytest.fixture
    async def storage(self, pg_storage: PostgresStorage) -> UuidUsers:
        return UuidUsers(pg_storage)

    async def test_runs_in_session_mode_with_rls_scoping(self, storage: UuidUsers) -> None:
        await storage.ping()
        assert storage.inner.options.pooler == "session"
        assert storage.inner.options.statement_cache_size > 0
        assert "rls on" in storage.inner.detail


class TestPostgresStatementCacheOff(StorageContract):
    """What a transaction-mode pooler needs, against the server directly."""

    @pytest.fixture
    async def storage(self, pg_database: ScratchDatabase) -> AsyncIterator[UuidUsers]:
        backend = await open_storage(pg_database.url + "?pulseplan_pooler=transaction")
        assert backend.options.statement_cache_size == 0
        yield UuidUsers(backend)
        await backend.close()


@pytest.fixture(scope="module")
def bouncer() -> Iterator[PgBouncer]:
    with pgbouncer() as running:
        yield running


class TestPostgresThroughPgBouncer(StorageContract):
    """The whole contract through PgBouncer 1.18 (no prepared-statement support at all)."""

    @pytest.fixture
    async def storage(
        self, pg_database: ScratchDatabase, bouncer: PgBouncer
    ) -> AsyncIterator[UuidUsers]:
        backend = await open_storage(bouncer.url(pg_database), pooler="transaction")
        yield UuidUsers(backend)
        await backend.close()

    async def test_reports_transaction_mode(self, storage: UuidUsers) -> None:
        await storage.ping()
        assert "pooler=transaction" in storage.inner.detail


# --------------------------------------------------------------------------- migrations


async def test_concurrent_migrations_apply_once() -> None:
    with scratch_database() as database:
        first, second = PostgresStorage(database.url), PostgresStorage(database.url)
        await first.open()
        await second.open()
        try:
            assert await first.pending_migrations() == ALL_MIGRATIONS
            results = await asyncio.gather(first.migrate(), second.migrate())
            assert sorted(results) == [[], ALL_MIGRATIONS]
            assert await second.pending_migrations() == []
        finally:
            await first.close()
            await second.close()


async def test_pending_migrations_do_not_touch_the_schema() -> None:
    with scratch_database() as database:
        storage = PostgresStorage(database.url)
        await storage.open()
        try:
            assert await storage.pending_migrations() == ALL_MIGRATIONS
            async with storage.db.service() as conn:
                assert await conn.fetchval("SELECT to_regclass('pulseplan_migrations')") is None
            # Before migrating, a request is a 503-class StorageError, not a crash.
            with pytest.raises(StorageError, match="pulseplan migrate"):
                await storage.get_connection_by_id(str(uuid.uuid4()))
        finally:
            await storage.close()


async def test_configured_table_name() -> None:
    with scratch_database() as database:
        storage = PostgresStorage(database.url, connections_table="oauth_connections")
        await storage.open()
        try:
            await storage.migrate()
            uid = str(uuid.uuid4())
            await storage.upsert_connection(new(uid))
            assert [c.user_id for c in await storage.list_connections(uid)] == [uid]
            assert "rls on" in storage.detail  # its policy is named after the table
            async with storage.db.service() as conn:
                assert await conn.fetchval("SELECT count(*) FROM oauth_connections") == 1
        finally:
            await storage.close()


def test_no_session_level_advisory_locks() -> None:
    """Session advisory locks break behind a transaction pooler (checklist C6.8)."""
    session_lock = re.compile(r"pg_(try_)?advisory_(un)?lock(_shared)?\s*\(", re.IGNORECASE)
    offenders = [
        str(path.relative_to(PULSEPLAN))
        for path in PULSEPLAN.rglob("*")
        if path.suffix in (".py", ".sql") and session_lock.search(path.read_text())
    ]
    assert offenders == []
    assert "pg_advisory_xact_lock(" in (PULSEPLAN / "storage" / "postgres.py").read_text()


# --------------------------------------------------------------------------- plain PostgreSQL


async def test_plain_postgres_without_supabase_pieces(logs: list[str]) -> None:
    with scratch_database(supabase=False) as database:
        storage = PostgresStorage(database.url)
        strict = PostgresStorage(database.url, rls="on")
        await storage.open()
        await strict.open()
        try:
            assert await storage.migrate() == ALL_MIGRATIONS
            await storage.ping()
            assert "rls off: function auth.uid() does not exist" in storage.detail
            assert any("row-level security scoping is OFF" in line for line in logs)
            uid = str(uuid.uuid4())
            await storage.upsert_connection(new(uid))
            assert len(await storage.list_connections(uid)) == 1
            # Required but impossible: readiness fails and user data is refused (503).
            with pytest.raises(StorageError, match="row-level security required"):
                await strict.ping()
            with pytest.raises(StorageError, match="row-level security required"):
                await strict.list_connections(uid)
            # Adding the Supabase pieces and the policy fixes it without a restart.
            await admin_execute(
                database.admin_url,
                SUPABASE_AUTH,
                "GRANT SELECT, INSERT, UPDATE, DELETE ON calendar_connections TO authenticated",
                "CREATE POLICY calendar_connections_owner ON calendar_connections "
                "FOR ALL TO authenticated USING ((SELECT auth.uid()) = user_id) "
                "WITH CHECK ((SELECT auth.uid()) = user_id)",
            )
            await strict.ping()
            assert "rls on" in strict.detail
            assert len(await strict.list_connections(uid)) == 1
        finally:
            await storage.close()
            await strict.close()


async def test_rls_off_by_option(pg_database: ScratchDatabase) -> None:
    storage = await open_storage(pg_database.url + "?pulseplan_rls=off")
    try:
        await storage.ping()
        assert "rls off (pulseplan_rls=off)" in storage.detail
    finally:
        await storage.close()


# --------------------------------------------------------------------------- failures


async def test_down_fails_fast_without_leaking_the_url() -> None:
    with socket_closed_port() as port:
        storage = PostgresStorage(f"postgresql://app:s3cret-pw@127.0.0.1:{port}/db")
        await storage.open()  # lazy: starting while the database is down is fine
        try:
            async with asyncio.timeout(3):  # a guard against hanging, not a measurement
                with pytest.raises(StorageError) as caught:
                    await storage.ping()
                with pytest.raises(StorageError):
                    await storage.get_connection(str(uuid.uuid4()), "google")
            for text in (str(caught.value), repr(storage)):
                assert "s3cret-pw" not in text
                assert f":{port}" not in text
        finally:
            await storage.close()


async def test_a_server_that_never_answers_times_out() -> None:
    peers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    storage = PostgresStorage(f"postgresql://app@127.0.0.1:{port}/db")
    await storage.open()
    try:
        async with asyncio.timeout(5):
            with pytest.raises(StorageError, match="within 1s"):
                await storage.ping()
    finally:
        await storage.close()
        for writer in peers:
            writer.transport.abort()
        server.close()
        await server.wait_closed()


async def test_recovers_without_restart_when_the_database_returns(
    pg_database: ScratchDatabase,
) -> None:
    port = int(pg_database.url.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    proxy = TcpProxy("127.0.0.1", port)
    await proxy.start()
    proxied = pg_database.url.replace(f":{port}/", f":{proxy.port}/")
    storage = await open_storage(proxied)
    uid = str(uuid.uuid4())
    try:
        await storage.upsert_connection(new(uid))
        await proxy.stop()  # the database "goes away": connections cut, port refused
        with pytest.raises(StorageError):
            await storage.ping()
        with pytest.raises(StorageError):
            await storage.list_connections(uid)
        await proxy.start()  # ...and comes back on the same address
        await storage.ping()
        assert len(await storage.list_connections(uid)) == 1
    finally:
        await storage.close()
        await proxy.stop()


async def test_a_killed_backend_connection_is_replaced(pg_storage: PostgresStorage) -> None:
    """A server-side disconnect (failover, pg_terminate_backend) costs at most one request."""
    uid = str(uuid.uuid4())
    await pg_storage.upsert_connection(new(uid))
    async with pg_storage.db.service() as conn:
        pids = [await conn.fetchval("SELECT pg_backend_pid()")]
    admin = await asyncpg.connect(pg_storage.options.dsn)
    try:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)
    finally:
        await admin.close()
    with contextlib.suppress(StorageError):
        await pg_storage.list_connections(uid)
    assert len(await pg_storage.list_connections(uid)) == 1


@contextlib.contextmanager
def socket_closed_port() -> Iterator[int]:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    yield port
