"""Example Tasks: a PulsePlan provider plugin, written in docs/plugins/tutorial.md.

Example Tasks follows RFC 6749, RFC 7636 (PKCE S256) and RFC 7009, so the host's standard
implementation does almost everything: this module describes the provider and overrides one
hook for its single quirk.
"""

from __future__ import annotations

from pulseplan import ProviderContext
from pulseplan import ProviderMisconfigured
from pulseplan import ProviderSpec
from pulseplan import ReconnectRequired
from pulseplan import TokenSet
from pulseplan import hookimpl

SPEC = ProviderSpec(
    name="example",
    display_name="Example Tasks",
    authorize_url="https://auth.tasks.example/oauth/authorize",
    token_url="https://auth.tasks.example/oauth/token",
    revoke_url="https://auth.tasks.example/oauth/revoke",
    userinfo_url="https://api.tasks.example/v1/me",
    default_scopes=("tasks.read", "tasks.write"),
    client_auth="client_secret_basic",
    pkce=True,
    docs_url="https://tasks.example/developers/oauth",
)

#: What Example Tasks answers when a refresh token has expired or was revoked.
DEAD_REFRESH_TOKEN = "token_expired"


@hookimpl
def describe_provider() -> ProviderSpec:
    """Endpoints, scopes and client authentication of Example Tasks."""
    return SPEC


@hookimpl
async def refresh(
    provider: ProviderContext, refresh_token: str, scopes: tuple[str, ...]
) -> TokenSet:
    """The standard refresh, except that ``token_expired`` means the user must reconnect.

    The standard implementation files an unknown ``error`` under "the operator must fix the
    client" (:class:`ProviderMisconfigured`); for this provider it means the grant is gone.
    """
    try:
        return await provider.standard.refresh(refresh_token=refresh_token, scopes=scopes)
    except ProviderMisconfigured as exc:
        if exc.error != DEAD_REFRESH_TOKEN:
            raise
        raise ReconnectRequired(
            "the refresh token expired", error=exc.error, status=exc.status
        ) from exc
