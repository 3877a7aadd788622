"""OAuth flows, lease locks, agents and the audit trail over PostgREST (a mixin of
:class:`~pulseplan.storage.supabase_rest.SupabaseRestStorage`), plus the JSON conversions both
modules share.

Everything here uses the service key except ``list_audit``, which forwards the user's JWT like
the connection reads. Single-statement semantics come from PostgREST itself: a ``DELETE`` with
``Prefer: return=representation`` is one ``DELETE ... RETURNING`` (the atomic single-use flow
take and the owner-only lock release), a ``PATCH`` with filters is one ``UPDATE ... WHERE``
(the owner-only lock extension), and the lock take is the ``pulseplan_acquire_lock`` function.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

from postgrest.types import ReturnMethod

from pulseplan.auth.agents import AgentRecord
from pulseplan.auth.agents import DuplicateAgent
from pulseplan.storage.models import AuditRecord
from pulseplan.storage.models import utcnow
from pulseplan.storage.postgres_records import as_uuid
from pulseplan.storage.postgres_records import aware
from pulseplan.storage.postgres_records import maybe_aware
from pulseplan.storage.postgres_records import user_uuid
from pulseplan.storage.supabase_rest_client import RestClient
from pulseplan.storage.supabase_rest_client import RestError

FLOWS = "pulseplan_oauth_flows"
LOCKS = "pulseplan_locks"
AGENTS = "pulseplan_agents"
AUDIT = "pulseplan_audit"
#: The partial unique index that makes an active agent name unique (0001_initial).
ACTIVE_AGENT_NAME = "pulseplan_agents_active_name"


def wire_time(value: datetime) -> str:
    """An aware datetime as PostgREST filter text (ISO 8601, UTC)."""
    return aware(value).astimezone(UTC).isoformat()


def maybe_wire_time(value: datetime | None) -> str | None:
    return None if value is None else wire_time(value)


def parse_time(value: Any) -> datetime:
    """A ``timestamptz`` from PostgREST's JSON (ISO 8601 with an offset) as aware UTC."""
    if not isinstance(value, str):
        raise RestError("Supabase REST returned a malformed timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RestError("Supabase REST returned a malformed timestamp") from None
    if parsed.tzinfo is None:  # timestamptz always carries an offset; refuse to guess
        raise RestError("Supabase REST returned a timestamp without a time zone")
    return parsed.astimezone(UTC)


def maybe_parse_time(value: Any) -> datetime | None:
    return None if value is None else parse_time(value)


def _agent(row: dict[str, Any]) -> AgentRecord:
    try:
        providers = row["providers"]
        return AgentRecord(
            id=str(row["id"]),
            name=row["name"],
            secret_hash=row["secret_hash"],
            providers=None if providers is None else tuple(providers),
            created_at=parse_time(row["created_at"]),
            revoked_at=maybe_parse_time(row["revoked_at"]),
        )
    except (KeyError, TypeError):
        raise RestError("Supabase REST returned a malformed agent row") from None


def _audit(row: dict[str, Any]) -> AuditRecord:
    try:
        return AuditRecord(
            id=str(row["id"]),
            occurred_at=parse_time(row["occurred_at"]),
            actor_type=row["actor_type"],
            actor_id=row["actor_id"],
            user_id=str(row["user_id"]),
            provider=row["provider"],
            action=row["action"],
            outcome=row["outcome"],
            request_id=row["request_id"],
            detail=row["detail"],
        )
    except (KeyError, TypeError):
        raise RestError("Supabase REST returned a malformed audit row") from None


class RestRecordTables:
    """Flows, locks, agents and audit over PostgREST (the matching ``Storage`` methods)."""

    client: RestClient

    # ------------------------------------------------------------------ OAuth flows

    async def put_flow(self, key: str, payload: str, expires_at: datetime) -> None:
        # Opportunistic clean-up keeps the table small without a scheduler.
        await self.client.run(
            self.client.table(FLOWS)
            .delete(returning=ReturnMethod.minimal)
            .lt("expires_at", wire_time(utcnow()))
        )
        await self.client.run(
            self.client.table(FLOWS).insert(
                {"key": key, "payload": payload, "expires_at": wire_time(expires_at)},
                returning=ReturnMethod.minimal,
            )
        )

    async def take_flow(self, key: str, now: datetime) -> str | None:
        # One DELETE ... RETURNING: of concurrent takers, exactly one gets the row.
        rows = await self.client.rows(self.client.table(FLOWS).delete().eq("key", key))
        if not rows or parse_time(rows[0].get("expires_at")) <= now:
            return None
        payload = rows[0].get("payload")
        if not isinstance(payload, str):
            raise RestError("Supabase REST returned a malformed flow row")
        return payload

    # ------------------------------------------------------------------ lease locks

    async def acquire_lock(self, name: str, owner: str, ttl: float, now: datetime) -> bool:
        got = await self.client.run(
            self.client.rpc(
                "pulseplan_acquire_lock",
                {
                    "p_name": name,
                    "p_owner": owner,
                    "p_expires_at": wire_time(now + timedelta(seconds=ttl)),
                    "p_now": wire_time(now),
                },
            )
        )
        return got is True

    async def extend_lock(self, name: str, owner: str, ttl: float, now: datetime) -> bool:
        rows = await self.client.rows(
            self.client.table(LOCKS)
            .update({"expires_at": wire_time(now + timedelta(seconds=ttl))})
            .eq("name", name)
            .eq("owner", owner)
            .gt("expires_at", wire_time(now))
        )
        return bool(rows)

    async def release_lock(self, name: str, owner: str) -> bool:
        rows = await self.client.rows(
            self.client.table(LOCKS).delete().eq("name", name).eq("owner", owner)
        )
        return bool(rows)

    # ------------------------------------------------------------------ agents

    async def create_agent(
        self, name: str, secret_hash: str, providers: list[str] | None
    ) -> AgentRecord:
        record = {
            "id": str(uuid.uuid4()),
            "name": name,
            "secret_hash": secret_hash,
            "providers": providers,
            "created_at": wire_time(utcnow()),
        }
        try:
            rows = await self.client.rows(self.client.table(AGENTS).insert(record))
        except RestError as exc:
            if exc.code != "23505" or exc.constraint != ACTIVE_AGENT_NAME:
                raise
            raise DuplicateAgent(f"an active agent named {name!r} already exists") from None
        if not rows:
            raise RestError("Supabase REST did not return the stored agent")
        return _agent(rows[0])

    async def get_agent_by_hash(self, secret_hash: str) -> AgentRecord | None:
        rows = await self.client.rows(
            self.client.table(AGENTS).select("*").eq("secret_hash", secret_hash)
        )
        return _agent(rows[0]) if rows else None

    async def list_agents(self) -> list[AgentRecord]:
        rows = await self.client.rows(
            self.client.table(AGENTS).select("*").order("created_at").order("id")
        )
        return [_agent(r) for r in rows]

    async def revoke_agent(self, name: str) -> bool:
        rows = await self.client.rows(
            self.client.table(AGENTS)
            .update({"revoked_at": wire_time(utcnow())})
            .eq("name", name)
            .is_("revoked_at", None)
        )
        return bool(rows)

    # ------------------------------------------------------------------ audit

    async def add_audit(self, records: Sequence[AuditRecord]) -> None:
        rows = [
            {
                "id": str(uuid.UUID(r.id)),
                "occurred_at": wire_time(r.occurred_at),
                "actor_type": r.actor_type,
                "actor_id": r.actor_id,
                "user_id": str(user_uuid(r.user_id)),
                "provider": r.provider,
                "action": r.action,
                "outcome": r.outcome,
                "request_id": r.request_id,
                "detail": r.detail,
            }
            for r in records
        ]
        if not rows:
            return
        await self.client.run(self.client.table(AUDIT).insert(rows, returning=ReturnMethod.minimal))

    async def list_audit(
        self, user_id: str, *, limit: int = 100, before: datetime | None = None
    ) -> list[AuditRecord]:
        uid = as_uuid(user_id)
        if uid is None:
            return []
        query = self.client.table(AUDIT).select("*").eq("user_id", str(uid))
        if (cutoff := maybe_aware(before)) is not None:
            query = query.lt("occurred_at", wire_time(cutoff))
        query = query.order("occurred_at", desc=True).order("id", desc=True).limit(limit)
        return [_audit(r) for r in await self.client.rows(query, "user")]
