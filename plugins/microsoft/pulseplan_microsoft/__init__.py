"""Microsoft identity platform (Entra ID / Outlook via Graph) provider for PulsePlan."""

from __future__ import annotations

from pulseplan import ProviderSpec
from pulseplan import SettingSpec
from pulseplan import hookimpl

SPEC = ProviderSpec(
    name="microsoft",
    display_name="Microsoft",
    authorize_url="https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/authorize",
    token_url="https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token",
    revoke_url=None,
    userinfo_url="https://graph.microsoft.com/v1.0/me",
    default_scopes=(
        "openid",
        "email",
        "profile",
        "offline_access",
        "User.Read",
        "Calendars.ReadWrite",
    ),
    client_auth="client_secret_post",
    pkce=True,
    supports_revoke=False,
    extra_authorize_params={"response_mode": "query"},
    settings=(
        SettingSpec(
            name="tenant_id",
            env="MICROSOFT_TENANT_ID",
            description="tenant: common, organizations, consumers or a tenant id",
            default="common",
        ),
    ),
    docs_url="https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow",
)


@hookimpl
def describe_provider() -> ProviderSpec:
    return SPEC
