"""Canvas LMS provider for PulsePlan: new connections go to the instance ``CANVAS_BASE_URL``
names; existing connections may also belong to an instance listed in
``CANVAS_ALLOWED_BASE_URLS``, and to no other.

The entry point ``canvas = "pulseplan_canvas"`` registers this module; its hook
implementations are thin and delegate to :mod:`pulseplan_canvas.tokens` (code exchange,
refresh), :mod:`pulseplan_canvas.api` (validation, revocation), :mod:`pulseplan_canvas.errors`
(Canvas's error vocabulary) and :mod:`pulseplan_canvas.instance` (the instance URLs, and the
guard that binds each connection to its configured instance or refuses it before any network
call).
"""

from __future__ import annotations

from typing import Any

from pulseplan import ProviderContext
from pulseplan import ProviderSpec
from pulseplan import ReconnectRequired
from pulseplan import Revocation
from pulseplan import SettingSpec
from pulseplan import TokenSet
from pulseplan import Validation
from pulseplan import hookimpl
from pulseplan_canvas import api
from pulseplan_canvas import tokens
from pulseplan_canvas.instance import INSTANCE_MISMATCH
from pulseplan_canvas.instance import INSTANCE_REFUSED
from pulseplan_canvas.instance import instance_context
from pulseplan_canvas.instance import parse_bool
from pulseplan_canvas.instance import pkce_enabled
from pulseplan_canvas.instance import validate_allowed_base_urls
from pulseplan_canvas.instance import validate_base_url

SPEC = ProviderSpec(
    name="canvas",
    display_name="Canvas LMS",
    authorize_url="{base_url}/login/oauth2/auth",
    token_url="{base_url}/login/oauth2/token",
    revoke_url="{base_url}/login/oauth2/token",
    userinfo_url="{base_url}/api/v1/users/self",
    # Scopes matter only for a developer key with "Enforce scopes"; set CANVAS_SCOPES then.
    default_scopes=(),
    client_auth="client_secret_post",
    # The host must create a verifier for PKCE to be possible at all; whether it is sent is
    # decided per deployment by CANVAS_PKCE (older instances have no PKCE).
    pkce=True,
    settings=(
        SettingSpec(
            name="base_url",
            env="CANVAS_BASE_URL",
            description="the Canvas instance root, e.g. https://school.instructure.com",
            required=True,
            validate=validate_base_url,
        ),
        SettingSpec(
            name="allowed_base_urls",
            env="CANVAS_ALLOWED_BASE_URLS",
            description=(
                "further Canvas instance roots whose existing connections may be served "
                "(comma/space separated; new connections always use CANVAS_BASE_URL)"
            ),
            default="",
            validate=validate_allowed_base_urls,
        ),
        SettingSpec(
            name="pkce",
            env="CANVAS_PKCE",
            description="send PKCE S256 (true only if the instance supports it)",
            default="false",
            validate=parse_bool,
        ),
    ),
    docs_url="https://developerdocs.instructure.com/services/canvas/oauth2/file.oauth",
)


@hookimpl
def describe_provider() -> ProviderSpec:
    """Canvas's endpoints hang off ``CANVAS_BASE_URL``; ``CANVAS_PKCE`` gates PKCE."""
    return SPEC


@hookimpl
def authorization_url(
    provider: ProviderContext,
    state: str,
    redirect_uri: str,
    scopes: tuple[str, ...],
    code_verifier: str | None,
) -> str:
    """The standard authorization URL; the S256 challenge only when ``CANVAS_PKCE=true``."""
    return provider.standard.authorization_url(
        state=state,
        redirect_uri=redirect_uri,
        scopes=scopes,
        code_verifier=code_verifier if pkce_enabled(provider) else None,
    )


@hookimpl
async def authorize(
    provider: ProviderContext, code: str, redirect_uri: str, code_verifier: str | None
) -> TokenSet:
    """Exchange the code; metadata gets the instance URL and the Canvas user's id and name."""
    return await tokens.exchange_code(
        provider,
        code=code,
        redirect_uri=redirect_uri,
        code_verifier=code_verifier if pkce_enabled(provider) else None,
    )


@hookimpl
async def refresh(
    provider: ProviderContext,
    refresh_token: str,
    scopes: tuple[str, ...],
    metadata: dict[str, Any],
) -> TokenSet:
    """Refresh at the connection's configured instance (the new metadata keeps its
    ``base_url``); a row naming an instance not configured must reconnect."""
    bound = instance_context(provider, metadata)
    if bound is None:
        raise ReconnectRequired(INSTANCE_REFUSED, provider=provider.name, error=INSTANCE_MISMATCH)
    return await tokens.refresh(bound, refresh_token=refresh_token, scopes=scopes)


@hookimpl
async def validate(
    provider: ProviderContext, access_token: str, metadata: dict[str, Any]
) -> Validation:
    """``GET /api/v1/users/self`` at the connection's instance; only a 401 with
    ``WWW-Authenticate`` means a dead token."""
    bound = instance_context(provider, metadata)
    if bound is None:
        return Validation(valid=False, detail=INSTANCE_REFUSED)
    return await api.validate(bound, access_token=access_token)


@hookimpl
async def revoke(
    provider: ProviderContext,
    access_token: str | None,
    refresh_token: str | None,
    metadata: dict[str, Any],
) -> Revocation:
    """``DELETE /login/oauth2/token`` at the connection's instance with the bearer access
    token (refreshed if rejected)."""
    bound = instance_context(provider, metadata)
    if bound is None:
        return Revocation(revoked=False, detail=f"{INSTANCE_REFUSED}; not revoked there")
    return await api.revoke(bound, access_token=access_token, refresh_token=refresh_token)
