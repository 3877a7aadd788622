"""Reading the seed's token table, from PostgreSQL (asyncpg) or from a SQLite file.

Read-only on purpose: PostgreSQL rows are read inside a ``READ ONLY`` transaction and SQLite
files are opened with ``mode=ro``, so an import can never change the seed's data. Rows come
ordered by user, so the importer merges one user's rows at a time without holding the whole
table in memory.

Errors name the table or the column, never the DSN (it carries a password) nor row contents.
"""

from __future__ import annotations

import abc
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg

from pulseplan.errors import ConfigurationError
from pulseplan.seedimport.rows import KNOWN_COLUMNS
from pulseplan.seedimport.rows import REQUIRED_COLUMNS

#: The seed's two table names: the Python backend's, then the Node.js backend's.
SEED_TABLES = ("oauth_tokens", "calendar_connections")
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Columns only PulsePlan's own table has: importing from it would be a mistake.
_PULSEPLAN_COLUMNS = frozenset({"status", "version", "metadata", "refresh_failures"})
CONNECT_TIMEOUT = 10.0
FETCH_BATCH = 500


def is_pulseplan_table(columns: set[str]) -> bool:
    """Whether a table with these (lower-case) columns is PulsePlan's own connections table.

    Told apart by columns, not by name: PulsePlan's default name ``calendar_connections`` is
    also the Node.js seed's, and ``CONNECTIONS_TABLE`` may rename it.
    """
    return columns >= _PULSEPLAN_COLUMNS


def _identifier(value: str, what: str) -> str:
    if not IDENTIFIER.fullmatch(value):
        raise ConfigurationError([f"{what} must be a plain lower-case SQL identifier"])
    return value


class SeedSource(abc.ABC):
    """One seed table. Use as ``async with``; :meth:`rows` yields mappings of column to value."""

    def __init__(self, table: str | None) -> None:
        self.requested = _identifier(table, "--table") if table else None
        self.table = ""
        self.columns: tuple[str, ...] = ()

    async def __aenter__(self) -> SeedSource:
        await self.open()
        try:
            await self._resolve()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect (read-only)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Disconnect."""

    @abc.abstractmethod
    async def _tables(self) -> dict[str, set[str]]:
        """Column names of every candidate table present (the requested one, or the seed's)."""

    @abc.abstractmethod
    async def count(self) -> int:
        """Number of rows in the table (for the progress bar)."""

    @abc.abstractmethod
    def rows(self) -> AsyncIterator[dict[str, Any]]:
        """Every row, ordered by user id then row id."""

    @property
    @abc.abstractmethod
    def where(self) -> str:
        """Where the table lives, for messages (never credentials)."""

    def candidates(self) -> tuple[str, ...]:
        return (self.requested,) if self.requested else SEED_TABLES

    async def _resolve(self) -> None:
        found = await self._tables()
        if not found:
            names = " or ".join(self.candidates())
            raise ConfigurationError([f"no table {names} in {self.where}"])
        ours = sorted(name for name, columns in found.items() if is_pulseplan_table(columns))
        if self.requested is not None and ours:
            raise ConfigurationError(
                [
                    f"{self.requested} in {self.where} is PulsePlan's own connections table, not "
                    "a seed table; point --from at the seed database (or --table at the seed's "
                    "table)"
                ]
            )
        # Detection. PulsePlan's default table name is the Node.js seed's, and docs/migrating.md
        # migrates PulsePlan into the seed's own database: its table is no candidate, so it is
        # dropped before the ambiguity check (else every such import would have to --table).
        seeds = {name: columns for name, columns in found.items() if name not in ours}
        if not seeds:
            raise ConfigurationError(
                [
                    f"no seed table in {self.where} (its {' and '.join(ours)} is PulsePlan's "
                    "own connections table); name a renamed seed table with --table, or point "
                    "--from at the seed database"
                ]
            )
        if len(seeds) > 1:
            raise ConfigurationError(
                [
                    f"{self.where} holds both {' and '.join(sorted(seeds))}; choose one with "
                    "--table (oauth_tokens: the Python backend, calendar_connections: Node.js)"
                ]
            )
        (table, columns), *_ = seeds.items()
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ConfigurationError(
                [f"{table} in {self.where} has no column {', '.join(missing)}: not a seed table"]
            )
        self.table = table
        self.columns = tuple(c for c in KNOWN_COLUMNS if c in columns)

    def select(self, qualified: str) -> str:
        columns = ", ".join(f'"{c}"' for c in self.columns)
        # lower(): a text user_id column may mix cases; one user's rows must stay together.
        # Identifiers here passed IDENTIFIER or came from the catalogue's KNOWN_COLUMNS.
        return (
            f"SELECT {columns} FROM {qualified} "  # noqa: S608
            "ORDER BY lower(CAST(user_id AS TEXT)), CAST(id AS TEXT)"
        )


class SQLiteSource(SeedSource):
    """A seed table copied into (or kept in) a SQLite file, opened read-only."""

    def __init__(self, path: str, table: str | None) -> None:
        super().__init__(table)
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None

    @property
    def where(self) -> str:
        return f"SQLite file {self.path.name}"

    @property
    def db(self) -> aiosqlite.Connection:
        assert self._db is not None, "source is not open"
        return self._db

    async def open(self) -> None:
        if not self.path.is_file():
            raise ConfigurationError([f"--from: no SQLite file at {self.path}"])
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        try:
            self._db = await aiosqlite.connect(uri, uri=True)
        except aiosqlite.Error as exc:
            raise ConfigurationError([f"cannot open {self.where}: {type(exc).__name__}"]) from None
        self._db.row_factory = aiosqlite.Row

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _tables(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        try:
            for name in self.candidates():
                async with self.db.execute(f'PRAGMA table_info("{name}")') as cursor:
                    columns = {str(row["name"]).lower() for row in await cursor.fetchall()}
                if columns:
                    found[name] = columns
        except aiosqlite.DatabaseError as exc:  # not a database, or unreadable
            raise ConfigurationError([f"cannot read {self.where}: {type(exc).__name__}"]) from None
        return found

    async def count(self) -> int:
        query = f'SELECT COUNT(*) FROM "{self.table}"'  # noqa: S608
        async with self.db.execute(query) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def rows(self) -> AsyncIterator[dict[str, Any]]:
        async with self.db.execute(self.select(f'"{self.table}"')) as cursor:
            while batch := await cursor.fetchmany(FETCH_BATCH):
                for row in batch:
                    yield dict(row)


class PostgresSource(SeedSource):
    """The seed's table in its PostgreSQL (Supabase) database, read in a read-only transaction."""

    def __init__(self, dsn: str, table: str | None, schema: str = "public") -> None:
        super().__init__(table)
        self._dsn = dsn
        self.schema = _identifier(schema, "--schema")
        self._conn: asyncpg.Connection | None = None

    def __repr__(self) -> str:
        return f"PostgresSource(schema={self.schema!r}, table={self.table!r})"  # no DSN

    @property
    def where(self) -> str:
        return f"PostgreSQL schema {self.schema}"

    @property
    def conn(self) -> asyncpg.Connection:
        assert self._conn is not None, "source is not open"
        return self._conn

    async def open(self) -> None:
        try:
            # No prepared-statement cache: the seed may sit behind a transaction pooler.
            self._conn = await asyncpg.connect(
                self._dsn, timeout=CONNECT_TIMEOUT, statement_cache_size=0
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, ValueError) as exc:
            # The exception text may quote the DSN; the type is enough to act on.
            raise ConfigurationError(
                [f"cannot connect to the seed database (--from): {type(exc).__name__}"]
            ) from None

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _tables(self) -> dict[str, set[str]]:
        try:
            records = await self.conn.fetch(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = $1 AND table_name = ANY($2::text[])",
                self.schema,
                list(self.candidates()),
            )
        except asyncpg.PostgresError as exc:
            raise ConfigurationError([f"cannot read {self.where}: {type(exc).__name__}"]) from None
        found: dict[str, set[str]] = {}
        for record in records:
            found.setdefault(record["table_name"], set()).add(str(record["column_name"]).lower())
        return found

    @property
    def qualified(self) -> str:
        return f'"{self.schema}"."{self.table}"'

    async def count(self) -> int:
        value = await self.conn.fetchval(f"SELECT COUNT(*) FROM {self.qualified}")  # noqa: S608
        return int(value or 0)

    async def rows(self) -> AsyncIterator[dict[str, Any]]:
        async with self.conn.transaction(readonly=True):
            cursor = self.conn.cursor(self.select(self.qualified), prefetch=FETCH_BATCH)
            async for record in cursor:
                yield dict(record.items())


def open_source(location: str, *, table: str | None, schema: str = "public") -> SeedSource:
    """The source ``--from`` names: a ``postgresql://`` DSN, or a SQLite path
    (``sqlite:///path`` or a plain file path). Not connected yet: use ``async with``."""
    if location.startswith(("postgresql://", "postgres://")):
        return PostgresSource(location, table, schema)
    if "://" in location and not location.startswith("sqlite:///"):
        scheme = location.split("://", 1)[0]
        shown = repr(scheme) if re.fullmatch(r"[a-z][a-z0-9+.-]{0,19}", scheme) else "(invalid)"
        raise ConfigurationError(
            [f"--from: unsupported scheme {shown} (use postgresql://... or a SQLite path)"]
        )
    return SQLiteSource(location.removeprefix("sqlite:///"), table)
