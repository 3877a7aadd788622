"""The embedded default backend: one SQLite file through aiosqlite.

WAL mode and a busy timeout let a second process (``pulseplan refresh``, ``keys rotate``) work
on the same file while the server runs; every fenced write is a single statement, so SQLite's
own locking makes it atomic.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import sqlite3
import uuid
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from pulseplan.auth.agents import AgentRecord
from pulseplan.auth.agents import DuplicateAgent
from pulseplan.storage import migrations
from pulseplan.storage.base import Storage
from pulseplan.storage.base import StorageError
from pulseplan.storage.models import UPDATABLE
from pulseplan.storage.models import AuditRecord
from pulseplan.storage.models import Connection
from pulseplan.storage.models import NewConnection
from pulseplan.storage.models import utcnow

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
JSON_COLUMNS = ("scopes", "metadata")
TIME_COLUMNS = ("expires_at", "created_at", "updated_at", "last_refreshed_at", "next_refresh_at")
#: Audit rows per INSERT: 10 parameters each stays under SQLite's oldest variable limit (999).
AUDIT_CHUNK = 90


def ts(value: datetime | None) -> str | None:
    """Fixed-width UTC text, so that string order is time order."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to storage; use timezone-aware UTC")
    # isoformat, not strftime: strftime does not zero-pad years before 1000 on every platform.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def sqlite_path(database_url: str) -> str:
    """``sqlite:///relative/path.db``, ``sqlite:////abs/path.db`` or ``sqlite:///:memory:``."""
    if not database_url.startswith("sqlite:///"):
        raise ValueError("SQLite DATABASE_URL must look like sqlite:///path/to/file.db")
    return database_url.removeprefix("sqlite:///")


class SQLiteStorage(Storage):
    """:class:`Storage` on a local SQLite file."""

    name = "sqlite"

    def __init__(self, path: str, *, connections_table: str = "calendar_connections"):
        if not IDENTIFIER.match(connections_table):
            raise ValueError("connections table must be a plain SQL identifier")
        self.path = path
        self.table = connections_table
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        if self._db is not None:
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            db = await aiosqlite.connect(self.path, isolation_level=None)
        except Exception as exc:
            raise StorageError(f"cannot open SQLite database: {type(exc).__name__}") from exc
        db.row_factory = aiosqlite.Row
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA busy_timeout=5000")
        await db.execute("PRAGMA foreign_keys=ON")
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StorageError("storage is not open")
        return self._db

    async def _rows(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> list[aiosqlite.Row]:
        """Run one statement to completion under the connection lock.

        Every task of the process shares one aiosqlite connection; letting one statement's
        steps interleave with another's made sqlite3 fail ("bad parameter or other API misuse")
        under load, so each statement is executed and fully read before the next one starts.
        """
        # ``execute_fetchall`` executes and reads in one call on aiosqlite's thread: one
        # hand-off to that thread and back instead of three (execute, fetchall, close). Each
        # hand-off wakes the thread and then the event loop; together they were most of a read.
        async with self._lock:
            try:
                return list(await self.db.execute_fetchall(sql, params))
            except sqlite3.OperationalError as exc:
                raise StorageError(f"SQLite error: {exc}") from exc

    async def _first(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> aiosqlite.Row | None:
        rows = await self._rows(sql, params)
        return rows[0] if rows else None

    async def ping(self) -> None:
        try:
            await self._rows("SELECT 1")
        except aiosqlite.Error as exc:
            raise StorageError(f"SQLite unavailable: {type(exc).__name__}") from exc

    async def _applied(self) -> set[str]:
        await self._rows(
            "CREATE TABLE IF NOT EXISTS pulseplan_migrations "
            "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        return {row["name"] for row in await self._rows("SELECT name FROM pulseplan_migrations")}

    async def migrate(self) -> list[str]:
        # Several processes may start at once on one file (a server and `pulseplan refresh`):
        # a file lock next to the database serialises them, and each re-reads what is applied.
        if self.path == ":memory:":
            return await self._migrate_locked()
        lock_path = f"{self.path}.migrate.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            return await self._migrate_locked()
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    async def _migrate_locked(self) -> list[str]:
        applied = await self._applied()
        done = []
        for name, sql in migrations.load("sqlite", self.table):
            if name in applied:
                continue
            # executescript commits on its own; wrap it so a failing file leaves nothing behind.
            script = (
                f"BEGIN IMMEDIATE;\n{sql}\n"
                f"INSERT INTO pulseplan_migrations VALUES ('{name}', '{ts(utcnow())}');\nCOMMIT;"
            )
            async with self._lock:
                try:
                    await self.db.executescript(script)
                except aiosqlite.Error:
                    if self.db.in_transaction:
                        await self.db.execute("ROLLBACK")
                    raise
            done.append(name)
        return done

    async def pending_migrations(self) -> list[str]:
        applied = await self._applied()
        return [name for name, _ in migrations.load("sqlite", self.table) if name not in applied]

    # ------------------------------------------------------------------ helpers

    def _connection(self, row: aiosqlite.Row) -> Connection:
        data = dict(row)
        data.pop("claim_owner", None)
        data.pop("claim_until", None)
        for column in TIME_COLUMNS:
            data[column] = parse_ts(data[column])
        data["scopes"] = tuple(json.loads(data["scopes"]))
        data["metadata"] = json.loads(data["metadata"])
        return Connection(**data)

    async def _one(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> Connection | None:
        row = await self._first(sql, params)
        return None if row is None else self._connection(row)

    async def _many(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[Connection]:
        return [self._connection(row) for row in await self._rows(sql, params)]

    # ------------------------------------------------------------------ connections

    async def get_connection(self, user_id: str, provider: str) -> Connection | None:
        return await self._one(
            f"SELECT * FROM {self.table} WHERE user_id = ? AND provider = ?", (user_id, provider)
        )

    async def get_connection_by_id(self, connection_id: str) -> Connection | None:
        return await self._one(f"SELECT * FROM {self.table} WHERE id = ?", (connection_id,))

    async def list_connections(self, user_id: str) -> list[Connection]:
        return await self._many(
            f"SELECT * FROM {self.table} WHERE user_id = ? ORDER BY provider", (user_id,)
        )

    async def upsert_connection(self, new: NewConnection) -> tuple[Connection, bool]:
        now = ts(utcnow())
        row = await self._one(
            f"""
            INSERT INTO {self.table} (id, user_id, provider, access_token, refresh_token,
                expires_at, scopes, email, metadata, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (user_id, provider) DO UPDATE SET
                access_token = excluded.access_token,
                refresh_token = excluded.refresh_token,
                expires_at = excluded.expires_at,
                scopes = excluded.scopes,
                email = excluded.email,
                metadata = excluded.metadata,
                updated_at = excluded.updated_at,
                status = 'active',
                status_reason = NULL,
                refresh_failures = 0,
                next_refresh_at = NULL,
                version = {self.table}.version + 1
            RETURNING *
            """,
            (
                str(uuid.uuid4()),
                new.user_id,
                new.provider,
                new.access_token,
                new.refresh_token,
                ts(new.expires_at),
                json.dumps(list(new.scopes)),
                new.email,
                json.dumps(new.metadata),
                now,
                now,
            ),
        )
        assert row is not None
        return row, row.version == 1

    async def update_connection(
        self, connection_id: str, expected_version: int, **changes: Any
    ) -> Connection | None:
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        values: dict[str, Any] = {}
        for column, value in changes.items():
            if column in JSON_COLUMNS:
                value = json.dumps(list(value) if column == "scopes" else value)
            elif column in TIME_COLUMNS:
                value = ts(value)
            values[column] = value
        assignments = ", ".join(f"{column} = :{column}" for column in values)
        separator = ", " if assignments else ""
        return await self._one(
            f"UPDATE {self.table} SET {assignments}{separator}updated_at = :updated_at, "
            "version = version + 1 WHERE id = :id AND version = :expected RETURNING *",
            {
                **values,
                "updated_at": ts(utcnow()),
                "id": connection_id,
                "expected": expected_version,
            },
        )

    async def delete_connection(self, user_id: str, provider: str) -> Connection | None:
        return await self._one(
            f"DELETE FROM {self.table} WHERE user_id = ? AND provider = ? RETURNING *",
            (user_id, provider),
        )

    async def claim_due_connections(
        self,
        *,
        now: datetime,
        horizon: datetime,
        limit: int,
        owner: str,
        lease_seconds: float,
    ) -> list[Connection]:
        rows = await self._many(
            f"""
            UPDATE {self.table} SET claim_owner = :owner, claim_until = :until
            WHERE id IN (
                SELECT id FROM {self.table}
                WHERE status = 'active' AND refresh_token IS NOT NULL
                  AND expires_at IS NOT NULL AND expires_at <= :horizon
                  AND (next_refresh_at IS NULL OR next_refresh_at <= :now)
                  AND (claim_until IS NULL OR claim_until <= :now)
                ORDER BY expires_at LIMIT :limit
            )
            RETURNING *
            """,
            {
                "owner": owner,
                "until": ts(now + timedelta(seconds=lease_seconds)),
                "horizon": ts(horizon),
                "now": ts(now),
                "limit": limit,
            },
        )
        return sorted(rows, key=lambda c: (c.expires_at or now, c.id))

    async def release_claim(self, connection_id: str, owner: str) -> None:
        await self._rows(
            f"UPDATE {self.table} SET claim_owner = NULL, claim_until = NULL "
            "WHERE id = ? AND claim_owner = ?",
            (connection_id, owner),
        )

    async def connections_page(self, after_id: str | None, limit: int) -> list[Connection]:
        return await self._many(
            f"SELECT * FROM {self.table} WHERE id > ? ORDER BY id LIMIT ?", (after_id or "", limit)
        )

    async def count_connections_by_status(self) -> dict[str, int]:
        rows = await self._rows(f"SELECT status, COUNT(*) AS n FROM {self.table} GROUP BY status")
        return {row["status"]: row["n"] for row in rows}

    # ------------------------------------------------------------------ OAuth flows

    async def put_flow(self, key: str, payload: str, expires_at: datetime) -> None:
        await self._rows(
            "INSERT INTO pulseplan_oauth_flows (key, payload, expires_at) VALUES (?, ?, ?)",
            (key, payload, ts(expires_at)),
        )
        # Opportunistic clean-up keeps the table small without a scheduler.
        await self._rows("DELETE FROM pulseplan_oauth_flows WHERE expires_at < ?", (ts(utcnow()),))

    async def take_flow(self, key: str, now: datetime) -> str | None:
        row = await self._first(
            "DELETE FROM pulseplan_oauth_flows WHERE key = ? RETURNING payload, expires_at",
            (key,),
        )
        if row is None or row["expires_at"] <= ts(now):
            return None
        payload: str = row["payload"]
        return payload

    # ------------------------------------------------------------------ lease locks

    async def acquire_lock(self, name: str, owner: str, ttl: float, now: datetime) -> bool:
        return (
            await self._first(
                """
            INSERT INTO pulseplan_locks (name, owner, expires_at) VALUES (?, ?, ?)
            ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,
                expires_at = excluded.expires_at
            WHERE pulseplan_locks.expires_at <= ? OR pulseplan_locks.owner = excluded.owner
            RETURNING owner
            """,
                (name, owner, ts(now + timedelta(seconds=ttl)), ts(now)),
            )
            is not None
        )

    async def extend_lock(self, name: str, owner: str, ttl: float, now: datetime) -> bool:
        return (
            await self._first(
                "UPDATE pulseplan_locks SET expires_at = ? "
                "WHERE name = ? AND owner = ? AND expires_at > ? RETURNING name",
                (ts(now + timedelta(seconds=ttl)), name, owner, ts(now)),
            )
            is not None
        )

    async def release_lock(self, name: str, owner: str) -> bool:
        return (
            await self._first(
                "DELETE FROM pulseplan_locks WHERE name = ? AND owner = ? RETURNING name",
                (name, owner),
            )
            is not None
        )

    # ------------------------------------------------------------------ agents

    @staticmethod
    def _agent(row: aiosqlite.Row) -> AgentRecord:
        providers = row["providers"]
        return AgentRecord(
            id=row["id"],
            name=row["name"],
            secret_hash=row["secret_hash"],
            providers=None if providers is None else tuple(json.loads(providers)),
            created_at=parse_ts(row["created_at"]),  # type: ignore[arg-type]
            revoked_at=parse_ts(row["revoked_at"]),
        )

    async def create_agent(
        self, name: str, secret_hash: str, providers: list[str] | None
    ) -> AgentRecord:
        try:
            row = await self._first(
                "INSERT INTO pulseplan_agents (id, name, secret_hash, providers, created_at) "
                "VALUES (?, ?, ?, ?, ?) RETURNING *",
                (
                    str(uuid.uuid4()),
                    name,
                    secret_hash,
                    None if providers is None else json.dumps(providers),
                    ts(utcnow()),
                ),
            )
        except aiosqlite.IntegrityError:
            raise DuplicateAgent(f"an active agent named {name!r} already exists") from None
        assert row is not None
        return self._agent(row)

    async def get_agent_by_hash(self, secret_hash: str) -> AgentRecord | None:
        row = await self._first(
            "SELECT * FROM pulseplan_agents WHERE secret_hash = ?", (secret_hash,)
        )
        return None if row is None else self._agent(row)

    async def list_agents(self) -> list[AgentRecord]:
        return [
            self._agent(row)
            for row in await self._rows("SELECT * FROM pulseplan_agents ORDER BY created_at, id")
        ]

    async def revoke_agent(self, name: str) -> bool:
        return (
            await self._first(
                "UPDATE pulseplan_agents SET revoked_at = ? "
                "WHERE name = ? AND revoked_at IS NULL RETURNING id",
                (ts(utcnow()), name),
            )
            is not None
        )

    # ------------------------------------------------------------------ audit

    async def add_audit(self, records: Sequence[AuditRecord]) -> None:
        # One multi-row INSERT per chunk, not executemany: in autocommit mode executemany
        # commits (and syncs the WAL) once per row, and a token fetch writes a row per provider.
        rows = list(records)
        for start in range(0, len(rows), AUDIT_CHUNK):
            chunk = rows[start : start + AUDIT_CHUNK]
            values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
            await self._rows(
                f"INSERT INTO pulseplan_audit VALUES {values}",
                [
                    value
                    for r in chunk
                    for value in (
                        r.id,
                        ts(r.occurred_at),
                        r.actor_type,
                        r.actor_id,
                        r.user_id,
                        r.provider,
                        r.action,
                        r.outcome,
                        r.request_id,
                        r.detail,
                    )
                ],
            )

    async def list_audit(
        self, user_id: str, *, limit: int = 100, before: datetime | None = None
    ) -> list[AuditRecord]:
        rows = await self._rows(
            "SELECT * FROM pulseplan_audit WHERE user_id = ? AND occurred_at < ? "
            "ORDER BY occurred_at DESC, id DESC LIMIT ?",
            (user_id, ts(before) if before else "9999", limit),
        )
        return [
            AuditRecord(**{**dict(row), "occurred_at": parse_ts(row["occurred_at"])})
            for row in rows
        ]
