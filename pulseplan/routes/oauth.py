"""``/api/v1/oauth/{provider}``: connect an account with the authorization-code flow."""

from __future__ import annotations

from pydantic import BaseModel
from pydantic import Field
from quart import Blueprint
from quart import Response
from quart import jsonify
from quart import request
from quart_schema import document_response
from quart_schema import tag
from quart_schema import validate_querystring
from quart_schema import validate_request

from pulseplan.auth.guard import current_user
from pulseplan.auth.guard import require_user
from pulseplan.oauth.flows import Outcome
from pulseplan.routes import schemas
from pulseplan.routes.common import known_provider
from pulseplan.routes.common import no_store
from pulseplan.routes.common import title
from pulseplan.runtime import current_runtime

blueprint = Blueprint("oauth", __name__, url_prefix="/api/v1/oauth")


class AuthorizeQuery(BaseModel):
    return_url: str | None = Field(default=None, max_length=2048)
    scopes: str | None = Field(default=None, max_length=4096)


class CallbackQuery(BaseModel):
    # Required: a callback without state can never be matched to a flow (RFC 6749 §4.1.2).
    state: str = Field(min_length=1, max_length=512)
    code: str | None = Field(default=None, max_length=4096)
    error: str | None = Field(default=None, max_length=256)
    error_description: str | None = Field(default=None, max_length=2048)


class ConfirmBody(BaseModel):
    flow: str = Field(min_length=16, max_length=128)


@blueprint.get("/<provider:provider>/authorize")
@tag(["oauth"])
@document_response(schemas.AuthorizationStart)
@require_user
@validate_querystring(AuthorizeQuery)
async def authorize(provider: str, query_args: AuthorizeQuery) -> Response:
    """Start a flow: returns the provider URL to send the user's browser to."""
    provider = known_provider(provider)
    url, expires_at = await current_runtime().flows.start(
        current_user().id, provider, return_url=query_args.return_url, scopes=query_args.scopes
    )
    return no_store({"authorization_url": url, "expires_at": expires_at.isoformat()})


@blueprint.get("/<provider:provider>/callback")
@tag(["oauth"])
@document_response(schemas.CallbackResult)
@validate_querystring(CallbackQuery)
async def callback(provider: str, query_args: CallbackQuery) -> Response:
    """The provider redirects the browser here. Exchanges the code and sends the browser back to
    the flow's return URL with ``status=connected|pending|error&provider=...``."""
    provider = known_provider(provider)
    params = {k: v for k, v in request.args.items() if k in CallbackQuery.model_fields}
    outcome = await current_runtime().flows.finish(provider, params)
    return _finish(outcome)


def _finish(outcome: Outcome) -> Response:
    target = outcome.redirect_url()
    if target is None:
        body = {"status": outcome.status, "provider": outcome.provider}
        if outcome.error:
            body["error"] = outcome.error
        if outcome.flow_id:
            body["flow"] = outcome.flow_id
        response = jsonify(body)
        response.status_code = 400 if outcome.status == "error" else 200
    else:
        response = Response("", status=303, headers={"Location": target})
    # The callback URL held a code and state: no caching, no referrer to the next page.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@blueprint.post("/<provider:provider>/confirm")
@tag(["oauth"])
@document_response(schemas.Stored, 201)
@require_user
@validate_request(ConfirmBody)
async def confirm(provider: str, data: ConfirmBody) -> Response:
    """Store a flow parked by ``OAUTH_REQUIRE_CONFIRMATION``; only its own user may."""
    provider = known_provider(provider)
    row = await current_runtime().flows.confirm(current_user().id, provider, data.flow)
    return no_store(
        {
            "message": f"{title(provider)} connection stored successfully",
            "connection_id": row.id,
            "provider": provider,
        },
        201,
    )
