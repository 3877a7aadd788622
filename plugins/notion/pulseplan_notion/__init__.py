"""Notion provider for PulsePlan (public connections, formerly "public integrations").

The entry point ``notion = "pulseplan_notion"`` registers this module. Notion's quirks:
HTTP Basic client authentication and JSON bodies at ``/v1/oauth/token`` (declared in the spec,
done by the host's standard client), ``owner=user`` on the authorization URL, a required
``Notion-Version`` header (:mod:`pulseplan_notion.version`), workspace and owner facts kept as
metadata and no expiry (:mod:`pulseplan_notion.tokens`), ``{"object": "error", "code": ...}``
error bodies, and revocation of the access token by JSON POST (:mod:`pulseplan_notion.api`).
"""

from __future__ import annotations

from pulseplan import ProviderContext
from pulseplan import ProviderSpec
from pulseplan import Revocation
from pulseplan import SettingSpec
from pulseplan import TokenSet
from pulseplan import Validation
from pulseplan import hookimpl
from pulseplan_notion import api
from pulseplan_notion import tokens
from pulseplan_notion.version import DEFAULT_VERSION
from pulseplan_notion.version import HEADER
from pulseplan_notion.version import SETTING
from pulseplan_notion.version import validate_version

SPEC = ProviderSpec(
    name="notion",
    display_name="Notion",
    authorize_url="https://api.notion.com/v1/oauth/authorize",
    token_url="https://api.notion.com/v1/oauth/token",
    revoke_url="https://api.notion.com/v1/oauth/revoke",
    userinfo_url="https://api.notion.com/v1/users/me",
    # Notion has no OAuth scopes: the user picks pages, capabilities live on the connection.
    default_scopes=(),
    client_auth="client_secret_basic",
    token_request_format="json",
    pkce=False,
    extra_authorize_params={"owner": "user"},
    request_headers={HEADER: DEFAULT_VERSION},
    settings=(
        SettingSpec(
            name=SETTING,
            env="NOTION_VERSION",
            description=f"Notion-Version header sent on every request (default {DEFAULT_VERSION})",
            default=DEFAULT_VERSION,
            validate=validate_version,
        ),
    ),
    docs_url="https://developers.notion.com/docs/authorization",
)


@hookimpl
def describe_provider() -> ProviderSpec:
    """Notion's endpoints, Basic auth, JSON bodies, ``owner=user`` and ``Notion-Version``."""
    return SPEC


@hookimpl
async def authorize(
    provider: ProviderContext, code: str, redirect_uri: str, code_verifier: str | None
) -> TokenSet:
    """Exchange the code; workspace, bot and owner go to metadata, the owner's email to
    ``email``; no expiry."""
    return await tokens.exchange_code(provider, code=code, redirect_uri=redirect_uri)


@hookimpl
async def refresh(provider: ProviderContext, refresh_token: str) -> TokenSet:
    """Refresh; the rotated refresh token is returned for the host to store."""
    return await tokens.refresh(provider, refresh_token=refresh_token)


@hookimpl
async def validate(provider: ProviderContext, access_token: str) -> Validation:
    """``GET /v1/users/me`` with the bearer token."""
    return await api.validate(provider, access_token=access_token)


@hookimpl
async def revoke(
    provider: ProviderContext, access_token: str | None, refresh_token: str | None
) -> Revocation:
    """``POST /v1/oauth/revoke`` with the access token, JSON and Basic auth."""
    return await api.revoke(provider, access_token=access_token, refresh_token=refresh_token)
