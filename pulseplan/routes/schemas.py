"""Response bodies of the token, OAuth and agent routes, for the OpenAPI document.

Routes build their JSON directly (the hot path stays cheap); these models describe it so that
clients, and schemathesis in CI, can check every response against the schema.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import RootModel


class Problem(BaseModel):
    """Why one provider's token could not be handed out."""

    code: str
    detail: str


class AccessToken(BaseModel):
    """A fresh access token. Refresh tokens never leave the service."""

    access_token: str
    expires_at: datetime | None
    scopes: list[str]


class UserTokens(BaseModel):
    """``{"user_id", "<provider>": token or null, ..., "errors": {...}}`` (the seed's shape)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, AccessToken | None]

    user_id: str
    errors: dict[str, Problem]


class ConnectionOut(BaseModel):
    id: str
    user_id: str
    provider: str
    expires_at: datetime | None
    scopes: list[str]
    email: str | None
    created_at: datetime
    updated_at: datetime
    is_expired: bool
    status: str
    status_reason: str | None
    last_refreshed_at: datetime | None
    needs_attention: bool


class ConnectionList(RootModel[list[ConnectionOut]]):
    pass


class ConnectedMap(RootModel[dict[str, bool]]):
    """``{"google": true, ...}`` for every enabled provider."""


class ConnectionStatus(BaseModel):
    """One provider's state; the connection fields appear only when ``connected``."""

    model_config = ConfigDict(extra="allow")

    provider: str
    connected: bool


class Stored(BaseModel):
    message: str
    connection_id: str
    provider: str


class RevocationOut(BaseModel):
    supported: bool
    detail: str | None


class Removed(BaseModel):
    message: str
    provider: str
    revoked: bool
    revocation: RevocationOut


class Refreshed(BaseModel):
    provider: str
    refreshed: bool
    expires_at: datetime | None


class Validated(BaseModel):
    provider: str
    valid: bool
    detail: str | None


class AuditEntry(BaseModel):
    id: str
    occurred_at: datetime
    actor_type: str
    actor_id: str
    provider: str | None
    action: str
    outcome: str
    request_id: str | None
    detail: str | None


class AuditList(BaseModel):
    records: list[AuditEntry]


class AuthorizationStart(BaseModel):
    authorization_url: str
    expires_at: datetime


class CallbackResult(BaseModel):
    """Answered as JSON only when no return URL is configured (otherwise a 303 redirect)."""

    status: str
    provider: str
    error: str | None = None
    flow: str | None = None
