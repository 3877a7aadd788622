"""``/api/v1/agent``: fresh tokens for an AI agent acting for a user.

The agent authenticates with its own secret (``pulseplan agents create``), not a user JWT, may
be limited to some providers, and every fetch is audited before the tokens leave.
"""

from __future__ import annotations

from pydantic import BaseModel
from pydantic import Field
from quart import Blueprint
from quart import Response
from quart_schema import document_response
from quart_schema import tag
from quart_schema import validate_querystring

from pulseplan.auth.guard import current_agent
from pulseplan.auth.guard import require_agent
from pulseplan.errors import BadRequest
from pulseplan.routes import schemas
from pulseplan.routes.common import canonical_uuid
from pulseplan.routes.common import known_provider
from pulseplan.routes.common import no_store
from pulseplan.routes.common import tokens_body
from pulseplan.runtime import current_runtime

blueprint = Blueprint("agent", __name__, url_prefix="/api/v1/agent")


class AgentTokensQuery(BaseModel):
    providers: str | None = Field(
        default=None,
        max_length=512,
        pattern=r"^[a-z][a-z0-9_-]{0,31}(,[a-z][a-z0-9_-]{0,31})*$",
        description="Comma-separated provider names; default: every provider it may access",
    )


@blueprint.get("/users/<user_id>/tokens")
@tag(["agent"])
@document_response(schemas.UserTokens)
@require_agent
@validate_querystring(AgentTokensQuery)
async def agent_tokens(user_id: str, query_args: AgentTokensQuery) -> Response:
    """The same shape as ``GET /api/v1/tokens/tokens``, for the named user."""
    runtime = current_runtime()
    agent = current_agent()
    user_id = canonical_uuid(user_id)
    if query_args.providers is None:
        providers = [p for p in runtime.plugins.providers if agent.may_access(p)]
    else:
        providers = [p.strip() for p in query_args.providers.split(",") if p.strip()]
        if not providers:
            raise BadRequest("providers must name at least one provider", code="invalid_providers")
        for provider in providers:
            known_provider(provider)
            agent.check_access(provider)
        providers = list(dict.fromkeys(providers))
    results = await runtime.broker.tokens(user_id, providers)
    await runtime.auditor.token_fetch(
        actor_type="agent", actor_id=agent.name, user_id=user_id, results=results
    )
    return no_store(tokens_body(user_id, providers, results))
