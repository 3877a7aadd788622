"""The audit trail: who fetched whose tokens, and what else happened to a connection.

Audit fails closed: when the record cannot be written, the token is not handed out (the caller
gets a 503). Records name the actor, the user, the provider, the request and the outcome —
never a token.

Writes are group-committed: while one write is in flight, records of other requests gather and
go to storage together in the next write (one statement, one commit). Every caller still waits
until a write holding its own records has succeeded, and sees that write's error if it failed.
Alone, a request writes at once; under load, one commit (an fsync on SQLite) serves many.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Literal

from pulseplan.broker.results import FreshToken
from pulseplan.broker.results import TokenProblem
from pulseplan.storage.base import Storage
from pulseplan.storage.models import AuditRecord
from pulseplan.storage.models import utcnow
from pulseplan.web.request_id import request_id

ActorType = Literal["user", "agent", "system"]


class GroupCommit:
    """Funnels concurrent ``add_audit`` calls into as few storage writes as possible."""

    def __init__(self, storage: Storage):
        self.storage = storage
        #: Storage writes made (tests and the benchmark compare it with the calls).
        self.writes = 0
        self._busy = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queued: list[AuditRecord] = []
        self._queued_done: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def add(self, records: Sequence[AuditRecord]) -> None:
        """Return once ``records`` are stored; raise what the write that held them raised."""
        loop = asyncio.get_running_loop()
        if self._busy and self._loop is not loop:
            # A write left behind by an event loop that stopped mid-flight (tests): start over.
            self._busy, self._queued, self._queued_done = False, [], None
        if not self._busy:
            self._busy, self._loop = True, loop
            try:
                self.writes += 1
                await self.storage.add_audit(records)
            finally:
                self._start_next()
            return
        if self._queued_done is None:
            self._queued_done = loop.create_future()
            self._queued_done.add_done_callback(_retrieve)
        self._queued.extend(records)
        # Shielded: a caller that gives up (client gone) must not cancel the others' write.
        await asyncio.shield(self._queued_done)

    def _start_next(self) -> None:
        done, records = self._queued_done, self._queued
        if done is None:
            self._busy = False
            return
        self._queued_done, self._queued = None, []
        task = asyncio.get_running_loop().create_task(self._write(records, done))
        self._tasks.add(task)  # a reference until it ends (the loop keeps only weak ones)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, records: list[AuditRecord], done: asyncio.Future[None]) -> None:
        try:
            self.writes += 1
            await self.storage.add_audit(records)
        except asyncio.CancelledError:
            done.cancel()
            raise
        except Exception as exc:
            if not done.done():
                done.set_exception(exc)
        else:
            if not done.done():
                done.set_result(None)
        finally:
            self._start_next()


def _retrieve(future: asyncio.Future[None]) -> None:
    # Every waiter may have gone away; the failure is theirs, not an "unretrieved" warning.
    if not future.cancelled():
        future.exception()


class Auditor:
    """Writes audit records through the storage layer."""

    def __init__(self, storage: Storage):
        self.storage = storage
        self.commits = GroupCommit(storage)

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
        await self.commits.add(
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
        await self.commits.add(
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
