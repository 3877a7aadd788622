"""Microsoft's quirks, each driven through the plugin's hooks against the fake Microsoft
identity platform over loopback; every test here fails if its quirk is removed."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from pulseplan import ProviderMisconfigured
from pulseplan import ProviderUnavailable
from pulseplan import ReconnectRequired

TENANT_DOMAIN = "contoso.onmicrosoft.com"


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


# ---------------------------------------------------------------------- authorization request


async def test_offline_access_is_added_when_the_operator_left_it_out(microsoft: Any) -> None:
    harness = await microsoft(MICROSOFT_SCOPES="openid email User.Read Calendars.Read")
    scope = query(await harness.authorization_url())["scope"][0].split()
    assert scope == ["openid", "email", "User.Read", "Calendars.Read", "offline_access"]
    # Without offline_access Microsoft issues no refresh token at all.
    tokens = await harness.connect()
    assert tokens.refresh_token is not None


async def test_offline_access_is_not_requested_twice(microsoft: Any) -> None:
    harness = await microsoft(MICROSOFT_SCOPES="openid offline_access User.Read")
    scope = query(await harness.authorization_url())["scope"][0].split()
    assert scope == ["openid", "offline_access", "User.Read"]


async def test_authorization_url_uses_pkce_s256_and_query_response_mode(microsoft: Any) -> None:
    harness = await microsoft()
    params = query(await harness.authorization_url(verifier="v" * 64))
    assert params["code_challenge_method"] == ["S256"]
    assert params["code_challenge"] == [create_s256_code_challenge("v" * 64)]
    assert params["response_mode"] == ["query"]


async def test_tenant_and_authority_make_the_endpoint_urls(
    microsoft: Any, fake_provider: Any
) -> None:
    fake = fake_provider("microsoft", tenant=TENANT_DOMAIN)
    # Only the authority points at the fake (empty overrides are unset): the tenant path is
    # the plugin's to build, from MICROSOFT_TENANT_ID as fake.env() sets it.
    harness = await microsoft(
        fake,
        MICROSOFT_AUTHORIZE_URL="",
        MICROSOFT_TOKEN_URL="",
        MICROSOFT_AUTHORITY=fake.base_url + "/",
    )
    settings = harness.host.info("microsoft").settings
    assert settings.extra["tenant_id"] == TENANT_DOMAIN
    assert settings.token_url == f"{fake.base_url}/{TENANT_DOMAIN}/oauth2/v2.0/token"
    tokens = await harness.connect()
    await harness.refresh(tokens.refresh_token)
    paths = [(c.endpoint, c.path) for c in fake.calls() if c.endpoint in ("authorize", "token")]
    assert paths == [
        ("authorize", f"/{TENANT_DOMAIN}/oauth2/v2.0/authorize"),
        ("token", f"/{TENANT_DOMAIN}/oauth2/v2.0/token"),
        ("token", f"/{TENANT_DOMAIN}/oauth2/v2.0/token"),
    ]


async def test_client_secret_is_posted_in_the_body(microsoft: Any) -> None:
    harness = await microsoft()
    await harness.connect()
    (call,) = harness.fake.calls("token")
    assert call.client_auth == "client_secret_post"
    assert call.pkce is True


# ---------------------------------------------------------------------- tokens and identity


async def test_refresh_rotates_the_refresh_token(microsoft: Any) -> None:
    harness = await microsoft()
    tokens = await harness.connect()
    refreshed = await harness.refresh(tokens.refresh_token)
    assert refreshed.refresh_token is not None
    assert refreshed.refresh_token != tokens.refresh_token
    assert harness.fake.latest_refresh_token() == refreshed.refresh_token


async def test_graph_scopes_are_stored_in_their_short_form(microsoft: Any) -> None:
    harness = await microsoft()
    tokens = await harness.connect()
    assert tokens.scopes is not None
    assert "Calendars.ReadWrite" in tokens.scopes
    assert "User.Read" in tokens.scopes
    assert not any(s.startswith("https://graph.microsoft.com/") for s in tokens.scopes)
    refreshed = await harness.refresh(tokens.refresh_token)
    assert refreshed.scopes == tokens.scopes


async def test_email_and_home_tenant_come_from_the_id_token(microsoft: Any) -> None:
    harness = await microsoft()
    account = harness.fake.login_as("grace@contoso.example")
    tokens = await harness.connect()
    assert tokens.email == "grace@contoso.example"
    assert tokens.metadata["tenant_id"] == account.uuid("tenant")
    assert harness.fake.count("userinfo") == 0


async def test_email_falls_back_to_graph_me(microsoft: Any) -> None:
    # No ``email`` scope: the ID token has no email claim, so Graph /me supplies ``mail``.
    harness = await microsoft(MICROSOFT_SCOPES="openid User.Read")
    harness.fake.login_as("grace@contoso.example")
    tokens = await harness.connect()
    assert tokens.email == "grace@contoso.example"
    assert harness.fake.count("userinfo") == 1


async def test_email_falls_back_to_user_principal_name(microsoft: Any) -> None:
    harness = await microsoft(MICROSOFT_SCOPES="User.Read")  # no ID token at all
    harness.fake.login_as("grace@contoso.example")
    harness.fake.fail_next(
        "userinfo",
        "raw",
        status=200,
        body={"mail": None, "userPrincipalName": "grace@contoso.example"},
    )
    tokens = await harness.connect()
    assert tokens.email == "grace@contoso.example"


# ---------------------------------------------------------------------- AADSTS classification

AADSTS_CASES: list[tuple[int, str | None, type[Exception]]] = [
    # Reconnect: the grant is dead or needs interaction.
    (70008, None, ReconnectRequired),
    (700082, None, ReconnectRequired),
    (50173, None, ReconnectRequired),
    (700084, None, ReconnectRequired),
    (70043, None, ReconnectRequired),
    (50076, None, ReconnectRequired),
    (65001, None, ReconnectRequired),
    (53003, None, ReconnectRequired),
    (70000, None, ReconnectRequired),
    (50057, "invalid_grant", ReconnectRequired),
    (50132, "interaction_required", ReconnectRequired),
    # Configuration: the operator must fix the app registration.
    (7000215, None, ProviderMisconfigured),
    (7000222, None, ProviderMisconfigured),
    (700016, None, ProviderMisconfigured),
    (50011, None, ProviderMisconfigured),
    # The table refines ``error``: these arrive as invalid_grant, yet no user can fix them.
    (54005, None, ProviderMisconfigured),
    (7000112, "invalid_grant", ProviderMisconfigured),
    (50194, "invalid_grant", ProviderMisconfigured),
    # Transient: back off and retry.
    (50196, None, ProviderUnavailable),
    (90024, None, ProviderUnavailable),
    (50033, None, ProviderUnavailable),
    (90006, "invalid_grant", ProviderUnavailable),
    (90055, "invalid_request", ProviderUnavailable),
    (70012, "invalid_grant", ProviderUnavailable),
]


@pytest.mark.parametrize(
    ("code", "error", "expected"),
    [pytest.param(c, e, x, id=f"AADSTS{c}") for c, e, x in AADSTS_CASES],
)
async def test_aadsts_codes_are_classified(
    microsoft: Any, code: int, error: str | None, expected: type[Exception]
) -> None:
    harness = await microsoft()
    tokens = await harness.connect()
    options = {"error": error} if error else {}
    harness.fake.fail_next("refresh", "aadsts", code=code, **options)
    with pytest.raises(expected) as caught:
        await harness.refresh(tokens.refresh_token)
    assert type(caught.value) is expected
    assert caught.value.description is not None
    assert caught.value.description.startswith(f"AADSTS{code}")
    assert tokens.refresh_token not in str(caught.value)


@pytest.mark.parametrize(
    ("body", "expected", "error"),
    [
        pytest.param(
            {"error": "invalid_grant", "error_description": "AADSTS50196: loop. Trace ID: x"},
            ProviderUnavailable,
            "invalid_grant",
            id="code-from-description",
        ),
        pytest.param(
            {"error": "interaction_required", "error_codes": [12345]},
            ReconnectRequired,
            "interaction_required",
            id="unknown-code-error-decides",
        ),
        pytest.param(
            {"error": "login_required"}, ReconnectRequired, "login_required", id="login_required"
        ),
        pytest.param(
            {"error": "consent_required"},
            ReconnectRequired,
            "consent_required",
            id="consent_required",
        ),
        pytest.param(
            {"error": "temporarily_unavailable", "error_codes": [99999]},
            ProviderUnavailable,
            "temporarily_unavailable",
            id="unknown-code-transient-error",
        ),
        pytest.param(
            {"error": "unauthorized_client"},
            ProviderMisconfigured,
            "unauthorized_client",
            id="unauthorized_client",
        ),
    ],
)
async def test_error_decides_when_the_code_is_unknown_or_absent(
    microsoft: Any, body: dict[str, Any], expected: type[Exception], error: str
) -> None:
    harness = await microsoft()
    tokens = await harness.connect()
    harness.fake.fail_next("refresh", "raw", status=400, body=body)
    with pytest.raises(expected) as caught:
        await harness.refresh(tokens.refresh_token)
    assert type(caught.value) is expected
    assert caught.value.error == error


async def test_server_failures_are_transient_whatever_the_code(microsoft: Any) -> None:
    harness = await microsoft()
    tokens = await harness.connect()
    # A 5xx that names a reconnect code must still not kill the grant.
    harness.fake.fail_next("refresh", "aadsts", code=70008, status=503)
    with pytest.raises(ProviderUnavailable):
        await harness.refresh(tokens.refresh_token)
    harness.fake.fail_next("refresh", "rate_limited", retry_after=12)
    with pytest.raises(ProviderUnavailable) as caught:
        await harness.refresh(tokens.refresh_token)
    assert caught.value.retry_after == 12
    assert harness.fake.is_live(tokens.refresh_token)


async def test_errors_never_carry_microsoft_free_text(microsoft: Any) -> None:
    harness = await microsoft()
    tokens = await harness.connect()
    harness.fake.fail_next(
        "refresh",
        "aadsts",
        code=50057,
        error="invalid_grant",
        description="The user account grace@contoso.example is disabled.",
    )
    with pytest.raises(ReconnectRequired) as caught:
        await harness.refresh(tokens.refresh_token)
    assert "grace@" not in str(caught.value)
    assert "grace@" not in (caught.value.description or "")
    assert "correlation_id=" in (caught.value.description or "")


# ---------------------------------------------------------------------- validation, revocation


async def test_validate_calls_graph_me(microsoft: Any) -> None:
    harness = await microsoft()
    harness.fake.login_as("grace@contoso.example")
    tokens = await harness.connect()
    result = await harness.validate(tokens.access_token)
    assert result.valid is True
    assert result.email == "grace@contoso.example"
    assert harness.fake.count("userinfo") == 1
    harness.fake.expire_access_token(tokens.access_token)
    result = await harness.validate(tokens.access_token)
    assert result.valid is False
    assert result.detail == "Microsoft Graph rejected the token (InvalidAuthenticationToken)"


async def test_validate_raises_when_graph_throttles(microsoft: Any) -> None:
    harness = await microsoft()
    tokens = await harness.connect()
    harness.fake.fail_next("userinfo", "rate_limited")
    with pytest.raises(ProviderUnavailable):
        await harness.validate(tokens.access_token)


async def test_revoke_is_local_only_and_says_how_to_remove_access(microsoft: Any) -> None:
    harness = await microsoft()
    tokens = await harness.connect()
    result = await harness.revoke(tokens.access_token, tokens.refresh_token, tokens.metadata)
    assert result.revoked is False
    assert result.supported is False
    assert "deleted locally" in (result.detail or "")
    assert "https://myapps.microsoft.com" in (result.detail or "")
    assert "account.live.com" not in (result.detail or "")  # a work account's tenant
    assert harness.fake.count() == 2  # authorize + token: nothing was sent to revoke
    assert harness.fake.is_live(tokens.refresh_token)


async def test_revoke_points_personal_accounts_at_their_consent_page(microsoft: Any) -> None:
    harness = await microsoft()
    personal = {"tenant_id": "9188040d-6c67-4c5b-b112-36a304b66dad"}
    result = await harness.revoke(None, None, personal)
    assert "https://account.live.com/consent/Manage" in (result.detail or "")
    assert "myapps" not in (result.detail or "")
    unknown = await harness.revoke(None, None, {})
    assert "account.live.com" in (unknown.detail or "")
    assert "myapps.microsoft.com" in (unknown.detail or "")
