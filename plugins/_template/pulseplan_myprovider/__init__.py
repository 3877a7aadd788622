"""My Provider provider for PulsePlan.

The host's standard OAuth 2.0 implementation (RFC 6749 code exchange and refresh, RFC 7636
PKCE S256, RFC 7009 revocation) answers every lifecycle hook this module does not implement.
Implement ``authorization_url``, ``authorize``, ``refresh``, ``validate`` or ``revoke`` only for
a quirk of your provider, and call ``provider.standard`` inside it for the standard part.
"""

from __future__ import annotations

from pulseplan import ProviderSpec
from pulseplan import hookimpl

SPEC = ProviderSpec(
    name="myprovider",  # must equal the entry-point name in pyproject.toml
    display_name="My Provider",
    authorize_url="https://auth.myprovider.example/oauth/authorize",  # <REPLACE>
    token_url="https://auth.myprovider.example/oauth/token",  # <REPLACE>
    revoke_url="https://auth.myprovider.example/oauth/revoke",  # <REPLACE> or None
    userinfo_url="https://api.myprovider.example/userinfo",  # <REPLACE> or None
    default_scopes=("read", "write"),  # <REPLACE>
    client_auth="client_secret_post",  # <REPLACE> or "client_secret_basic"
    pkce=True,  # <REPLACE> False if the provider has no PKCE
)


@hookimpl
def describe_provider() -> ProviderSpec:
    """Tell PulsePlan about the provider."""
    return SPEC
