"""Notion provider for PulsePlan (public connections)."""

from __future__ import annotations

from pulseplan import ProviderSpec
from pulseplan import hookimpl

SPEC = ProviderSpec(
    name="notion",
    display_name="Notion",
    authorize_url="https://api.notion.com/v1/oauth/authorize",
    token_url="https://api.notion.com/v1/oauth/token",
    revoke_url="https://api.notion.com/v1/oauth/revoke",
    userinfo_url="https://api.notion.com/v1/users/me",
    default_scopes=(),
    client_auth="client_secret_basic",
    token_request_format="json",
    pkce=False,
    extra_authorize_params={"owner": "user"},
    docs_url="https://developers.notion.com/docs/authorization",
)


@hookimpl
def describe_provider() -> ProviderSpec:
    return SPEC
