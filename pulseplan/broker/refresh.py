"""One refresh per connection at a time, across tasks and processes, losing nothing.

The order of operations is the whole point (DESIGN.md §6.2, security-checklist §6):

1. callers in this process share one in-flight refresh per connection (single flight);
2. across processes a lease lock ``refresh:{connection id}`` admits one refresher; a waiter
   re-reads the row and stops waiting as soon as the version moved (someone refreshed);
3. the lock holder re-reads the authoritative row (never a cache) and skips the refresh if it
   is no longer needed;
4. the new tokens are written with a compare-and-swap on ``version``; a rotated refresh token is
   stored before the access token is handed out, and a response without one keeps the old one;
5. ``invalid_grant`` after a sibling rotated the token is not death: the loser re-reads and
   uses the winner's token. Only an unchanged row is marked ``needs_reauth``.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from datetime import timedelta
from typing import Any

from loguru import logger

from pulseplan.broker.backoff import next_attempt
from pulseplan.broker.results import FreshToken
from pulseplan.broker.results import NeedsReauth
from pulseplan.broker.results import NotConnected
from pulseplan.broker.results import ProviderConfigProblem
from pulseplan.broker.results import ProviderDown
from pulseplan.broker.results import TokenProblem
from pulseplan.broker.tokens import TokenCodec
from pulseplan.errors import ProviderMisconfigured
from pulseplan.errors import ProviderUnavailable
from pulseplan.errors import ReconnectRequired
from pulseplan.events import EventBus
from pulseplan.locks import LockManager
from pulseplan.locks import LockTimeout
from pulseplan.locks import lease
from pulseplan.plugins import PluginHost
from pulseplan.provider import TokenSet
from pulseplan.settings import Settings
from pulseplan.storage.base import Storage
from pulseplan.storage.base import StorageError
from pulseplan.storage.models import Connection
from pulseplan.storage.models import utcnow

WRITE_ATTEMPTS = 3


class RefreshCoordinator:
    """Refreshes connections; safe to call from any number of tasks and processes."""

    def __init__(
        self,
        *,
        storage: Storage,
        codec: TokenCodec,
        plugins: PluginHost,
        locks: LockManager,
        events: EventBus,
        settings: Settings,
    ):
        self.storage = storage
        self.codec = codec
        self.plugins = plugins
        self.locks = locks
        self.events = events
        self.settings = settings
        self.skew = timedelta(seconds=settings.refresh_skew_seconds)
        self._inflight: dict[str, asyncio.Task[FreshToken]] = {}

    # ------------------------------------------------------------------ decisions

    def needs_refresh(self, row: Connection, now: datetime | None = None) -> bool:
        """Expires within the skew (and can be refreshed at all).

        A provider whose tokens live shorter than ``REFRESH_SKEW_SECONDS`` gets a refresh on
        every fetch; lower the skew for such a provider (docs/operations.md).
        """
        if row.expires_at is None or row.refresh_token is None:
            return False
        return row.expires_at <= (now or utcnow()) + self.skew

    def backing_off(self, row: Connection, now: datetime | None = None) -> bool:
        """A refresh failed recently and its retry is not due yet."""
        return row.next_refresh_at is not None and row.next_refresh_at > (now or utcnow())

    def usable(self, row: Connection, now: datetime | None = None) -> bool:
        """The stored access token still works (maybe close to expiry)."""
        return row.status != "needs_reauth" and not row.is_expired(now)

    def exclusive(self, connection_id: str) -> AbstractAsyncContextManager[str | None]:
        """Hold the connection's refresh lock (disconnect, so no refresh races a revocation).

        :raises LockTimeout: the lock stayed busy for ``REFRESH_LOCK_WAIT`` seconds.
        """
        return lease(
            self.locks,
            f"refresh:{connection_id}",
            ttl=self.settings.refresh_lock_ttl,
            wait=self.settings.refresh_lock_wait,
        )

    # ------------------------------------------------------------------ entry point

    async def refresh(self, row: Connection, *, force: bool = False) -> FreshToken:
        """Refresh ``row`` (or join the refresh already running for it in this process)."""
        task = self._inflight.get(row.id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._locked(row, force))
            self._inflight[row.id] = task
            task.add_done_callback(self._forget(row.id))
        # shield: one caller giving up (client disconnect) must not cancel everyone's refresh.
        return await asyncio.shield(task)

    def _forget(self, connection_id: str) -> Any:
        def done(task: asyncio.Task[FreshToken]) -> None:
            self._inflight.pop(connection_id, None)
            if not task.cancelled():
                task.exception()  # retrieved here so an unawaited failure is not reported twice

        return done

    async def _locked(self, seen: Connection, force: bool) -> FreshToken:
        async def refreshed_elsewhere() -> bool:
            current = await self.storage.get_connection_by_id(seen.id)
            return current is None or current.version != seen.version

        try:
            async with lease(
                self.locks,
                f"refresh:{seen.id}",
                ttl=self.settings.refresh_lock_ttl,
                wait=self.settings.refresh_lock_wait,
                on_busy=refreshed_elsewhere,
            ) as owner:
                row = await self.storage.get_connection_by_id(seen.id)
                if row is None:
                    raise NotConnected(f"{seen.provider} is not connected")
                if owner is None or row.status == "needs_reauth":
                    return self._current(row)  # someone else did (or settled) the work
                if not self.needs_refresh(row) and (force is False or row.version != seen.version):
                    return self._current(row)  # fresh now, or a forced refresh already happened
                return await self._call_provider(row)
        except LockTimeout:
            row = await self.storage.get_connection_by_id(seen.id)
            if row is not None and self.usable(row):
                return self.codec.fresh(row)
            raise ProviderDown("a refresh of this connection is still running elsewhere") from None

    def _current(self, row: Connection) -> FreshToken:
        """The row's token as it is; a dead grant or an expired token is a problem instead."""
        if row.status == "needs_reauth":
            raise NeedsReauth(f"{row.provider} must be reconnected ({row.status_reason})")
        if row.is_expired():
            raise ProviderDown(f"{row.provider} token expired and could not be refreshed yet")
        return self.codec.fresh(row)

    # ------------------------------------------------------------------ the provider call

    async def _call_provider(self, row: Connection) -> FreshToken:
        refresh_token = self.codec.decrypt(row, "refresh_token")
        assert refresh_token is not None
        # Finish well inside the lease so no second refresher can start while we wait.
        budget = max(self.settings.refresh_lock_ttl - 5, 1)
        try:
            async with asyncio.timeout(budget):
                tokens = await self.plugins.refresh(
                    row.provider,
                    refresh_token=refresh_token,
                    scopes=row.scopes,
                    metadata=dict(row.metadata),
                )
        except TimeoutError:
            return await self._transient(row, ProviderUnavailable("refresh timed out"))
        except ReconnectRequired as exc:
            return await self._reconnect(row, exc)
        except ProviderMisconfigured as exc:
            return await self._misconfigured(row, exc)
        except ProviderUnavailable as exc:
            return await self._transient(row, exc)

        try:
            updated = await self._store(row, tokens, spent=refresh_token)
        except Exception as exc:
            # The provider may already have rotated the grant: say so loudly, the new refresh
            # token exists nowhere else.
            logger.critical(
                "refreshed tokens of connection {} ({}) could not be stored ({}); "
                "a rotated refresh token may be lost",
                row.id,
                row.provider,
                type(exc).__name__,
            )
            raise
        if updated is None:
            # Another refresher won (or the row is gone): never overwrite a newer grant.
            logger.warning("refresh of {} lost the version fence; using the newer row", row.id)
            current = await self.storage.get_connection_by_id(row.id)
            if current is not None and self.usable(current):
                return self.codec.fresh(current)
            raise ProviderDown("the connection changed during refresh; retry")
        self.events.fire(
            "refreshed", user_id=row.user_id, provider=row.provider, connection_id=row.id
        )
        return FreshToken(
            provider=row.provider,
            access_token=tokens.access_token,
            expires_at=updated.expires_at,
            scopes=updated.scopes,
            refreshed=True,
        )

    def _changes(self, base: Connection, tokens: TokenSet) -> dict[str, Any]:
        return {
            "access_token": self.codec.encrypt(base, "access_token", tokens.access_token),
            # No refresh_token in the response means "keep using the old one" (RFC 6749 §6).
            "refresh_token": self.codec.encrypt(base, "refresh_token", tokens.refresh_token)
            if tokens.refresh_token
            else base.refresh_token,
            "expires_at": tokens.expires_at,
            "scopes": tokens.scopes if tokens.scopes is not None else base.scopes,
            "metadata": {**base.metadata, **tokens.metadata},
            "status": "active",
            "status_reason": None,
            "last_refreshed_at": utcnow(),
            "next_refresh_at": None,
            "refresh_failures": 0,
        }

    async def _store(self, row: Connection, tokens: TokenSet, *, spent: str) -> Connection | None:
        """Write the refreshed tokens with the version fence.

        When the fence refuses the write, the row is re-read: if it still holds the refresh
        token we just spent, nobody else refreshed (key rotation re-encrypted it, or a status
        changed), so our tokens are the live ones and are written again on the new version. If
        it holds another refresh token, a newer grant won: ``None``.
        """
        current: Connection | None = row
        for _ in range(WRITE_ATTEMPTS):
            assert current is not None
            updated = await self._write(current, self._changes(current, tokens))
            if updated is not None:
                return updated
            current = await self.storage.get_connection_by_id(row.id)
            if current is None or current.refresh_token is None:
                return None
            try:
                holds_spent = self.codec.decrypt(current, "refresh_token") == spent
            except TokenProblem:
                return None
            if not holds_spent:
                return None
        return None

    async def _write(self, row: Connection, changes: dict[str, Any]) -> Connection | None:
        """Fenced write, retried on storage hiccups: a rotated token exists nowhere else."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                return await self.storage.update_connection(row.id, row.version, **changes)
            except StorageError:
                if attempt == WRITE_ATTEMPTS:
                    logger.critical(
                        "could not store refreshed tokens of connection {} ({}); "
                        "a rotated refresh token may be lost",
                        row.id,
                        row.provider,
                    )
                    raise
                await asyncio.sleep(0.1 * attempt)
        return None  # pragma: no cover - the loop returns or raises

    # ------------------------------------------------------------------ failures

    async def _reconnect(self, row: Connection, exc: ReconnectRequired) -> FreshToken:
        current = await self.storage.get_connection_by_id(row.id)
        if current is not None and current.version != row.version:
            # A sibling refreshed (and rotated) while we were calling: its token is good.
            return self._current(current)
        marked = await self.storage.update_connection(
            row.id,
            row.version,
            status="needs_reauth",
            status_reason=exc.error or "reconnect_required",
            next_refresh_at=None,
        )
        if marked is None:
            # The row changed under us (a reconnect, a sibling's refresh): judge it as it is now.
            latest = await self.storage.get_connection_by_id(row.id)
            if latest is None:
                raise NotConnected(f"{row.provider} is not connected")
            return self._current(latest)
        self.events.fire(
            "needs_reauth",
            user_id=row.user_id,
            provider=row.provider,
            connection_id=row.id,
            detail=exc.error,
        )
        raise NeedsReauth(f"{row.provider} must be reconnected ({exc.error})")

    async def _misconfigured(self, row: Connection, exc: ProviderMisconfigured) -> FreshToken:
        logger.error(
            "provider {} rejected the client configuration ({}); fix its settings",
            row.provider,
            exc.error,
        )
        return await self._failed(row, exc, "error", ProviderConfigProblem)

    async def _transient(self, row: Connection, exc: ProviderUnavailable) -> FreshToken:
        logger.warning(
            "refresh of {} via {} failed transiently ({})", row.id, row.provider, exc.error
        )
        return await self._failed(row, exc, "active", ProviderDown, exc.retry_after)

    async def _failed(
        self,
        row: Connection,
        exc: ProviderMisconfigured | ProviderUnavailable,
        status: str,
        problem: type[TokenProblem],
        retry_after: float | None = None,
    ) -> FreshToken:
        failures = row.refresh_failures + 1
        now = utcnow()
        updated = await self.storage.update_connection(
            row.id,
            row.version,
            status=status,
            status_reason=exc.error,
            refresh_failures=failures,
            next_refresh_at=next_attempt(
                now,
                failures,
                base=self.settings.refresh_backoff_base,
                cap=self.settings.refresh_backoff_max,
                retry_after=retry_after,
            ),
        )
        self.events.fire(
            "refresh_failed",
            user_id=row.user_id,
            provider=row.provider,
            connection_id=row.id,
            detail=exc.error,
        )
        latest = updated or row
        if self.usable(latest, now):
            return self.codec.fresh(latest)  # keep serving the still-valid token
        headers = {"Retry-After": str(int(retry_after))} if retry_after else None
        raise problem(f"{row.provider} refresh failed ({exc.error})", headers=headers)
