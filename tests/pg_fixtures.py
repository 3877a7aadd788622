"""PostgreSQL scratch databases for tests (the storage contract, RLS, Redis and multi-process
tests). Import the fixtures into a test module (they are registered under the names
``pg_database`` and ``pg_storage``)::

    from tests.pg_fixtures import pg_database_fixture  # noqa: F401
    from tests.pg_fixtures import pg_storage_fixture  # noqa: F401

Each scratch database is uniquely named, created on ``PULSEPLAN_TEST_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``) and dropped at the end. It mimics Supabase:

* roles ``anon``, ``authenticated``, ``service_role`` as Supabase defines them (NOLOGIN
  NOINHERIT; ``service_role`` BYPASSRLS), created idempotently because roles are cluster-wide;
* schema ``auth`` with ``auth.uid()`` exactly as Supabase's auth server defines it
  (supabase/auth ``migrations/tenant/20211202183645_update_auth_uid.up.sql``);
* the application connects as ``pulseplan_test_owner``, a login role that owns the database
  and is a member of the three roles but is neither superuser nor BYPASSRLS (like Supabase's
  ``postgres`` role, which is not a superuser), so RLS behaves as it would there.

When PostgreSQL is unreachable, tests fail under ``CI=true`` and skip elsewhere
(:func:`tests.conftest.service_unavailable`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import TypeVar
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import asyncpg
import pytest

from pulseplan.storage.postgres import PostgresStorage
from tests.conftest import service_unavailable

T = TypeVar("T")

ADMIN_URL = os.environ.get(
    "PULSEPLAN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
OWNER_ROLE = "pulseplan_test_owner"
TABLES = (
    "calendar_connections",
    "pulseplan_oauth_flows",
    "pulseplan_locks",
    "pulseplan_audit",
    "pulseplan_agents",
)

# CREATE ROLE racing another test run on the same cluster fails with duplicate_object or
# unique_violation: both mean "it exists now", which is all we need.
SUPABASE_ROLES = f"""
DO $$
DECLARE
    spec text;
BEGIN
    FOREACH spec IN ARRAY ARRAY[
        'anon NOLOGIN NOINHERIT',
        'authenticated NOLOGIN NOINHERIT',
        'service_role NOLOGIN NOINHERIT BYPASSRLS',
        '{OWNER_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS'
    ] LOOP
        BEGIN
            EXECUTE 'CREATE ROLE ' || spec;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END LOOP;
END
$$;
GRANT anon, authenticated, service_role TO {OWNER_ROLE};
"""

# What Supabase's auth schema provides that PulsePlan's policies use.
SUPABASE_AUTH = """
CREATE SCHEMA auth;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT nullif(
    coalesce(
      current_setting('request.jwt.claim.sub', true),
      (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')
    ),
    ''
  )::uuid
$$;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION auth.uid() TO anon, authenticated, service_role;
"""


def with_database(url: str, database: str, user: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{user}@{netloc.rsplit('@', 1)[-1]}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{database}"))


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion in its own thread and loop (never disturbing the loop
    pytest-asyncio gives the test)."""

    async def main() -> T:
        return await factory()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


@dataclass(frozen=True)
class ScratchDatabase:
    """A throwaway database. ``url`` connects as the owner role, ``admin_url`` as superuser."""

    name: str
    url: str
    admin_url: str
    supabase: bool


async def admin_execute(url: str, *statements: str) -> None:
    """Run statements on a fresh connection (``url`` usually a superuser one)."""
    conn = await asyncpg.connect(url, timeout=3)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def scratch_database(*, supabase: bool = True) -> Iterator[ScratchDatabase]:
    """Create a database (with the Supabase pieces unless ``supabase=False``); drop it after."""
    name = f"pulseplan_test_{uuid.uuid4().hex[:12]}"
    try:
        run_sync(lambda: admin_execute(ADMIN_URL, SUPABASE_ROLES))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        service_unavailable("PostgreSQL", exc)
    run_sync(lambda: admin_execute(ADMIN_URL, f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE}'))
    admin_url = with_database(ADMIN_URL, name)
    try:
        if supabase:
            run_sync(lambda: admin_execute(admin_url, SUPABASE_AUTH))
        yield ScratchDatabase(
            name=name,
            url=with_database(ADMIN_URL, name, user=OWNER_ROLE),
            admin_url=admin_url,
            supabase=supabase,
        )
    finally:
        run_sync(lambda: admin_execute(ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session", name="pg_database")
def pg_database_fixture() -> Iterator[ScratchDatabase]:
    """One Supabase-like scratch database for the whole session."""
    with scratch_database() as database:
        yield database


async def open_storage(url: str, **options: Any) -> PostgresStorage:
    """An opened, migrated backend with every table emptied."""
    options.setdefault("max_size", 4)  # many tests open several pools; stay far from limits
    storage = PostgresStorage(url, **options)
    await storage.open()
    await storage.migrate()
    async with storage.db.service() as conn:
        await conn.execute(f"TRUNCATE {', '.join(TABLES)}")
    return storage


@pytest.fixture(name="pg_storage")
async def pg_storage_fixture(pg_database: ScratchDatabase) -> AsyncIterator[PostgresStorage]:
    """A migrated, empty :class:`PostgresStorage` on the session's scratch database."""
    storage = await open_storage(pg_database.url)
    yield storage
    await storage.close()


# --------------------------------------------------------------------------- PgBouncer


@dataclass(frozen=True)
class PgBouncer:
    """A PgBouncer in ``pool_mode=transaction`` in front of the test server."""

    port: int

    def url(self, database: ScratchDatabase) -> str:
        """``database``'s owner URL, through the pooler."""
        parts = urlsplit(database.url)
        return urlunsplit(parts._replace(netloc=f"{OWNER_ROLE}@127.0.0.1:{self.port}"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def pgbouncer() -> Iterator[PgBouncer]:
    """Run PgBouncer (optional tool: skips, even under CI, when it is not installed)."""
    binary = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if binary is None:
        pytest.skip("pgbouncer is not installed (optional; apt-get install pgbouncer)")
    target = urlsplit(ADMIN_URL)
    port = _free_port()
    folder = Path(tempfile.mkdtemp(prefix="pulseplan-pgbouncer-"))
    folder.chmod(0o755)  # PgBouncer may run as `postgres` (it refuses to run as root)
    users = folder / "users.txt"
    users.write_text(f'"{OWNER_ROLE}" ""\n"postgres" ""\n')
    config = folder / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"* = host={target.hostname} port={target.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {users}\n"
        "pool_mode = transaction\nmax_client_conn = 200\ndefault_pool_size = 8\n"
        "log_connections = 0\nlog_disconnections = 0\n"
        "ignore_startup_parameters = extra_float_digits\n"
    )
    for path in (users, config):
        path.chmod(0o644)
    as_user = ["-u", "postgres"] if os.geteuid() == 0 else []
    process = subprocess.Popen(
        [binary, *as_user, str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    up = threading.Event()
    output: list[str] = []

    def drain() -> None:  # keep reading so a full pipe never blocks PgBouncer
        assert process.stderr is not None
        for line in process.stderr:
            output.append(line)
            if "process up" in line:
                up.set()
        up.set()  # exited: stop waiting

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        if not up.wait(10) or process.poll() is not None:
            pytest.skip("pgbouncer did not start: " + "".join(output[-3:]).strip())
        yield PgBouncer(port)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(5)
        if process.stderr is not None:
            process.stderr.close()
        shutil.rmtree(folder, ignore_errors=True)
