"""The service-only tables of the PostgreSQL backend: OAuth flows, lease locks, agents and the
audit trail (a mixin of :class:`~pulseplan.storage.postgres.PostgresStorage`), plus the value
conversions both modules share.

All of it runs as the connecting role (:meth:`PgPool.service`) except ``list_audit``, which a
user reads under row-level security like their connections.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from datetime import timedelta

import asyncpg

from pulseplan.auth.agents import AgentRecord
from pulseplan.auth.agents import DuplicateAgent
from pulseplan.storage.models import AuditRecord
from pulseplan.storage.models import utcnow
from pulseplan.storage.postgres_pool import PgPool


def as_uuid(value: str | None) -> uuid.UUID | None:
    """``value`` as a UUID, or ``None`` when it is not one."""
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError):
        return None


def aware(value: datetime) -> datetime:
    """``value`` unchanged; a naive datetime is a caller bug (times are aware UTC)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to storage; use timezone-aware UTC")
    return value


def maybe_aware(value: datetime | None) -> datetime | None:
    return None if value is None else aware(value)


def user_uuid(user_id: str) -> uuid.UUID:
    """``user_id`` as a UUID; a write for a user id that is not one is a caller bug."""
    parsed = as_uuid(user_id)
    if parsed is None:
        raise ValueError("user_id must be a UUID on PostgreSQL")
    return parsed


def _agent(row: asyncpg.Record) -> AgentRecord:
    providers = row["providers"]
    return AgentRecord(
        id=str(row["id"]),
        name=row["name"],
        secret_hash=row["secret_hash"],
        providers=None if providers is None else tuple(providers),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


def _audit(row: asyncpg.Record) -> AuditRecord:
    return AuditRecord(**{**dict(row), "id": str(row["id"]), "user_id": str(row["user_id"])})


class PgRecordTables:
    """Flows, locks, agents and audit on PostgreSQL (the matching ``Storage`` methods)."""

    db: PgPool

    # ------------------------------------------------------------------ OAuth flows

    async def put_flow(self, key: str, payload: str, expires_at: datetime) -> None:
        async with self.db.service() as conn:
            # Opportunistic clean-up keeps the table small without a scheduler.
            await conn.execute("DELETE FROM pulseplan_oauth_flows WHERE expires_at < $1", utcnow())
            await conn.execute(
                "INSERT INTO pulseplan_oauth_flows (key, payload, expires_at) VALUES ($1, $2, $3)",
                key,
                payload,
                aware(expires_at),
            )

    async def take_flow(self, key: str, now: datetime) -> str | None:
        async with self.db.service() as conn:
            row = await conn.fetchrow(
                "DELETE FROM pulseplan_oauth_flows WHERE key = $1 RETURNING payload, expires_at",
                key,
            )
        if row is None or row["expires_at"] <= now:
            return None
        payload: str = row["payload"]
        return payload

    # ------------------------------------------------------------------ lease locks

    async def acquire_lock(self, name: str, owner: str, ttl: float, now: datetime) -> bool:
        async with self.db.service() as conn:
            got = await conn.fetchval(
                """
                INSERT INTO pulseplan_locks AS l (name, owner, expires_at) VALUES ($1, $2, $3)
                ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner,
                    expires_at = EXCLUDED.expires_at
                WHERE l.expires_at <= $4 OR l.owner = EXCLUDED.owner
                RETURNING owner
                """,
                name,
                owner,
                aware(now) + timedelta(seconds=ttl),
                now,
            )
        return got is not None

    async def extend_lock(self, name: str, owner: str, ttl: float, now: datetime) -> bool:
        async with self.db.service() as conn:
            got = await conn.fetchval(
                "UPDATE pulseplan_locks SET expires_at = $1 "
                "WHERE name = $2 AND owner = $3 AND expires_at > $4 RETURNING name",
                aware(now) + timedelta(seconds=ttl),
                name,
                owner,
                now,
            )
        return got is not None

    async def release_lock(self, name: str, owner: str) -> bool:
        async with self.db.service() as conn:
            got = await conn.fetchval(
                "DELETE FROM pulseplan_locks WHERE name = $1 AND owner = $2 RETURNING name",
                name,
                owner,
            )
        return got is not None

    # ------------------------------------------------------------------ agents

    async def create_agent(
        self, name: str, secret_hash: str, providers: list[str] | None
    ) -> AgentRecord:
        try:
            async with self.db.service() as conn:
                row = await conn.fetchrow(
                    "INSERT INTO pulseplan_agents (id, name, secret_hash, providers, created_at) "
                    "VALUES ($1, $2, $3, $4, $5) RETURNING *",
                    uuid.uuid4(),
                    name,
                    secret_hash,
                    providers,
                    utcnow(),
                )
        except asyncpg.exceptions.UniqueViolationError as exc:
            if exc.constraint_name != "pulseplan_agents_active_name":
                raise
            raise DuplicateAgent(f"an active agent named {name!r} already exists") from None
        return _agent(row)

    async def get_agent_by_hash(self, secret_hash: str) -> AgentRecord | None:
        async with self.db.service() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM pulseplan_agents WHERE secret_hash = $1", secret_hash
            )
        return None if row is None else _agent(row)

    async def list_agents(self) -> list[AgentRecord]:
        async with self.db.service() as conn:
            rows = await conn.fetch("SELECT * FROM pulseplan_agents ORDER BY created_at, id")
        return [_agent(r) for r in rows]

    async def revoke_agent(self, name: str) -> bool:
        async with self.db.service() as conn:
            got = await conn.fetchval(
                "UPDATE pulseplan_agents SET revoked_at = $1 "
                "WHERE name = $2 AND revoked_at IS NULL RETURNING id",
                utcnow(),
                name,
            )
        return got is not None

    # ------------------------------------------------------------------ audit

    async def add_audit(self, records: Sequence[AuditRecord]) -> None:
        rows = [
            (
                uuid.UUID(r.id),
                aware(r.occurred_at),
                r.actor_type,
                r.actor_id,
                user_uuid(r.user_id),
                r.provider,
                r.action,
                r.outcome,
                r.request_id,
                r.detail,
            )
            for r in records
        ]
        if not rows:
            return
        async with self.db.service() as conn:
            await conn.executemany(
                "INSERT INTO pulseplan_audit (id, occurred_at, actor_type, actor_id, user_id, "
                "provider, action, outcome, request_id, detail) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                rows,
            )

    async def list_audit(
        self, user_id: str, *, limit: int = 100, before: datetime | None = None
    ) -> list[AuditRecord]:
        uid = as_uuid(user_id)
        if uid is None:
            return []
        async with self.db.user(str(uid)) as conn:
            rows = await conn.fetch(
                "SELECT * FROM pulseplan_audit WHERE user_id = $1 "
                "AND ($2::timestamptz IS NULL OR occurred_at < $2) "
                "ORDER BY occurred_at DESC, id DESC LIMIT $3",
                uid,
                maybe_aware(before),
                limit,
            )
        return [_audit(r) for r in rows]
