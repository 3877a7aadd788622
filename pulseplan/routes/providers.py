"""``GET /api/v1/providers``: the enabled providers and what each supports.

Public on purpose: an app shows its "connect" buttons before the user signs in. Nothing here is
secret; client ids and endpoints are left out anyway.
"""

from __future__ import annotations

from pydantic import BaseModel
from quart import Blueprint
from quart_schema import tag
from quart_schema import validate_response

from pulseplan.runtime import current_runtime

blueprint = Blueprint("providers", __name__)


class ProviderOut(BaseModel):
    name: str
    display_name: str
    configured: bool
    default_scopes: list[str]
    supports: dict[str, bool]
    docs_url: str | None = None


class ProvidersOut(BaseModel):
    providers: list[ProviderOut]


@blueprint.get("/api/v1/providers")
@tag(["providers"])
@validate_response(ProvidersOut)
async def list_providers() -> ProvidersOut:
    """Enabled providers, whether the operator configured them, and their capabilities."""
    host = current_runtime().plugins
    out = []
    for name in host.providers:
        info = host.info(name)
        spec = host.spec(name)
        out.append(
            ProviderOut(
                name=name,
                display_name=spec.display_name,
                configured=info.configured,
                default_scopes=list(info.settings.scopes if info.settings else spec.default_scopes),
                supports={
                    "refresh": spec.supports_refresh,
                    "revoke": spec.supports_revoke,
                    "validate": spec.supports_validate,
                    "pkce": spec.pkce,
                },
                docs_url=spec.docs_url,
            )
        )
    return ProvidersOut(providers=out)
