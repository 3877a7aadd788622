"""The asyncpg pool behind :class:`~pulseplan.storage.postgres.PostgresStorage`.

Everything runs in short transactions, so the backend works through a transaction-mode pooler
(Supavisor port 6543, PgBouncer ``pool_mode=transaction``): no session state survives a
transaction, no session-level advisory lock, no ``SET`` without ``LOCAL``, and the pool's
release-time reset (``RESET ALL``...) is skipped because there is nothing to reset and it would
run on whichever server connection the pooler picks.

Two kinds of transaction:

* :meth:`PgPool.service` runs as the connecting role (background jobs, agents, flows, locks,
  audit writes). That role owns the tables (it ran the migrations), so row-level security does
  not filter it.
* :meth:`PgPool.user` does what Supabase's PostgREST does for a request: ``role`` becomes
  ``authenticated`` and ``request.jwt.claims`` holds the user, both transaction-local
  (``set_config(..., true)``), so the policy ``auth.uid() = user_id`` makes PostgreSQL itself
  refuse other users' rows. When the database lacks the Supabase pieces, scoping is off
  (``pulseplan_rls=auto``, with a warning) or every user query fails (``pulseplan_rls=on``).

Failures (refused, timed out, dropped connections, server shutting down, schema missing) become
:class:`StorageError` with a short message: never the URL, never a password.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from loguru import logger

from pulseplan.storage.base import StorageError
from pulseplan.storage.postgres_config import PostgresOptions

#: Transient or infrastructure failures: the request gets a 503 and may be retried.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.PostgresSystemError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
)
#: The connection is gone: other pooled connections are probably stale too.
_LOST: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)

#: What a transaction-mode pooler does to asyncpg's statement cache.
_PREPARED: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.InvalidSQLStatementNameError,
    asyncpg.exceptions.DuplicatePreparedStatementError,
)

_PROBE = """
SELECT
    to_regrole('authenticated') IS NOT NULL AS has_role,
    EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = 'authenticated'
            AND pg_has_role(current_user, r.oid, 'MEMBER')) AS can_switch,
    to_regprocedure('auth.uid()') IS NOT NULL AS has_uid,
    EXISTS (SELECT 1 FROM pg_policy
            WHERE polrelid = to_regclass($1) AND polname = $2) AS has_policy
"""


def storage_error(exc: BaseException) -> StorageError | None:
    """The :class:`StorageError` for an infrastructure failure, ``None`` for anything else."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, TimeoutError):
        return StorageError("PostgreSQL did not answer in time")
    if isinstance(exc, asyncpg.exceptions.UndefinedTableError):
        return StorageError("PostgreSQL schema is missing; run `pulseplan migrate`")
    if isinstance(exc, _PREPARED):
        return StorageError(
            "PostgreSQL prepared statements failed: behind a transaction-mode pooler "
            "add pulseplan_pooler=transaction to DATABASE_URL"
        )
    if isinstance(exc, _UNAVAILABLE):
        return StorageError(f"PostgreSQL unavailable ({type(exc).__name__})")
    return None


def owner_policy_name(connections_table: str) -> str:
    """The RLS policy the migration creates on the connections table."""
    return f"{connections_table}_owner"


@dataclass(frozen=True)
class Scoping:
    """Whether user-scoped transactions switch to role ``authenticated``, and why."""

    active: bool
    detail: str
    #: Why scoping is off (empty when it is on or switched off on purpose).
    reason: str = ""


async def _no_reset(connection: asyncpg.Connection) -> None:
    """Replaces asyncpg's release-time ``RESET ALL`` etc.: we never leave session state.

    asyncpg still rolls back a transaction left open (a cancelled request) before this runs.
    """


class PgPool:
    """An asyncpg pool plus the two transaction kinds and the RLS capability probe."""

    def __init__(self, options: PostgresOptions, connections_table: str):
        self.options = options
        self.table = connections_table
        self._pool: asyncpg.Pool | None = None
        self._scoping: Scoping | None = None

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Create the pool. With ``min_size`` 0 (the default) nothing connects yet, so start-up
        succeeds while PostgreSQL is down and the first request after it returns works."""
        if self._pool is not None:
            return
        opts = self.options
        try:
            self._pool = await asyncpg.create_pool(
                dsn=opts.dsn,
                min_size=opts.min_size,
                max_size=opts.max_size,
                timeout=opts.connect_timeout,
                command_timeout=opts.command_timeout,
                statement_cache_size=opts.statement_cache_size,
                reset=_no_reset,
            )
        except Exception as exc:
            mapped = storage_error(exc)
            if mapped is None:
                raise
            raise mapped from None

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=5)
        except TimeoutError:
            pool.terminate()

    @property
    def current_scoping(self) -> Scoping | None:
        """The RLS probe's result, ``None`` before the first query."""
        return self._scoping

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StorageError("storage is not open")
        return self._pool

    # ------------------------------------------------------------------ transactions

    async def _fail(self, exc: Exception) -> StorageError | None:
        mapped = storage_error(exc)
        if mapped is not None and isinstance(exc, _LOST) and self._pool is not None:
            # A restarted server leaves every idle connection dead: replace them all on their
            # next acquire instead of failing one request per stale connection.
            await self._pool.expire_connections()
        return mapped

    @asynccontextmanager
    async def service(self) -> AsyncIterator[asyncpg.Connection]:
        """A transaction as the connecting role."""
        pool = self.pool
        try:
            # The acquire timeout covers a pool exhausted under load, not only a slow connect.
            async with (
                pool.acquire(timeout=self.options.connect_timeout) as conn,
                conn.transaction(),
            ):
                yield conn
        except Exception as exc:
            mapped = await self._fail(exc)
            if mapped is None or mapped is exc:
                raise
            raise mapped from exc

    @asynccontextmanager
    async def user(self, user_id: str) -> AsyncIterator[asyncpg.Connection]:
        """A transaction in which PostgreSQL enforces that only ``user_id``'s rows are visible
        (when scoping is active; otherwise the caller's ``user_id`` filter is all there is)."""
        async with self.service() as conn:
            scoping = await self.scoping(conn)
            if scoping.active:
                claims = json.dumps({"sub": user_id, "role": "authenticated"})
                # auth.uid() prefers the legacy `request.jwt.claim.sub` when it is set; a pooled
                # server connection shared with other clients could carry a stale one at
                # session level, so it is overridden for this transaction as well.
                await conn.execute(
                    "SELECT set_config('role', 'authenticated', true), "
                    "set_config('request.jwt.claims', $1, true), "
                    "set_config('request.jwt.claim.sub', $2, true)",
                    claims,
                    user_id,
                )
            yield conn

    # ------------------------------------------------------------------ health

    async def ping(self) -> None:
        """``SELECT 1`` (simple protocol) within ``ping_timeout``, retrying once on a stale
        connection; also runs the RLS probe so a required-but-missing setup fails readiness."""
        try:
            async with asyncio.timeout(self.options.ping_timeout):
                for attempt in (1, 2):
                    try:
                        async with self.service() as conn:
                            await conn.execute("SELECT 1")
                            await self.scoping(conn)  # fails readiness when RLS is required but off
                        return
                    except StorageError as exc:
                        if attempt == 2 or not isinstance(exc.__cause__, _LOST):
                            raise
        except TimeoutError:
            raise StorageError(
                f"PostgreSQL did not answer within {self.options.ping_timeout:g}s"
            ) from None

    async def scoping(self, conn: asyncpg.Connection) -> Scoping:
        """Whether user transactions run as ``authenticated`` under RLS (probed on first use);
        raises :class:`StorageError` when ``pulseplan_rls=on`` and they cannot."""
        required = self.options.rls == "on"
        # Probed once; while required but impossible, probed again each time, so fixing the
        # database (adding the policy) takes effect without a restart.
        if self._scoping is None or (required and not self._scoping.active):
            self._scoping = await self._probe(conn)
        if required and not self._scoping.active:
            raise StorageError(
                f"row-level security required (pulseplan_rls=on) but {self._scoping.reason}"
            )
        return self._scoping

    async def _probe(self, conn: asyncpg.Connection) -> Scoping:
        if self.options.rls == "off":
            return Scoping(False, "rls off (pulseplan_rls=off)")
        row: Any = await conn.fetchrow(_PROBE, self.table, owner_policy_name(self.table))
        missing = None
        if not row["has_role"]:
            missing = "role authenticated does not exist"
        elif not row["can_switch"]:
            missing = "the connecting role is not a member of role authenticated"
        elif not row["has_uid"]:
            missing = "function auth.uid() does not exist"
        elif not row["has_policy"]:
            missing = (
                f"policy {owner_policy_name(self.table)} is missing "
                "(migrated before auth.uid() existed?)"
            )
        if missing is None:
            return Scoping(True, "rls on (user queries run as role authenticated)")
        if self.options.rls == "auto":
            logger.warning(
                "PostgreSQL row-level security scoping is OFF: {}; user queries rely on their "
                "user_id filter only (set pulseplan_rls=on to require it)",
                missing,
            )
        return Scoping(False, f"rls off: {missing}", missing)
