"""Run the storage contract on backends whose user ids are UUIDs (PostgreSQL: ``user_id uuid``,
as Supabase's ``auth.uid()`` requires).

The contract names users ``"u1"``, ``"a"``, ``"user0"``...; :class:`UuidUsers` maps each name to
a stable UUID on the way in and back on the way out, and passes everything else through, so
the contract's assertions hold unchanged. Ids that are not user ids (connection ids such as
``"missing-id"``) pass through untouched: the backend itself must treat them as absent.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from pulseplan.cache.delegate import DelegatingStorage
from pulseplan.storage.base import Storage
from pulseplan.storage.models import AuditRecord
from pulseplan.storage.models import Connection
from pulseplan.storage.models import NewConnection

NAMESPACE = uuid.UUID("8f0a1a3e-3c55-4a8e-9d43-4f0a7d1c2b10")


class UuidUsers(DelegatingStorage):
    """A :class:`Storage` that translates readable user names to UUIDs for ``inner``; calls
    that carry no user id are forwarded unchanged by :class:`DelegatingStorage`."""

    def __init__(self, inner: Storage):
        super().__init__(inner)
        self._names: dict[str, str] = {}

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.inner, attribute)

    def uid(self, name: str) -> str:
        """The UUID standing for ``name`` (a UUID stays itself)."""
        try:
            return str(uuid.UUID(name))
        except ValueError:
            value = str(uuid.uuid5(NAMESPACE, name))
            self._names[value] = name
            return value

    def _back(self, row: Connection | None) -> Connection | None:
        if row is None:
            return None
        return replace(row, user_id=self._names.get(row.user_id, row.user_id))

    def _rows(self, rows: list[Connection]) -> list[Connection]:
        return [replace(r, user_id=self._names.get(r.user_id, r.user_id)) for r in rows]

    # connections
    async def get_connection(self, user_id: str, provider: str) -> Connection | None:
        return self._back(await self.inner.get_connection(self.uid(user_id), provider))

    async def get_connection_by_id(self, connection_id: str) -> Connection | None:
        return self._back(await self.inner.get_connection_by_id(connection_id))

    async def list_connections(self, user_id: str) -> list[Connection]:
        return self._rows(await self.inner.list_connections(self.uid(user_id)))

    async def upsert_connection(self, new: NewConnection) -> tuple[Connection, bool]:
        row, created = await self.inner.upsert_connection(
            replace(new, user_id=self.uid(new.user_id))
        )
        back = self._back(row)
        assert back is not None
        return back, created

    async def update_connection(
        self, connection_id: str, expected_version: int, **changes: Any
    ) -> Connection | None:
        return self._back(
            await self.inner.update_connection(connection_id, expected_version, **changes)
        )

    async def delete_connection(self, user_id: str, provider: str) -> Connection | None:
        return self._back(await self.inner.delete_connection(self.uid(user_id), provider))

    async def claim_due_connections(self, **kwargs: Any) -> list[Connection]:
        return self._rows(await self.inner.claim_due_connections(**kwargs))

    async def connections_page(self, after_id: str | None, limit: int) -> list[Connection]:
        return self._rows(await self.inner.connections_page(after_id, limit))

    # audit
    async def add_audit(self, records: Sequence[AuditRecord]) -> None:
        await self.inner.add_audit([replace(r, user_id=self.uid(r.user_id)) for r in records])

    async def list_audit(
        self, user_id: str, *, limit: int = 100, before: datetime | None = None
    ) -> list[AuditRecord]:
        rows = await self.inner.list_audit(self.uid(user_id), limit=limit, before=before)
        return [replace(r, user_id=self._names.get(r.user_id, r.user_id)) for r in rows]
