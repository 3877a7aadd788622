"""The token broker: every token read, store, refresh, validation and disconnect goes through
here, whoever asks (the app's user, an agent, the background refresher)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from loguru import logger

from pulseplan.broker.refresh import RefreshCoordinator
from pulseplan.broker.results import FreshToken
from pulseplan.broker.results import NeedsReauth
from pulseplan.broker.results import NotConnected
from pulseplan.broker.results import ProviderDown
from pulseplan.broker.results import TokenProblem
from pulseplan.broker.results import Undecryptable
from pulseplan.broker.tokens import TokenCodec
from pulseplan.errors import BadRequest
from pulseplan.errors import ProviderError
from pulseplan.errors import ProviderUnavailable
from pulseplan.events import EventBus
from pulseplan.locks import LockTimeout
from pulseplan.plugins import PluginHost
from pulseplan.provider import Revocation
from pulseplan.provider import TokenSet
from pulseplan.provider import Validation
from pulseplan.storage.base import Storage
from pulseplan.storage.models import Connection
from pulseplan.storage.models import NewConnection
from pulseplan.storage.models import utcnow

REVOKE_ATTEMPTS = 3


@dataclass(frozen=True)
class Disconnection:
    """What happened when a connection was removed."""

    connection: Connection
    revocation: Revocation


class TokenBroker:
    """Reads, stores, refreshes, validates and revokes connections."""

    def __init__(
        self,
        *,
        storage: Storage,
        codec: TokenCodec,
        plugins: PluginHost,
        events: EventBus,
        refresher: RefreshCoordinator,
    ):
        self.storage = storage
        self.codec = codec
        self.plugins = plugins
        self.events = events
        self.refresher = refresher

    # ------------------------------------------------------------------ reads

    async def token(self, row: Connection, *, force: bool = False) -> FreshToken:
        """A usable access token for ``row``, refreshed first when inside the skew."""
        if not force:
            stored = self._stored(row)
            return stored if stored is not None else await self.refresher.refresh(row)
        if row.status == "needs_reauth":
            raise NeedsReauth(f"{row.provider} must be reconnected ({row.status_reason})")
        if not self.plugins.spec(row.provider).supports_refresh:
            raise BadRequest(f"{row.provider} does not support refreshing tokens")
        if row.refresh_token is None:
            raise NeedsReauth(f"{row.provider} has no refresh token; reconnect the account")
        return await self.refresher.refresh(row, force=True)

    def _stored(self, row: Connection) -> FreshToken | None:
        """The stored token when it can be used as it is; ``None`` when it must be refreshed
        first (inside the skew). Synchronous: no provider call, no I/O."""
        if row.status == "needs_reauth":
            raise NeedsReauth(f"{row.provider} must be reconnected ({row.status_reason})")
        if self.refresher.needs_refresh(row):
            if not self.refresher.backing_off(row):
                return None
            # A refresh failed moments ago and its retry is not due: polling must not hammer a
            # failing provider. Serve the still-valid token, or say when to come back.
            if not row.is_expired():
                return self.codec.fresh(row)
            assert row.next_refresh_at is not None
            wait = max(1, int((row.next_refresh_at - utcnow()).total_seconds()))
            raise ProviderDown(
                f"{row.provider} refresh is backing off after a failure ({row.status_reason})",
                headers={"Retry-After": str(wait)},
            )
        if row.is_expired():
            raise NeedsReauth(f"{row.provider} token expired and cannot be refreshed")
        return self.codec.fresh(row)

    async def tokens(
        self, user_id: str, providers: Iterable[str]
    ) -> dict[str, FreshToken | TokenProblem]:
        """Fresh tokens for several providers at once; one failing never hides the others.

        Tokens that need no refresh are answered inline; only refreshes run as concurrent
        tasks. A task per provider cost more than decrypting its token (each task is one more
        trip through the event loop), and on the hot path nothing needs refreshing.
        """
        wanted = list(providers)
        rows = {row.provider: row for row in await self.storage.list_connections(user_id)}
        results: dict[str, FreshToken | TokenProblem] = {}
        due: list[Connection] = []
        for provider in wanted:
            row = rows.get(provider)
            if row is None:
                results[provider] = NotConnected(f"{provider} is not connected")
                continue
            try:
                stored = self._stored(row)
            except TokenProblem as problem:
                results[provider] = problem
                continue
            if stored is None:
                due.append(row)
            else:
                results[provider] = stored

        async def refreshed(row: Connection) -> FreshToken | TokenProblem:
            try:
                return await self.refresher.refresh(row)
            except TokenProblem as problem:
                return problem

        if due:
            done = await asyncio.gather(*(refreshed(row) for row in due))
            results.update(zip((row.provider for row in due), done, strict=True))
        return {provider: results[provider] for provider in wanted}

    async def connection(self, user_id: str, provider: str) -> Connection:
        row = await self.storage.get_connection(user_id, provider)
        if row is None:
            raise NotConnected(f"{provider} connection not found")
        return row

    def decryptable(self, row: Connection) -> bool:
        """Whether the row's tokens decrypt (for status listings; no plaintext kept)."""
        try:
            self.codec.decrypt(row, "access_token")
            self.codec.decrypt(row, "refresh_token")
        except Undecryptable:
            return False
        return True

    # ------------------------------------------------------------------ writes

    async def store(self, user_id: str, provider: str, tokens: TokenSet) -> tuple[Connection, bool]:
        """Store tokens from a code exchange or from the app (encrypting them first).

        A reconnect that returns no refresh token keeps the stored one, but only for the same
        account: another account's refresh token must never end up behind this one's access.
        """
        key = (user_id, provider)
        refresh = (
            self.codec.encrypt(key, "refresh_token", tokens.refresh_token)
            if tokens.refresh_token
            else None
        )
        if refresh is None:
            existing = await self.storage.get_connection(user_id, provider)
            if (
                existing is not None
                and existing.refresh_token
                and tokens.email is not None
                and existing.email == tokens.email
            ):
                refresh = existing.refresh_token
        row, created = await self.storage.upsert_connection(
            NewConnection(
                user_id=user_id,
                provider=provider,
                access_token=self.codec.encrypt(key, "access_token", tokens.access_token),
                refresh_token=refresh,
                expires_at=tokens.expires_at,
                scopes=tokens.scopes or (),
                email=tokens.email,
                metadata=tokens.metadata,
            )
        )
        self.events.fire("connected", user_id=user_id, provider=provider, connection_id=row.id)
        return row, created

    async def disconnect(self, user_id: str, provider: str) -> Disconnection:
        """Revoke at the provider (refresh token preferred, short retry), then delete locally.

        The row is deleted whatever the provider says; the result tells whether it revoked.
        Runs under the connection's refresh lock, so a rotating refresh in flight cannot mint a
        grant after the old one was revoked; a stuck lock never keeps an account connected.
        """
        row = await self.connection(user_id, provider)
        try:
            async with self.refresher.exclusive(row.id):
                return await self._disconnect(user_id, provider)
        except LockTimeout:
            return await self._disconnect(user_id, provider)

    async def _disconnect(self, user_id: str, provider: str) -> Disconnection:
        row = await self.connection(user_id, provider)  # the latest tokens, after any refresh
        revocation = await self._revoke(row)
        deleted = await self.storage.delete_connection(user_id, provider)
        if deleted is None:
            raise NotConnected(f"{provider} connection not found")
        self.events.fire("disconnected", user_id=user_id, provider=provider, connection_id=row.id)
        if not revocation.revoked and revocation.supported:
            self.events.fire(
                "revocation_failed",
                user_id=user_id,
                provider=provider,
                connection_id=row.id,
                detail=revocation.detail,
            )
        return Disconnection(deleted, revocation)

    async def _revoke(self, row: Connection) -> Revocation:
        # The hook runs even for providers without revocation: the plugin knows what to tell the
        # user (Microsoft: where to remove the app's access); the standard answers
        # ``supported=False`` when there is no endpoint.
        try:
            access = self.codec.decrypt(row, "access_token")
            refresh = self.codec.decrypt(row, "refresh_token")
        except Undecryptable:
            return Revocation(revoked=False, detail="stored tokens do not decrypt; not revoked")
        for attempt in range(1, REVOKE_ATTEMPTS + 1):
            try:
                return await self.plugins.revoke(
                    row.provider,
                    access_token=access,
                    refresh_token=refresh,
                    metadata=dict(row.metadata),
                )
            except ProviderUnavailable as exc:
                if attempt == REVOKE_ATTEMPTS:
                    return Revocation(revoked=False, detail=f"provider unavailable ({exc.error})")
                await asyncio.sleep(0.2 * attempt)
            except ProviderError as exc:
                logger.warning("revocation at {} failed: {}", row.provider, exc.error)
                return Revocation(revoked=False, detail=f"provider refused ({exc.error})")
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ provider checks

    async def validate(self, user_id: str, provider: str) -> Validation:
        """Ask the provider whether the current access token works."""
        if not self.plugins.spec(provider).supports_validate:
            raise BadRequest(f"{provider} does not support token validation")
        row = await self.connection(user_id, provider)
        fresh = await self.token(row)
        try:
            return await self.plugins.validate(
                provider, access_token=fresh.access_token, metadata=dict(row.metadata)
            )
        except ProviderUnavailable as exc:
            raise ProviderDown(f"{provider} could not answer ({exc.error})") from None
        except ProviderError as exc:
            return Validation(valid=False, detail=f"provider error ({exc.error})")
