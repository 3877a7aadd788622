"""The production backend: PostgreSQL or Supabase Postgres through an asyncpg pool.

Same semantics as the SQLite reference (``tests/storage_contract.py`` runs against both). What
PostgreSQL adds:

* user-scoped methods (:meth:`~PostgresStorage.get_connection`, ``list_connections``,
  ``upsert_connection``, ``delete_connection``, ``list_audit``) run as role ``authenticated``
  with the user's claims, so row-level security refuses other users' rows even if a query's
  ``user_id`` filter were wrong; everything else runs as the connecting (owner) role;
* the sweeper claims due rows with ``FOR UPDATE SKIP LOCKED`` and a lease in the row, in one
  short statement (no transaction is held across a provider call);
* migrations take a transaction-scoped advisory lock (never a session-level one).

Ids and user ids are UUIDs. A read with an id or user id that is not a UUID finds nothing; a
write with such a user id is a ``ValueError``. Options: :mod:`pulseplan.storage.postgres_config`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from datetime import timedelta
from typing import Any

import asyncpg

from pulseplan.storage import migrations
from pulseplan.storage.base import Storage
from pulseplan.storage.models import STATUSES
from pulseplan.storage.models import UPDATABLE
from pulseplan.storage.models import Connection
from pulseplan.storage.models import NewConnection
from pulseplan.storage.models import utcnow
from pulseplan.storage.postgres_config import PoolerMode
from pulseplan.storage.postgres_config import RlsMode
from pulseplan.storage.postgres_config import parse_options
from pulseplan.storage.postgres_pool import PgPool
from pulseplan.storage.postgres_records import PgRecordTables
from pulseplan.storage.postgres_records import as_uuid
from pulseplan.storage.postgres_records import aware
from pulseplan.storage.postgres_records import maybe_aware
from pulseplan.storage.postgres_records import user_uuid

#: Key of the transaction-scoped advisory lock serialising migrations ("pulsepla").
MIGRATION_LOCK = 0x70756C7365706C61
#: Migrations may rewrite big tables: their statements get this long, not the command timeout.
MIGRATION_TIMEOUT = 600.0
COLUMNS = (
    "id, user_id, provider, access_token, refresh_token, expires_at, scopes, email, "
    "created_at, updated_at, status, status_reason, metadata, version, last_refreshed_at, "
    "next_refresh_at, refresh_failures"
)
#: The same columns qualified by the alias ``c`` (for UPDATE ... FROM).
C_COLUMNS = ", ".join(f"c.{column.strip()}" for column in COLUMNS.split(","))
TIME_COLUMNS = frozenset({"expires_at", "last_refreshed_at", "next_refresh_at"})
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _connection(row: asyncpg.Record) -> Connection:
    data = dict(row)
    data["id"] = str(data["id"])
    data["user_id"] = str(data["user_id"])
    data["scopes"] = tuple(data["scopes"])
    data["metadata"] = json.loads(data["metadata"])
    return Connection(**data)


class PostgresStorage(PgRecordTables, Storage):
    """:class:`Storage` on PostgreSQL. ``url`` is ``DATABASE_URL`` (its ``pulseplan_*`` query
    parameters are options; keyword arguments override them)."""

    name = "postgres"

    def __init__(
        self,
        url: str,
        *,
        connections_table: str = "calendar_connections",
        production: bool = False,
        pooler: PoolerMode | None = None,
        rls: RlsMode | None = None,
        min_size: int | None = None,
        max_size: int | None = None,
        connect_timeout: float | None = None,
        command_timeout: float | None = None,
    ):
        if not IDENTIFIER.match(connections_table):
            raise ValueError("connections table must be a plain SQL identifier")
        self.table = connections_table
        self.options = parse_options(
            url,
            production=production,
            pooler=pooler,
            rls=rls,
            min_size=min_size,
            max_size=max_size,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
        )
        self.db = PgPool(self.options, connections_table)

    def __repr__(self) -> str:  # never the URL: it carries the password
        return f"PostgresStorage(table={self.table!r}, pooler={self.options.pooler!r})"

    @property
    def detail(self) -> str:
        """One line for health checks: pooler mode and whether RLS scoping is active."""
        scoping = self.db.current_scoping
        rls = scoping.detail if scoping else f"rls {self.options.rls} (not probed yet)"
        return f"postgres, pooler={self.options.pooler}, {rls}"

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    async def ping(self) -> None:
        await self.db.ping()

    @asynccontextmanager
    async def user_scope(self, user_id: str) -> AsyncIterator[asyncpg.Connection]:
        """A transaction that sees only ``user_id``'s rows (when RLS scoping is active)."""
        async with self.db.user(str(user_uuid(user_id))) as conn:
            yield conn

    async def _applied(self, conn: asyncpg.Connection) -> set[str]:
        if await conn.fetchval("SELECT to_regclass('pulseplan_migrations')") is None:
            return set()
        return {r["name"] for r in await conn.fetch("SELECT name FROM pulseplan_migrations")}

    async def migrate(self) -> list[str]:
        # One transaction: all pending files or none. The xact lock makes a second
        # `pulseplan migrate` wait, then find nothing left to do.
        async with self.db.service() as conn:
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK, timeout=MIGRATION_TIMEOUT
            )
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS pulseplan_migrations "
                "(name text PRIMARY KEY, applied_at timestamptz NOT NULL)"
            )
            applied = await self._applied(conn)
            done = []
            for name, sql in migrations.load("postgres", self.table):
                if name in applied:
                    continue
                await conn.execute(sql, timeout=MIGRATION_TIMEOUT)
                await conn.execute(
                    "INSERT INTO pulseplan_migrations (name, applied_at) VALUES ($1, $2)",
                    name,
                    utcnow(),
                )
                done.append(name)
        return done

    async def pending_migrations(self) -> list[str]:
        async with self.db.service() as conn:
            applied = await self._applied(conn)
        return [name for name, _ in migrations.load("postgres", self.table) if name not in applied]

    # ------------------------------------------------------------------ connections

    async def get_connection(self, user_id: str, provider: str) -> Connection | None:
        uid = as_uuid(user_id)
        if uid is None:
            return None
        async with self.db.user(str(uid)) as conn:
            row = await conn.fetchrow(
                f"SELECT {COLUMNS} FROM {self.table} WHERE user_id = $1 AND provider = $2",
                uid,
                provider,
            )
        return None if row is None else _connection(row)

    async def get_connection_by_id(self, connection_id: str) -> Connection | None:
        cid = as_uuid(connection_id)
        if cid is None:
            return None
        async with self.db.service() as conn:
            row = await conn.fetchrow(f"SELECT {COLUMNS} FROM {self.table} WHERE id = $1", cid)
        return None if row is None else _connection(row)

    async def list_connections(self, user_id: str) -> list[Connection]:
        uid = as_uuid(user_id)
        if uid is None:
            return []
        async with self.db.user(str(uid)) as conn:
            rows = await conn.fetch(
                f"SELECT {COLUMNS} FROM {self.table} WHERE user_id = $1 ORDER BY provider", uid
            )
        return [_connection(r) for r in rows]

    async def upsert_connection(self, new: NewConnection) -> tuple[Connection, bool]:
        uid = user_uuid(new.user_id)
        async with self.db.user(str(uid)) as conn:
            row = await conn.fetchrow(
                f"""
                INSERT INTO {self.table} AS c (id, user_id, provider, access_token,
                    refresh_token, expires_at, scopes, email, metadata, created_at, updated_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $10)
                ON CONFLICT (user_id, provider) DO UPDATE SET
                    access_token = EXCLUDED.access_token,
                    refresh_token = EXCLUDED.refresh_token,
                    expires_at = EXCLUDED.expires_at,
                    scopes = EXCLUDED.scopes,
                    email = EXCLUDED.email,
                    metadata = EXCLUDED.metadata,
                    updated_at = EXCLUDED.updated_at,
                    status = 'active',
                    status_reason = NULL,
                    refresh_failures = 0,
                    next_refresh_at = NULL,
                    version = c.version + 1
                RETURNING {COLUMNS}
                """,
                uuid.uuid4(),
                uid,
                new.provider,
                new.access_token,
                new.refresh_token,
                maybe_aware(new.expires_at),
                list(new.scopes),
                new.email,
                json.dumps(new.metadata),
                utcnow(),
            )
        stored = _connection(row)
        return stored, stored.version == 1

    async def update_connection(
        self, connection_id: str, expected_version: int, **changes: Any
    ) -> Connection | None:
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        if "status" in changes and changes["status"] not in STATUSES:
            raise ValueError(f"unknown status: {changes['status']!r}")
        cid = as_uuid(connection_id)
        if cid is None:
            return None
        params: list[Any] = [cid, expected_version, utcnow()]
        assignments = []
        for column, value in changes.items():
            cast = ""
            if column == "metadata":
                value, cast = json.dumps(value), "::jsonb"
            elif column == "scopes":
                value = list(value)
            elif column in TIME_COLUMNS:
                value = maybe_aware(value)
            params.append(value)
            assignments.append(f"{column} = ${len(params)}{cast}")
        assignments += ["updated_at = $3", "version = version + 1"]
        async with self.db.service() as conn:
            row = await conn.fetchrow(
                f"UPDATE {self.table} SET {', '.join(assignments)} "
                f"WHERE id = $1 AND version = $2 RETURNING {COLUMNS}",
                *params,
            )
        return None if row is None else _connection(row)

    async def delete_connection(self, user_id: str, provider: str) -> Connection | None:
        uid = as_uuid(user_id)
        if uid is None:
            return None
        async with self.db.user(str(uid)) as conn:
            row = await conn.fetchrow(
                f"DELETE FROM {self.table} WHERE user_id = $1 AND provider = $2 "
                f"RETURNING {COLUMNS}",
                uid,
                provider,
            )
        return None if row is None else _connection(row)

    async def claim_due_connections(
        self,
        *,
        now: datetime,
        horizon: datetime,
        limit: int,
        owner: str,
        lease_seconds: float,
    ) -> list[Connection]:
        # SKIP LOCKED: a concurrent sweeper's candidates are passed over, not waited for; a row
        # claimed and committed meanwhile is re-checked (claim_until) and dropped. MATERIALIZED
        # keeps the locking sub-select a single evaluation.
        async with self.db.service() as conn:
            rows = await conn.fetch(
                f"""
                WITH due AS MATERIALIZED (
                    SELECT id FROM {self.table}
                    WHERE status = 'active' AND refresh_token IS NOT NULL
                      AND expires_at IS NOT NULL AND expires_at <= $3
                      AND (next_refresh_at IS NULL OR next_refresh_at <= $4)
                      AND (claim_until IS NULL OR claim_until <= $4)
                    ORDER BY expires_at LIMIT $5
                    FOR UPDATE SKIP LOCKED
                )
                UPDATE {self.table} AS c SET claim_owner = $1, claim_until = $2
                FROM due WHERE c.id = due.id
                RETURNING {C_COLUMNS}
                """,
                owner,
                aware(now) + timedelta(seconds=lease_seconds),
                aware(horizon),
                now,
                limit,
            )
        claimed = [_connection(r) for r in rows]
        return sorted(claimed, key=lambda c: (c.expires_at or now, c.id))

    async def release_claim(self, connection_id: str, owner: str) -> None:
        cid = as_uuid(connection_id)
        if cid is None:
            return
        async with self.db.service() as conn:
            await conn.execute(
                f"UPDATE {self.table} SET claim_owner = NULL, claim_until = NULL "
                "WHERE id = $1 AND claim_owner = $2",
                cid,
                owner,
            )

    async def connections_page(self, after_id: str | None, limit: int) -> list[Connection]:
        after = None
        if after_id is not None and (after := as_uuid(after_id)) is None:
            raise ValueError("after_id must be a connection id (UUID)")
        async with self.db.service() as conn:
            rows = await conn.fetch(
                f"SELECT {COLUMNS} FROM {self.table} "
                "WHERE $1::uuid IS NULL OR id > $1::uuid ORDER BY id LIMIT $2",
                after,
                limit,
            )
        return [_connection(r) for r in rows]

    async def count_connections_by_status(self) -> dict[str, int]:
        async with self.db.service() as conn:
            rows = await conn.fetch(f"SELECT status, count(*) AS n FROM {self.table} GROUP BY 1")
        return {r["status"]: r["n"] for r in rows}


__all__ = ["PostgresStorage"]
