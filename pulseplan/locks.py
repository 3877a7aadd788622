"""Cross-process lease locks for one-refresh-at-a-time.

A lock has an owner token and a lease; only the owner releases or extends it. A lease can lapse
under a long pause, so locks are never the only guard: every token write is also fenced by the
row's ``version`` (Kleppmann's fencing token, here the row itself).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Protocol

from pulseplan.observability import metrics
from pulseplan.storage.base import Storage
from pulseplan.storage.models import utcnow


class LockManager(Protocol):
    """A lease lock service (the database's lock table, or Redis)."""

    async def acquire(self, name: str, owner: str, ttl: float) -> bool:
        """Take ``name`` unless someone else holds an unexpired lease."""
        ...

    async def extend(self, name: str, owner: str, ttl: float) -> bool:
        """Extend ``owner``'s lease; ``False`` when the lock is no longer ``owner``'s."""
        ...

    async def release(self, name: str, owner: str) -> bool:
        """Release ``owner``'s lease; does nothing for anyone else's."""
        ...


class StorageLocks:
    """:class:`LockManager` on the storage backend's lock table (works with no Redis)."""

    def __init__(self, storage: Storage):
        self.storage = storage

    async def acquire(self, name: str, owner: str, ttl: float) -> bool:
        return await self.storage.acquire_lock(name, owner, ttl, utcnow())

    async def extend(self, name: str, owner: str, ttl: float) -> bool:
        return await self.storage.extend_lock(name, owner, ttl, utcnow())

    async def release(self, name: str, owner: str) -> bool:
        return await self.storage.release_lock(name, owner)


class LockTimeout(Exception):
    """The lock stayed busy for the whole wait budget."""


@asynccontextmanager
async def lease(
    locks: LockManager,
    name: str,
    *,
    ttl: float,
    wait: float,
    on_busy: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncIterator[str | None]:
    """Hold ``name`` for the block; yields the owner token.

    While another owner holds it, ``on_busy`` is awaited between attempts; when it returns
    ``True`` (the holder already did the work) the block runs *without* the lock and yields
    ``None``. Polls with jittered backoff because a lock in a database or Redis has no wake-up.

    :raises LockTimeout: still busy after ``wait`` seconds.
    """
    owner = uuid.uuid4().hex
    started = time.monotonic()
    deadline = started + wait
    delay = 0.02
    kind = name.partition(":")[0]  # observability: the lock's kind, never its id-bearing name
    while not await locks.acquire(name, owner, ttl):
        if on_busy is not None and await on_busy():
            metrics.lock_wait(time.monotonic() - started, lock=kind, outcome="skipped")
            yield None
            return
        if time.monotonic() >= deadline:
            metrics.lock_wait(time.monotonic() - started, lock=kind, outcome="timeout")
            raise LockTimeout(name)
        await asyncio.sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311 - jitter, not crypto
        delay = min(delay * 2, 0.5)
    metrics.lock_wait(time.monotonic() - started, lock=kind, outcome="acquired")
    try:
        yield owner
    finally:
        await locks.release(name, owner)
