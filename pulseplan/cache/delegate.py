"""A :class:`Storage` that forwards every call to another one: the base of storage wrappers
(the Redis row cache overrides the reads it caches and the writes that invalidate)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pulseplan.auth.agents import AgentRecord
from pulseplan.storage.base import Storage
from pulseplan.storage.models import AuditRecord
from pulseplan.storage.models import Connection
from pulseplan.storage.models import NewConnection


class DelegatingStorage(Storage):
    """Forwards everything to ``inner``; subclasses override what they change."""

    def __init__(self, inner: Storage):
        self.inner = inner
        self.name = inner.name

    @property
    def detail(self) -> str:
        """The wrapped backend's health detail (the PostgreSQL backend reports its RLS mode)."""
        detail: str = getattr(self.inner, "detail", self.inner.name)
        return detail

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def ping(self) -> None:
        await self.inner.ping()

    async def migrate(self) -> list[str]:
        return await self.inner.migrate()

    async def pending_migrations(self) -> list[str]:
        return await self.inner.pending_migrations()

    async def connections_page(self, after_id: str | None, limit: int) -> list[Connection]:
        return await self.inner.connections_page(after_id, limit)

    async def count_connections_by_status(self) -> dict[str, int]:
        return await self.inner.count_connections_by_status()

    async def put_flow(self, key: str, payload: str, expires_at: datetime) -> None:
        await self.inner.put_flow(key, payload, expires_at)

    async def take_flow(self, key: str, now: datetime) -> str | None:
        return await self.inner.take_flow(key, now)

    async def acquire_lock(self, name: str, owner: str, ttl: float, now: datetime) -> bool:
        return await self.inner.acquire_lock(name, owner, ttl, now)

    async def extend_lock(self, name: str, owner: str, ttl: float, now: datetime) -> bool:
        return await self.inner.extend_lock(name, owner, ttl, now)

    async def release_lock(self, name: str, owner: str) -> bool:
        return await self.inner.release_lock(name, owner)

    async def create_agent(
        self, name: str, secret_hash: str, providers: list[str] | None
    ) -> AgentRecord:
        return await self.inner.create_agent(name, secret_hash, providers)

    async def get_agent_by_hash(self, secret_hash: str) -> AgentRecord | None:
        return await self.inner.get_agent_by_hash(secret_hash)

    async def list_agents(self) -> list[AgentRecord]:
        return await self.inner.list_agents()

    async def revoke_agent(self, name: str) -> bool:
        return await self.inner.revoke_agent(name)

    async def add_audit(self, records: Sequence[AuditRecord]) -> None:
        await self.inner.add_audit(records)

    async def list_audit(
        self, user_id: str, *, limit: int = 100, before: datetime | None = None
    ) -> list[AuditRecord]:
        return await self.inner.list_audit(user_id, limit=limit, before=before)

    async def get_connection(self, user_id: str, provider: str) -> Connection | None:
        return await self.inner.get_connection(user_id, provider)

    async def get_connection_by_id(self, connection_id: str) -> Connection | None:
        return await self.inner.get_connection_by_id(connection_id)

    async def list_connections(self, user_id: str) -> list[Connection]:
        return await self.inner.list_connections(user_id)

    async def upsert_connection(self, new: NewConnection) -> tuple[Connection, bool]:
        return await self.inner.upsert_connection(new)

    async def update_connection(
        self, connection_id: str, expected_version: int, **changes: Any
    ) -> Connection | None:
        return await self.inner.update_connection(connection_id, expected_version, **changes)

    async def delete_connection(self, user_id: str, provider: str) -> Connection | None:
        return await self.inner.delete_connection(user_id, provider)

    async def claim_due_connections(
        self,
        *,
        now: datetime,
        horizon: datetime,
        limit: int,
        owner: str,
        lease_seconds: float,
    ) -> list[Connection]:
        return await self.inner.claim_due_connections(
            now=now, horizon=horizon, limit=limit, owner=owner, lease_seconds=lease_seconds
        )

    async def release_claim(self, connection_id: str, owner: str) -> None:
        await self.inner.release_claim(connection_id, owner)
