"""Where a benchmark run keeps its state: the embedded default (a SQLite file in the run's
folder) or PostgreSQL + Redis (a scratch database on 127.0.0.1:5432 and a unique key prefix on
127.0.0.1:6379), each dropped or deleted at the end.

The scratch database looks like Supabase (roles, ``auth.uid()``) and the server connects as a
non-superuser owner, so row-level security runs as in production: the user-scoped queries pay
for their ``set_config`` calls here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Callable
from collections.abc import Coroutine
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis

from pulseplan.storage.postgres import PostgresStorage
from tests.pg_fixtures import OWNER_ROLE
from tests.pg_fixtures import SUPABASE_AUTH
from tests.pg_fixtures import SUPABASE_ROLES
from tests.pg_fixtures import admin_execute
from tests.pg_fixtures import with_database

ADMIN_URL = os.environ.get(
    "PULSEPLAN_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("PULSEPLAN_BENCH_REDIS", "redis://127.0.0.1:6379/0")


@dataclass
class Backend:
    """One storage configuration: a label and the settings that select it."""

    key: str
    label: str
    env: dict[str, str]
    #: Worker counts this backend can serve (several workers need Redis).
    workers: tuple[int, ...] = (1,)
    notes: list[str] = field(default_factory=list)


def sqlite_backend(folder: Path, name: str = "pulseplan") -> Backend:
    """The embedded default: a SQLite file, in-process cache, locks and rate limits."""
    return Backend(
        key="sqlite",
        label="embedded (SQLite)",
        env={"DATABASE_URL": f"sqlite:///{folder / f'{name}.db'}"},
    )


async def _redis_ping() -> None:
    redis = Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        await redis.ping()
    finally:
        await redis.aclose()


def _where(url: str) -> str:
    """``host:port`` of ``url`` (never its user or password)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def unreachable() -> str | None:
    """Why PostgreSQL + Redis cannot be used here, or ``None`` when both answer."""
    probes: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = [
        (f"PostgreSQL at {_where(ADMIN_URL)}", lambda: admin_execute(ADMIN_URL, "SELECT 1")),
        (f"Redis at {_where(REDIS_URL)}", _redis_ping),
    ]
    for what, probe in probes:
        try:
            asyncio.run(probe())
        except Exception as exc:  # any failure means: not usable for this run
            return f"{what} is unreachable ({type(exc).__name__})"
    return None


async def _migrate(url: str) -> None:
    storage = PostgresStorage(url, max_size=2)
    await storage.open()
    try:
        await storage.migrate()
    finally:
        await storage.close()


async def _delete_prefix(prefix: str) -> int:
    redis = Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=2)
    deleted = 0
    try:
        async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
            deleted += await redis.delete(key)
    finally:
        await redis.aclose()
    return deleted


@contextlib.contextmanager
def postgres_redis_backend() -> Iterator[Backend]:
    """A migrated scratch database and a fresh Redis prefix; both gone afterwards."""
    name = f"pulseplan_bench_{uuid.uuid4().hex[:12]}"
    prefix = f"pulseplan:bench-{uuid.uuid4().hex[:12]}:"
    asyncio.run(admin_execute(ADMIN_URL, SUPABASE_ROLES))
    asyncio.run(admin_execute(ADMIN_URL, f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE}'))
    try:
        asyncio.run(admin_execute(with_database(ADMIN_URL, name), SUPABASE_AUTH))
        url = with_database(ADMIN_URL, name, user=OWNER_ROLE)
        asyncio.run(_migrate(url))
        yield Backend(
            key="postgres",
            label="PostgreSQL + Redis",
            env={"DATABASE_URL": url, "REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": prefix},
            workers=(1, 2),
        )
    finally:
        with contextlib.suppress(Exception):
            asyncio.run(_delete_prefix(prefix))
        asyncio.run(admin_execute(ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
