"""The storage interface every backend implements (SQLite, PostgreSQL, Supabase REST).

The contract suite in ``tests/storage_contract.py`` runs against each backend. Rules every
backend keeps:

* writes to a connection are fenced by ``version``: ``update_connection`` succeeds only when
  the row still has the version the caller read, and bumps it;
* ``upsert_connection`` is one atomic statement on UNIQUE(user_id, provider);
* ``take_flow`` is an atomic single-use take;
* a lease lock is released or extended only by its owner;
* times are timezone-aware UTC.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pulseplan.auth.agents import AgentRecord
from pulseplan.storage.models import AuditRecord
from pulseplan.storage.models import Connection
from pulseplan.storage.models import NewConnection


class StorageError(Exception):
    """The backend failed (unreachable, timed out). Requests map it to 503."""


class Storage(abc.ABC):
    """Abstract storage backend. Implementations are safe for concurrent use by one process."""

    #: Short name shown by health checks and ``pulseplan check``.
    name: str = "storage"

    # ------------------------------------------------------------------ lifecycle

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect (pools, files). Idempotent."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Round-trip to the backend; raises :class:`StorageError` when it is unreachable."""

    @abc.abstractmethod
    async def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied now."""

    @abc.abstractmethod
    async def pending_migrations(self) -> list[str]:
        """Names of migrations not applied yet (empty when up to date)."""

    # ------------------------------------------------------------------ connections

    @abc.abstractmethod
    async def get_connection(self, user_id: str, provider: str) -> Connection | None:
        """The user's connection to ``provider``, or ``None``."""

    @abc.abstractmethod
    async def get_connection_by_id(self, connection_id: str) -> Connection | None:
        """A connection by id (background jobs; not user-scoped)."""

    @abc.abstractmethod
    async def list_connections(self, user_id: str) -> list[Connection]:
        """All of a user's connections, ordered by provider."""

    @abc.abstractmethod
    async def upsert_connection(self, new: NewConnection) -> tuple[Connection, bool]:
        """Insert, or replace the tokens of, the (user, provider) row in one statement.

        A replace resets status to ``active``, clears failures and bumps ``version``.
        :return: the stored row and whether it was created.
        """

    @abc.abstractmethod
    async def update_connection(
        self, connection_id: str, expected_version: int, **changes: Any
    ) -> Connection | None:
        """Compare-and-swap update of the columns in ``models.UPDATABLE``.

        :return: the new row, or ``None`` when the row is gone or its version moved on.
        """

    @abc.abstractmethod
    async def delete_connection(self, user_id: str, provider: str) -> Connection | None:
        """Delete and return the row, or ``None`` when there was none."""

    @abc.abstractmethod
    async def claim_due_connections(
        self,
        *,
        now: datetime,
        horizon: datetime,
        limit: int,
        owner: str,
        lease_seconds: float,
    ) -> list[Connection]:
        """Claim up to ``limit`` active connections that need a refresh, earliest expiry first.

        Due means: has a refresh token, ``expires_at <= horizon``, ``next_refresh_at`` is null or
        ``<= now``, and no other owner holds an unexpired claim. Claimed rows are leased to
        ``owner`` for ``lease_seconds`` so concurrent sweepers split the work.
        """

    @abc.abstractmethod
    async def release_claim(self, connection_id: str, owner: str) -> None:
        """Drop ``owner``'s claim on a connection (no-op when it holds none)."""

    @abc.abstractmethod
    async def connections_page(self, after_id: str | None, limit: int) -> list[Connection]:
        """All connections ordered by id, ``limit`` at a time, after ``after_id`` (key rotation)."""

    @abc.abstractmethod
    async def count_connections_by_status(self) -> dict[str, int]:
        """Row counts per status (metrics)."""

    # ------------------------------------------------------------------ OAuth flows

    @abc.abstractmethod
    async def put_flow(self, key: str, payload: str, expires_at: datetime) -> None:
        """Store a pending OAuth flow under ``key`` (a hash of the state)."""

    @abc.abstractmethod
    async def take_flow(self, key: str, now: datetime) -> str | None:
        """Atomically remove and return an unexpired flow; ``None`` if absent or expired."""

    # ------------------------------------------------------------------ lease locks

    @abc.abstractmethod
    async def acquire_lock(self, name: str, owner: str, ttl: float, now: datetime) -> bool:
        """Take ``name`` for ``owner`` unless another owner holds an unexpired lease."""

    @abc.abstractmethod
    async def extend_lock(self, name: str, owner: str, ttl: float, now: datetime) -> bool:
        """Extend ``owner``'s lease; ``False`` when it no longer holds the lock."""

    @abc.abstractmethod
    async def release_lock(self, name: str, owner: str) -> bool:
        """Release ``owner``'s lease; ``False`` (and nothing changed) for anyone else."""

    # ------------------------------------------------------------------ agents
    # (the :class:`pulseplan.auth.agents.AgentStore` protocol)

    @abc.abstractmethod
    async def create_agent(
        self, name: str, secret_hash: str, providers: list[str] | None
    ) -> AgentRecord:
        """Store a new agent; raise ``DuplicateAgent`` when an active one has ``name``."""

    @abc.abstractmethod
    async def get_agent_by_hash(self, secret_hash: str) -> AgentRecord | None:
        """The agent with this secret hash (revoked or not), or ``None``."""

    @abc.abstractmethod
    async def list_agents(self) -> list[AgentRecord]:
        """Every agent, revoked ones included, oldest first."""

    @abc.abstractmethod
    async def revoke_agent(self, name: str) -> bool:
        """Revoke the active agent named ``name``; ``False`` when there is none."""

    # ------------------------------------------------------------------ audit

    @abc.abstractmethod
    async def add_audit(self, records: Sequence[AuditRecord]) -> None:
        """Append audit records."""

    @abc.abstractmethod
    async def list_audit(
        self, user_id: str, *, limit: int = 100, before: datetime | None = None
    ) -> list[AuditRecord]:
        """A user's audit records, newest first."""
