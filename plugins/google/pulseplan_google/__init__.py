"""Google provider for PulsePlan (Calendar, Gmail and any Google API)."""

from __future__ import annotations

from pulseplan import ProviderSpec
from pulseplan import hookimpl

SPEC = ProviderSpec(
    name="google",
    display_name="Google",
    authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
    token_url="https://oauth2.googleapis.com/token",
    revoke_url="https://oauth2.googleapis.com/revoke",
    userinfo_url="https://openidconnect.googleapis.com/v1/userinfo",
    default_scopes=(
        "openid",
        "email",
        "https://www.googleapis.com/auth/calendar.events",
    ),
    client_auth="client_secret_post",
    pkce=True,
    extra_authorize_params={"access_type": "offline", "include_granted_scopes": "true"},
    docs_url="https://developers.google.com/identity/protocols/oauth2/web-server",
)


@hookimpl
def describe_provider() -> ProviderSpec:
    return SPEC
