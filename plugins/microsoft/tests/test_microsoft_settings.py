"""The Microsoft provider's description and its settings: MICROSOFT_TENANT_ID and
MICROSOFT_AUTHORITY, both validated so that nothing but a tenant lands in the URL path."""

from __future__ import annotations

from typing import Any

import pytest
from pulseplan_microsoft.spec import SPEC

from pulseplan.provider_config import resolve

CREDENTIALS = {"MICROSOFT_CLIENT_ID": "id", "MICROSOFT_CLIENT_SECRET": "secret"}
GUID = "72F988BF-86F1-41AF-91AB-2D7CD011DB47"


def settings(production: bool = False, **env: str) -> Any:
    return resolve(SPEC, {**CREDENTIALS, **env}, production=production)


def test_defaults_are_the_common_tenant_on_the_global_cloud() -> None:
    resolved = settings()
    assert resolved.configured, resolved.problems
    base = "https://login.microsoftonline.com/common/oauth2/v2.0"
    assert resolved.authorize_url == f"{base}/authorize"
    assert resolved.token_url == f"{base}/token"
    assert resolved.userinfo_url == "https://graph.microsoft.com/v1.0/me"
    assert resolved.revoke_url is None
    assert SPEC.supports_revoke is False
    assert SPEC.client_auth == "client_secret_post"
    assert "offline_access" in resolved.scopes


@pytest.mark.parametrize(
    ("tenant", "expected"),
    [
        ("organizations", "organizations"),
        ("Consumers", "consumers"),
        (GUID, GUID.lower()),
        ("contoso.onmicrosoft.com", "contoso.onmicrosoft.com"),
        ("Fabrikam.COM", "fabrikam.com"),
    ],
)
def test_valid_tenants(tenant: str, expected: str) -> None:
    resolved = settings(MICROSOFT_TENANT_ID=tenant)
    assert resolved.configured, resolved.problems
    assert resolved.token_url == (f"https://login.microsoftonline.com/{expected}/oauth2/v2.0/token")


@pytest.mark.parametrize(
    "tenant",
    ["../common", "common/oauth2", "contoso", "common?x=1", "evil.example/x", "a b.com", "%2e%2e"],
)
def test_invalid_tenants_are_refused(tenant: str) -> None:
    resolved = settings(MICROSOFT_TENANT_ID=tenant)
    assert not resolved.configured
    assert any(p.startswith("MICROSOFT_TENANT_ID:") for p in resolved.problems)
    assert resolved.authorize_url == ""
    assert resolved.token_url == ""


def test_national_cloud_authority() -> None:
    resolved = settings(
        MICROSOFT_AUTHORITY="https://login.microsoftonline.us/", MICROSOFT_TENANT_ID=GUID
    )
    assert resolved.configured, resolved.problems
    assert resolved.authorize_url == (
        f"https://login.microsoftonline.us/{GUID.lower()}/oauth2/v2.0/authorize"
    )


@pytest.mark.parametrize(
    ("authority", "production"),
    [
        ("http://login.example", False),
        ("http://127.0.0.1:9", True),
        ("https://login.example/?tenant=x", False),
        ("login.microsoftonline.com", False),
        ("https://user:pw@login.example", False),
    ],
)
def test_invalid_authorities_are_refused(authority: str, production: bool) -> None:
    resolved = settings(production, MICROSOFT_AUTHORITY=authority)
    assert any(p.startswith("MICROSOFT_AUTHORITY:") for p in resolved.problems)
    assert resolved.token_url == ""
