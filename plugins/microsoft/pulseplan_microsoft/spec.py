"""What the Microsoft plugin tells the host: the v2.0 endpoints under an authority and a tenant,
Graph scopes, ``client_secret_post`` and two settings (providers.md §2).

``{authority}/{tenant_id}/oauth2/v2.0/...``: the authority is ``MICROSOFT_AUTHORITY`` (national
clouds: ``https://login.microsoftonline.us``, ``https://login.partner.microsoftonline.cn``) and
the tenant ``MICROSOFT_TENANT_ID``. Both are validated so that nothing but a tenant name can land
in the URL path.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pulseplan import ProviderSpec
from pulseplan import SettingSpec
from pulseplan.provider_config import check_url

NAME = "microsoft"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
GRAPH = "https://graph.microsoft.com/"
#: Without it Microsoft issues no refresh token (§2.2), so it is always requested.
OFFLINE_ACCESS = "offline_access"

DEFAULT_SCOPES = (
    "openid",
    "email",
    "profile",
    OFFLINE_ACCESS,
    "User.Read",
    "Calendars.ReadWrite",
)
#: The fake and Microsoft answer with ``response_mode=query`` by default; say it explicitly.
AUTHORIZE_PARAMS = {"response_mode": "query"}

TENANT_ALIASES = frozenset({"common", "organizations", "consumers"})
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DOMAIN = re.compile(
    r"(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?"
)


def check_tenant(value: str, production: bool) -> str:
    """``common``, ``organizations``, ``consumers``, a tenant id (GUID) or a domain name."""
    tenant = value.strip().lower()
    if tenant in TENANT_ALIASES or GUID.fullmatch(tenant) or DOMAIN.fullmatch(tenant):
        return tenant
    raise ValueError(
        "must be common, organizations, consumers, a tenant id (GUID) or a tenant domain "
        "such as contoso.onmicrosoft.com"
    )


def check_authority(value: str, production: bool) -> str:
    """An absolute https URL (http only for loopback outside production), no query."""
    url = check_url(value.strip(), production=production)
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError("must not contain a query or fragment")
    return url.rstrip("/")


SETTINGS = (
    SettingSpec(
        name="tenant_id",
        env="MICROSOFT_TENANT_ID",
        description="tenant: common, organizations, consumers, a tenant id or a tenant domain",
        default="common",
        validate=check_tenant,
    ),
    SettingSpec(
        name="authority",
        env="MICROSOFT_AUTHORITY",
        description="sign-in host; change it for national clouds",
        default=DEFAULT_AUTHORITY,
        validate=check_authority,
    ),
)

SPEC = ProviderSpec(
    name=NAME,
    display_name="Microsoft",
    authorize_url="{authority}/{tenant_id}/oauth2/v2.0/authorize",
    token_url="{authority}/{tenant_id}/oauth2/v2.0/token",
    revoke_url=None,
    userinfo_url="https://graph.microsoft.com/v1.0/me",
    default_scopes=DEFAULT_SCOPES,
    client_auth="client_secret_post",
    pkce=True,
    # No RFC 7009 endpoint exists; the revoke hook explains what the user can do instead.
    supports_revoke=False,
    settings=SETTINGS,
    docs_url="https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow",
)


def with_offline_access(scopes: tuple[str, ...]) -> tuple[str, ...]:
    """``scopes`` plus ``offline_access`` when the operator's list left it out."""
    if any(s.lower() == OFFLINE_ACCESS for s in scopes):
        return scopes
    return (*scopes, OFFLINE_ACCESS)


def short_scopes(scopes: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """Graph scopes in the short form operators configure (``Calendars.ReadWrite``), since
    Microsoft echoes them as ``https://graph.microsoft.com/Calendars.ReadWrite``."""
    if scopes is None:
        return None
    return tuple(s.removeprefix(GRAPH) for s in scopes)
