"""Background refresh: every worker sweeps for connections about to expire and refreshes them
before anyone asks, so the on-demand path rarely has to wait for a provider.

Work is split by *claims* in the storage layer (a lease per row), so several workers never pick
the same connection; the refresh lock and the version fence still guard each refresh. A
connection whose refreshes keep failing is pushed back by ``next_refresh_at`` (exponential
backoff with jitter) and so never holds up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from loguru import logger

from pulseplan.broker.refresh import RefreshCoordinator
from pulseplan.broker.results import TokenProblem
from pulseplan.settings import Settings
from pulseplan.storage.base import Storage
from pulseplan.storage.base import StorageError
from pulseplan.storage.models import Connection
from pulseplan.storage.models import utcnow

MAX_BATCHES_PER_SWEEP = 100


@dataclass
class SweepResult:
    claimed: int = 0
    refreshed: int = 0
    failed: int = 0


def provider_slots(batch: list[Connection], concurrency: int) -> dict[str, asyncio.Semaphore]:
    """Per-provider limits for one batch. With several providers in it, each gets at most half
    the slots (at least one), so a provider that hangs until the timeout cannot hold every slot
    while other providers' connections expire; a batch of one provider may use all of them."""
    providers = {row.provider for row in batch}
    share = concurrency if len(providers) == 1 else max(1, concurrency // 2)
    return {provider: asyncio.Semaphore(share) for provider in providers}


class BackgroundRefresher:
    """Sweeps due connections in bounded batches with bounded concurrency."""

    def __init__(self, *, storage: Storage, coordinator: RefreshCoordinator, settings: Settings):
        self.storage = storage
        self.coordinator = coordinator
        self.settings = settings
        self.owner = f"sweeper-{uuid.uuid4().hex[:12]}"
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def sweep(self, now: datetime | None = None) -> SweepResult:
        """Refresh everything due now; returns counts. Used by ``pulseplan refresh`` too."""
        result = SweepResult()
        concurrency = self.settings.refresh_concurrency
        semaphore = asyncio.Semaphore(concurrency)
        skew = timedelta(seconds=self.settings.refresh_skew_seconds)

        async def one(row: Connection, slots: asyncio.Semaphore) -> None:
            # The provider's slot first: rows waiting for a stuck provider hold no shared slot.
            async with slots, semaphore:
                try:
                    if self._stop.is_set():
                        return  # shutting down: leave it to the next worker (claim released)
                    fresh = await self.coordinator.refresh(row)
                    result.refreshed += fresh.refreshed
                except TokenProblem:
                    result.failed += 1
                except Exception as exc:  # one bad row never stops the sweep
                    result.failed += 1
                    logger.error("refresh of {} failed: {}", row.id, type(exc).__name__)
                finally:
                    await self.storage.release_claim(row.id, self.owner)

        for _ in range(MAX_BATCHES_PER_SWEEP):
            if self._stop.is_set():
                break  # a shutdown waits for the refreshes in flight, never for a backlog
            at = now or utcnow()
            batch = await self.storage.claim_due_connections(
                now=at,
                horizon=at + skew,
                limit=self.settings.refresh_batch_size,
                owner=self.owner,
                lease_seconds=self.settings.refresh_lock_ttl * 2,
            )
            result.claimed += len(batch)
            slots = provider_slots(batch, concurrency)
            await asyncio.gather(*(one(row, slots[row.provider]) for row in batch))
            if len(batch) < self.settings.refresh_batch_size:
                break
        return result

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                result = await self.sweep()
                if result.claimed:
                    logger.info(
                        "refresh sweep: {} due, {} refreshed, {} failed",
                        result.claimed,
                        result.refreshed,
                        result.failed,
                    )
            except StorageError as exc:
                logger.warning("refresh sweep skipped: storage unavailable ({})", exc)
            except Exception as exc:
                logger.error("refresh sweep failed: {}", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.settings.refresh_interval)

    def start(self) -> None:
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.get_running_loop().create_task(self._loop())

    def request_stop(self) -> None:
        """From now on start no refresh and no batch; refreshes in flight go on."""
        self._stop.set()

    async def stop(self) -> None:
        """Stop soon: refreshes in flight finish (a rotated token is stored, locks and claims
        end); no new refresh or batch starts, so shutdown is not held up by a backlog."""
        self.request_stop()
        if self._task is not None:
            await self._task
            self._task = None
