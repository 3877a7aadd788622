"""``/api/v1/tokens``: the seed backend's connection and token endpoints, bugs fixed.

Paths and field names are the seed's (seed-system.md §3). Differences, on purpose: refresh tokens
are never returned; ``is_expired`` is computed against now; POST answers 201 on create; DELETE of a
missing connection is 404 and revokes at the provider first; an undecryptable row shows up in its
own status instead of failing the whole list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from typing import Any

from pydantic import BaseModel
from pydantic import Field
from pydantic import field_validator
from quart import Blueprint
from quart import Response
from quart import jsonify
from quart_schema import document_response
from quart_schema import tag
from quart_schema import validate_querystring
from quart_schema import validate_request

from pulseplan.auth.guard import current_user
from pulseplan.auth.guard import require_user
from pulseplan.broker.results import TokenProblem
from pulseplan.provider import TokenSet
from pulseplan.routes import schemas
from pulseplan.routes.common import as_utc
from pulseplan.routes.common import iso_datetime
from pulseplan.routes.common import known_provider
from pulseplan.routes.common import no_store
from pulseplan.routes.common import title
from pulseplan.routes.common import tokens_body
from pulseplan.runtime import current_runtime
from pulseplan.storage.models import Connection

blueprint = Blueprint("tokens", __name__, url_prefix="/api/v1/tokens")
SCOPE_TOKEN = r"^[\x21\x23-\x5b\x5d-\x7e]+$"  # RFC 6749 §3.3 scope-token


class TokenCreate(BaseModel):
    """Tokens the app obtained elsewhere (the seed's ``OAuthTokenCreate``)."""

    provider: str | None = Field(default=None, description="Ignored; the path names it")
    # RFC 6749 Appendix A.12/A.17 (VSCHAR) minus the space: the value must fit in a Bearer header.
    access_token: str = Field(min_length=1, max_length=8192, pattern=r"^[\x21-\x7e]+$")
    refresh_token: str | None = Field(
        default=None, min_length=1, max_length=8192, pattern=r"^[\x21-\x7e]+$"
    )
    expires_at: datetime | None = Field(
        default=None, description="ISO 8601; naive values are taken as UTC (the seed sent those)"
    )
    scopes: list[Annotated[str, Field(min_length=1, max_length=256, pattern=SCOPE_TOKEN)]] = Field(
        default_factory=list, max_length=100
    )
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^\x00-\x1f\x7f]*$")

    _iso = field_validator("expires_at", mode="before")(iso_datetime)
    _utc = field_validator("expires_at")(as_utc)


class AuditQuery(BaseModel):
    limit: int = Field(default=100, ge=1, le=500)
    before: datetime | None = None

    _iso = field_validator("before", mode="before")(iso_datetime)
    _utc = field_validator("before")(as_utc)


async def record(action: str, provider: str, outcome: str, detail: str | None = None) -> None:
    """Record what the signed-in user did to their own connection."""
    user = current_user()
    await current_runtime().auditor.action(
        actor_type="user",
        actor_id=user.id,
        user_id=user.id,
        provider=provider,
        action=action,
        outcome=outcome,
        detail=detail,
    )


def connection_json(row: Connection, decryptable: bool) -> dict[str, Any]:
    status, reason = row.status, row.status_reason
    if not decryptable:
        status, reason = "error", "undecryptable"
    return {
        "id": row.id,
        "user_id": row.user_id,
        "provider": row.provider,
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        "scopes": list(row.scopes),
        "email": row.email,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "is_expired": row.is_expired(),
        "status": status,
        "status_reason": reason,
        "last_refreshed_at": row.last_refreshed_at.isoformat() if row.last_refreshed_at else None,
        "needs_attention": status != "active",
    }


@blueprint.get("/connections")
@tag(["tokens"])
@document_response(schemas.ConnectionList)
@require_user
async def list_connections() -> Response:
    """The user's connections with their health; never tokens."""
    runtime = current_runtime()
    user = current_user()
    rows = await runtime.storage.list_connections(user.id)
    return jsonify([connection_json(r, runtime.broker.decryptable(r)) for r in rows])


@blueprint.get("/connections/status")
@tag(["tokens"])
@document_response(schemas.ConnectedMap)
@require_user
async def connections_status() -> Response:
    """``{"google": true, ...}``: connected and usable, for every enabled provider.

    A row needing reconnection or whose tokens no longer decrypt is not usable (``false``); a
    row in transient ``error`` still holds a token the app may get, so it stays ``true``.
    """
    runtime = current_runtime()
    rows = {r.provider: r for r in await runtime.storage.list_connections(current_user().id)}

    def usable(name: str) -> bool:
        row = rows.get(name)
        return row is not None and row.status != "needs_reauth" and runtime.broker.decryptable(row)

    return jsonify({name: usable(name) for name in runtime.plugins.providers})


@blueprint.get("/tokens")
@tag(["tokens"])
@document_response(schemas.UserTokens)
@require_user
async def user_tokens() -> Response:
    """Fresh access tokens for every connected provider (refreshed first when near expiry)."""
    runtime = current_runtime()
    user = current_user()
    providers = runtime.plugins.providers
    results = await runtime.broker.tokens(user.id, providers)
    await runtime.auditor.token_fetch(
        actor_type="user",
        actor_id=user.id,
        user_id=user.id,
        results={p: r for p, r in results.items() if getattr(r, "code", "") != "not_connected"},
    )
    return no_store(tokens_body(user.id, providers, results))


@blueprint.post("/connections/<provider:provider>")
@tag(["tokens"])
@document_response(schemas.Stored, 201)
@document_response(schemas.Stored, 200)
@require_user
@validate_request(TokenCreate)
async def store_connection(provider: str, data: TokenCreate) -> Response:
    """Store tokens obtained elsewhere. 201 when created, 200 when replaced."""
    provider = known_provider(provider)
    runtime = current_runtime()
    user = current_user()
    expires = data.expires_at
    row, created = await runtime.broker.store(
        user.id,
        provider,
        TokenSet(
            access_token=data.access_token,
            refresh_token=data.refresh_token,
            expires_at=expires,
            scopes=tuple(data.scopes),
            email=data.email,
        ),
    )
    await record("store", provider, "created" if created else "replaced")
    return no_store(
        {
            "message": f"{title(provider)} connection stored successfully",
            "connection_id": row.id,
            "provider": provider,
        },
        201 if created else 200,
    )


@blueprint.delete("/connections/<provider:provider>")
@tag(["tokens"])
@document_response(schemas.Removed)
@require_user
async def delete_connection(provider: str) -> Response:
    """Revoke at the provider (best effort, short retry), then delete. 404 when absent."""
    provider = known_provider(provider)
    runtime = current_runtime()
    user = current_user()
    result = await runtime.broker.disconnect(user.id, provider)
    revocation = result.revocation
    await record(
        "disconnect",
        provider,
        "revoked" if revocation.revoked else "revocation_failed",
        detail=revocation.detail,
    )
    return jsonify(
        {
            "message": f"{title(provider)} connection removed successfully",
            "provider": provider,
            "revoked": revocation.revoked,
            "revocation": {"supported": revocation.supported, "detail": revocation.detail},
        }
    )


@blueprint.get("/connections/<provider:provider>/status")
@tag(["tokens"])
@document_response(schemas.ConnectionStatus)
@require_user
async def connection_status(provider: str) -> Response:
    """One provider's connection state; ``connected: false`` when there is none."""
    provider = known_provider(provider)
    runtime = current_runtime()
    row = await runtime.storage.get_connection(current_user().id, provider)
    if row is None:
        return jsonify({"provider": provider, "connected": False})
    body = connection_json(row, runtime.broker.decryptable(row))
    return jsonify({"provider": provider, "connected": True, **body})


@blueprint.post("/connections/<provider:provider>/refresh")
@tag(["tokens"])
@document_response(schemas.Refreshed)
@require_user
async def force_refresh(provider: str) -> Response:
    """Refresh now, whatever the expiry. Returns the new expiry, not the token."""
    provider = known_provider(provider)
    runtime = current_runtime()
    user = current_user()
    row = await runtime.broker.connection(user.id, provider)
    try:
        fresh = await runtime.broker.token(row, force=True)
    except TokenProblem as problem:
        await record("refresh", provider, problem.code)
        raise
    await record("refresh", provider, "refreshed" if fresh.refreshed else "ok")
    return jsonify(
        {
            "provider": provider,
            "refreshed": fresh.refreshed,
            "expires_at": fresh.expires_at.isoformat() if fresh.expires_at else None,
        }
    )


@blueprint.post("/connections/<provider:provider>/validate")
@tag(["tokens"])
@document_response(schemas.Validated)
@require_user
async def validate(provider: str) -> Response:
    """Ask the provider whether the current access token works."""
    provider = known_provider(provider)
    result = await current_runtime().broker.validate(current_user().id, provider)
    return jsonify({"provider": provider, "valid": result.valid, "detail": result.detail})


@blueprint.get("/audit")
@tag(["tokens"])
@document_response(schemas.AuditList)
@require_user
@validate_querystring(AuditQuery)
async def audit(query_args: AuditQuery) -> Response:
    """The user's own audit trail: every token fetch and connection change, newest first."""
    before = query_args.before
    records = await current_runtime().storage.list_audit(
        current_user().id, limit=query_args.limit, before=before
    )
    return jsonify(
        {
            "records": [
                {
                    "id": r.id,
                    "occurred_at": r.occurred_at.isoformat(),
                    "actor_type": r.actor_type,
                    "actor_id": r.actor_id,
                    "provider": r.provider,
                    "action": r.action,
                    "outcome": r.outcome,
                    "request_id": r.request_id,
                    "detail": r.detail,
                }
                for r in records
            ]
        }
    )
