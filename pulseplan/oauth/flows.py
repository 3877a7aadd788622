"""The OAuth authorization-code flow, server side.

``start`` creates a random single-use ``state`` bound to the user who asked and to the provider,
stores it (hashed) with the PKCE verifier (encrypted) for ``OAUTH_FLOW_TTL`` seconds, and returns
the provider's authorization URL. ``finish`` takes the state atomically, exchanges the code with
the verifier of *that* flow, and stores the connection for the user who started it.

Remaining risk (documented in docs/operations.md): someone who starts a flow and gets another
person to consent at the provider would link that person's account to their own user. With
``OAUTH_REQUIRE_CONFIRMATION=true`` the callback parks the grant instead, and only the app,
calling ``confirm`` with the *same* user's JWT, stores it.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import Protocol

from authlib.common.security import generate_token
from loguru import logger

from pulseplan.broker.service import TokenBroker
from pulseplan.broker.tokens import Cipher
from pulseplan.errors import BadRequest
from pulseplan.errors import Conflict
from pulseplan.errors import FlowWriteUncertain
from pulseplan.errors import NotFound
from pulseplan.errors import ProviderError
from pulseplan.errors import ProviderMisconfigured
from pulseplan.errors import ProviderUnavailable
from pulseplan.errors import ServiceUnavailable
from pulseplan.oauth import return_urls
from pulseplan.plugins import PluginHost
from pulseplan.provider import TokenSet
from pulseplan.settings import Settings
from pulseplan.storage.base import Storage
from pulseplan.storage.models import Connection
from pulseplan.storage.models import utcnow

SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,256}$")  # RFC 6749 §3.3 scope-token
MAX_SCOPES = 50


class FlowStore(Protocol):
    """Pending-flow storage with an atomic single-use take (the storage layer or Redis)."""

    async def put_flow(self, key: str, payload: str, expires_at: datetime) -> None: ...

    async def take_flow(self, key: str, now: datetime) -> str | None: ...


#: Attempts to store a flow under a fresh secret when a write's outcome is uncertain.
PARK_ATTEMPTS = 3


def flow_key(kind: str, value: str) -> str:
    """Storage key: a hash, so a database reader cannot replay a pending state."""
    return hashlib.sha256(f"pulseplan:{kind}:{value}".encode()).hexdigest()


@dataclass(frozen=True)
class Outcome:
    """The end of a callback: where to send the browser (or what to answer without one)."""

    status: str  # connected | pending | error
    provider: str
    return_url: str | None
    error: str | None = None
    flow_id: str | None = None
    connection: Connection | None = None

    def redirect_url(self) -> str | None:
        if self.return_url is None:
            return None
        params = {"status": self.status, "provider": self.provider}
        if self.error:
            params["error"] = self.error
        if self.flow_id:
            params["flow"] = self.flow_id
        return return_urls.with_params(self.return_url, params)


class FlowService:
    """Starts, finishes and (optionally) confirms OAuth flows."""

    def __init__(
        self,
        *,
        storage: Storage,
        flow_store: FlowStore,
        cipher: Cipher,
        plugins: PluginHost,
        broker: TokenBroker,
        settings: Settings,
    ):
        self.storage = storage
        self.flow_store = flow_store
        self.cipher = cipher
        self.plugins = plugins
        self.broker = broker
        self.settings = settings
        self.ttl = timedelta(seconds=settings.oauth_flow_ttl)

    async def _park(self, kind: str, payload: dict[str, Any], expires_at: datetime) -> str:
        """Store ``payload`` under a new random secret; return the secret (state or flow id).

        A write whose outcome is uncertain is never repeated under the same secret (the copy
        could then be in Redis and in the database, each takeable once); the secret has not
        been handed out yet, so a new one leaves any half-written copy unreachable.

        :raises ServiceUnavailable: no write succeeded.
        """
        body = json.dumps(payload)
        for _ in range(PARK_ATTEMPTS):
            secret = secrets.token_urlsafe(32)
            try:
                await self.flow_store.put_flow(flow_key(kind, secret), body, expires_at)
            except FlowWriteUncertain as exc:
                logger.warning("storing an OAuth flow failed ({}); retrying under a new key", exc)
                continue
            return secret
        raise ServiceUnavailable(
            "OAuth flow state cannot be stored right now; retry shortly",
            code="flow_store_unavailable",
        )

    def redirect_uri(self, provider: str) -> str:
        """Exact, from configuration only: never from ``Host`` or the request."""
        return f"{self.settings.public_base_url}/api/v1/oauth/{provider}/callback"

    def _scopes(self, provider: str, requested: str | None) -> tuple[str, ...]:
        configured = self.plugins.info(provider).settings
        assert configured is not None
        if requested is None:
            return configured.scopes
        scopes = tuple(s for s in re.split(r"[\s,]+", requested) if s)
        if len(scopes) > MAX_SCOPES or not all(SCOPE.match(s) for s in scopes):
            raise BadRequest("scopes must be a list of valid scope names", code="invalid_scopes")
        extra = sorted(set(scopes) - set(configured.scopes))
        if extra and configured.scopes:
            raise BadRequest(
                f"scopes not enabled for {provider}: {', '.join(extra)}", code="scope_not_allowed"
            )
        return scopes

    # ------------------------------------------------------------------ start

    async def start(
        self, user_id: str, provider: str, *, return_url: str | None, scopes: str | None
    ) -> tuple[str, datetime]:
        """Begin a flow; returns the authorization URL and when the flow expires."""
        info = self.plugins.info(provider)
        if not info.configured:
            raise Conflict(
                f"{provider} is not configured on this server", code="provider_not_configured"
            )
        spec = self.plugins.spec(provider)
        back = return_urls.choose(return_url, self.settings.allowed_return_urls)
        chosen = self._scopes(provider, scopes)
        verifier = generate_token(64) if spec.pkce else None
        existing = await self.storage.get_connection(user_id, provider)
        expires_at = utcnow() + self.ttl
        payload = {
            "user_id": user_id,
            "provider": provider,
            "return_url": back,
            "scopes": list(chosen),
            "verifier": None
            if verifier is None
            else self.cipher.encrypt(
                verifier, user_id=user_id, provider=provider, field="pkce_verifier"
            ),
        }
        state = await self._park("state", payload, expires_at)
        url = await self.plugins.authorization_url(
            provider,
            state=state,
            redirect_uri=self.redirect_uri(provider),
            scopes=chosen,
            code_verifier=verifier,
            needs_refresh_token=existing is None or existing.refresh_token is None,
        )
        return url, expires_at

    # ------------------------------------------------------------------ callback

    async def finish(self, provider: str, params: dict[str, str]) -> Outcome:
        """Handle the provider's redirect.

        :raises BadRequest: no usable state; with no trusted return URL there is nowhere safe to
            redirect, so these errors are answered as JSON.
        """
        state = params.get("state")
        if not state or len(state) > 512:
            raise BadRequest("missing state parameter", code="invalid_state")
        raw = await self.flow_store.take_flow(flow_key("state", state), utcnow())
        if raw is None:
            raise BadRequest("unknown, used or expired state", code="invalid_state")
        flow: dict[str, Any] = json.loads(raw)
        if flow["provider"] != provider:
            raise BadRequest("state belongs to another provider's flow", code="state_mismatch")
        user_id: str = flow["user_id"]
        back: str | None = flow["return_url"]
        if params.get("error"):
            error = (
                params["error"] if params["error"] == "access_denied" else "authorization_failed"
            )
            return Outcome("error", provider, back, error=error)
        code = params.get("code")
        if not code or len(code) > 4096:
            return Outcome("error", provider, back, error="missing_code")
        verifier = None
        if flow["verifier"] is not None:
            verifier = self.cipher.decrypt(
                flow["verifier"], user_id=user_id, provider=provider, field="pkce_verifier"
            )
        try:
            tokens = await self.plugins.authorize(
                provider,
                code=code,
                redirect_uri=self.redirect_uri(provider),
                code_verifier=verifier,
            )
        except ProviderError as exc:
            logger.warning("code exchange with {} failed: {}", provider, exc.error)
            return Outcome("error", provider, back, error=_short_error(exc))
        if tokens.scopes is None:
            tokens.scopes = tuple(flow["scopes"])
        if self.settings.oauth_require_confirmation:
            parked = self.cipher.encrypt(
                json.dumps(_dump(tokens)), user_id=user_id, provider=provider, field="pending_grant"
            )
            flow_id = await self._park(
                "confirm",
                {"user_id": user_id, "provider": provider, "grant": parked},
                utcnow() + self.ttl,
            )
            return Outcome("pending", provider, back, flow_id=flow_id)
        row, _ = await self.broker.store(user_id, provider, tokens)
        return Outcome("connected", provider, back, connection=row)

    async def confirm(self, user_id: str, provider: str, flow_id: str) -> Connection:
        """Store a parked grant, if and only if ``user_id`` started its flow."""
        raw = await self.flow_store.take_flow(flow_key("confirm", flow_id), utcnow())
        if raw is None:
            raise NotFound("no pending flow with that id", code="flow_not_found")
        parked = json.loads(raw)
        if parked["user_id"] != user_id or parked["provider"] != provider:
            # Someone else's flow (the login-CSRF case): drop the grant, store nothing.
            logger.warning("flow confirmation by another user rejected for {}", provider)
            raise NotFound("no pending flow with that id", code="flow_not_found")
        grant = self.cipher.decrypt(
            parked["grant"], user_id=user_id, provider=provider, field="pending_grant"
        )
        row, _ = await self.broker.store(user_id, provider, _load(json.loads(grant)))
        return row


def _short_error(exc: ProviderError) -> str:
    if isinstance(exc, ProviderUnavailable):
        return "provider_unavailable"
    if isinstance(exc, ProviderMisconfigured):
        return "provider_misconfigured"
    return "exchange_failed"


def _dump(tokens: TokenSet) -> dict[str, Any]:
    return {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_at": tokens.expires_at.isoformat() if tokens.expires_at else None,
        "scopes": list(tokens.scopes or ()),
        "email": tokens.email,
        "metadata": tokens.metadata,
    }


def _load(data: dict[str, Any]) -> TokenSet:
    return TokenSet(
        access_token=data["access_token"],
        refresh_token=data["refresh_token"],
        expires_at=datetime.fromisoformat(data["expires_at"]) if data["expires_at"] else None,
        scopes=tuple(data["scopes"]),
        email=data["email"],
        metadata=data["metadata"],
    )
