"""The audit trail: who fetched whose tokens, and what else happened to a connection.

Audit fails closed: when the record cannot be written, the token is not handed out (the caller
gets a 503). Records name the actor, the user, the provider, the request and the outcome —
never a token.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Literal

from pulseplan.broker.results import FreshToken
from pulseplan.broker.results import TokenProblem
from pulseplan.storage.base import Storage
from pulseplan.storage.models import AuditRecord
from pulseplan.storage.models import utcnow
from pulseplan.web.request_id import request_id

ActorType = Literal["user", "agent", "system"]


class Auditor:
    """Writes audit records through the storage layer."""

    def __init__(self, storage: Storage):
        self.storage = storage

    async def token_fetch(
        self,
        *,
        actor_type: ActorType,
        actor_id: str,
        user_id: str,
        results: Mapping[str, FreshToken | TokenProblem],
    ) -> None:
        """One record per provider asked for, before any token leaves the service."""
        now = utcnow()
        rid = request_id()
        await self.storage.add_audit(
            [
                AuditRecord(
                    id=str(uuid.uuid4()),
                    occurred_at=now,
                    actor_type=actor_type,
                    actor_id=actor_id,
                    user_id=user_id,
                    provider=provider,
                    action="token_fetch",
                    outcome=(
                        ("refreshed" if result.refreshed else "ok")
                        if isinstance(result, FreshToken)
                        else result.code
                    ),
                    request_id=rid,
                )
                for provider, result in results.items()
            ]
        )

    async def action(
        self,
        *,
        actor_type: ActorType,
        actor_id: str,
        user_id: str,
        provider: str | None,
        action: str,
        outcome: str,
        detail: str | None = None,
    ) -> None:
        """Record a connect, disconnect, forced refresh or validation."""
        await self.storage.add_audit(
            [
                AuditRecord(
                    id=str(uuid.uuid4()),
                    occurred_at=utcnow(),
                    actor_type=actor_type,
                    actor_id=actor_id,
                    user_id=user_id,
                    provider=provider,
                    action=action,
                    outcome=outcome,
                    request_id=request_id(),
                    detail=detail,
                )
            ]
        )
