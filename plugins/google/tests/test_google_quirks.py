"""Google's quirks, each driven through the plugin's hooks against the fake Google over
loopback; every test here fails if its quirk is removed from the plugin."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from pulseplan import ProviderMisconfigured
from pulseplan import ProviderUnavailable
from pulseplan import ReconnectRequired
from pulseplan.testing.fake_provider import FakeProvider

CALENDAR = "https://www.googleapis.com/auth/calendar.events"
GMAIL = "https://www.googleapis.com/auth/gmail.readonly"


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


# ---------------------------------------------------------------------- authorization request


async def test_authorization_url_asks_for_offline_access_incremental_scopes_and_pkce(
    google: Any,
) -> None:
    harness = await google()
    params = query(await harness.authorization_url(verifier="v" * 64))
    assert params["access_type"] == ["offline"]
    assert params["include_granted_scopes"] == ["true"]
    assert params["code_challenge_method"] == ["S256"]
    assert params["code_challenge"] == [create_s256_code_challenge("v" * 64)]
    assert params["scope"] == [f"openid email {CALENDAR}"]
    assert "code_verifier" not in params


async def test_prompt_consent_only_when_a_refresh_token_is_needed(google: Any) -> None:
    harness = await google()
    assert query(await harness.authorization_url(needs_refresh_token=True))["prompt"] == ["consent"]
    assert "prompt" not in query(await harness.authorization_url(needs_refresh_token=False))


async def test_repeat_consent_yields_a_refresh_token_only_with_prompt_consent(
    google: Any,
) -> None:
    harness = await google()
    first = await harness.connect(needs_refresh_token=True)
    assert first.refresh_token is not None
    # The user already consented: without prompt=consent Google sends no new refresh token
    # (the host keeps the stored one) and does not mint another toward the 100-token cap.
    quiet = await harness.connect(needs_refresh_token=False)
    assert quiet.refresh_token is None
    assert harness.fake.is_live(first.refresh_token)
    forced = await harness.connect(needs_refresh_token=True)
    assert forced.refresh_token is not None
    assert forced.refresh_token != first.refresh_token


async def test_gmail_scopes_come_from_google_scopes(google: Any) -> None:
    harness = await google(GOOGLE_SCOPES=f"openid email {GMAIL}")
    assert query(await harness.authorization_url())["scope"] == [f"openid email {GMAIL}"]
    tokens = await harness.connect()
    assert tokens.scopes is not None
    assert GMAIL in tokens.scopes


# ---------------------------------------------------------------------- code exchange


async def test_granted_scopes_are_taken_from_the_response_when_google_narrows_them(
    google: Any,
) -> None:
    harness = await google()
    harness.fake.drop_scopes(CALENDAR)  # granular consent: the user unticks Calendar
    tokens = await harness.connect()
    assert tokens.scopes is not None
    assert CALENDAR not in tokens.scopes
    assert "openid" in tokens.scopes
    # Google echoes the short identity scope in its URL form; it is stored as reported.
    assert "https://www.googleapis.com/auth/userinfo.email" in tokens.scopes


async def test_email_comes_from_the_id_token_without_a_userinfo_call(google: Any) -> None:
    harness = await google()
    harness.fake.login_as("grace@example.test")
    tokens = await harness.connect()
    assert tokens.email == "grace@example.test"
    assert harness.fake.count("userinfo") == 0


async def test_email_comes_from_userinfo_without_an_id_token(google: Any) -> None:
    harness = await google(GOOGLE_SCOPES=f"email {CALENDAR}")  # no openid: no ID token
    harness.fake.login_as("grace@example.test")
    tokens = await harness.connect()
    assert tokens.email == "grace@example.test"
    assert harness.fake.count("userinfo") == 1


async def test_time_based_access_expiry_is_kept_in_metadata(google: Any) -> None:
    harness = await google()
    tokens = await harness.connect()
    assert tokens.refresh_token is not None
    harness.fake.fail_next(
        "refresh",
        "raw",
        status=200,
        body={
            "access_token": "fake_at_timebound",
            "expires_in": 3599,
            "token_type": "Bearer",
            "refresh_token_expires_in": 86400,
        },
    )
    refreshed = await harness.refresh(tokens.refresh_token)
    assert "refresh_token_expires_at" in refreshed.metadata


# ---------------------------------------------------------------------- refresh errors

FAULTS: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("dead refresh token", {"kind": "invalid_grant"}, ReconnectRequired, "invalid_grant"),
    (
        "invalid_grant, any description",
        {"kind": "error", "error": "invalid_grant", "description": "Bad Request"},
        ReconnectRequired,
        "invalid_grant",
    ),
    ("invalid_rapt", {"kind": "google_invalid_rapt"}, ReconnectRequired, "invalid_rapt"),
    (
        "rapt_required",
        {
            "kind": "raw",
            "status": 400,
            "body": {"error": "invalid_grant", "error_subtype": "rapt_required"},
        },
        ReconnectRequired,
        "rapt_required",
    ),
    (
        "admin_policy_enforced",
        {"kind": "error", "error": "admin_policy_enforced", "status": 400},
        ReconnectRequired,
        "admin_policy_enforced",
    ),
    ("deleted_client", {"kind": "google_deleted_client"}, ProviderMisconfigured, "deleted_client"),
    ("invalid_client", {"kind": "invalid_client"}, ProviderMisconfigured, "invalid_client"),
    (
        "unauthorized_client",
        {"kind": "error", "error": "unauthorized_client", "status": 400},
        ProviderMisconfigured,
        "unauthorized_client",
    ),
    ("5xx", {"kind": "server_error", "status": 503}, ProviderUnavailable, "internal_failure"),
    ("429", {"kind": "rate_limited"}, ProviderUnavailable, "temporarily_unavailable"),
    ("408", {"kind": "raw", "status": 408, "body": ""}, ProviderUnavailable, "http_408"),
    (
        "internal_failure on a 400",
        {"kind": "error", "error": "internal_failure", "status": 400},
        ProviderUnavailable,
        "internal_failure",
    ),
    (
        "403 rateLimitExceeded",
        {
            "kind": "raw",
            "status": 403,
            "body": {
                "error": {
                    "code": 403,
                    "message": "Rate Limit Exceeded",
                    "errors": [{"domain": "usageLimits", "reason": "rateLimitExceeded"}],
                }
            },
        },
        ProviderUnavailable,
        "rateLimitExceeded",
    ),
    (
        "403 userRateLimitExceeded",
        {
            "kind": "raw",
            "status": 403,
            "body": {
                "error": {
                    "code": 403,
                    "message": "User-rate limit exceeded.",
                    "errors": [{"domain": "usageLimits", "reason": "userRateLimitExceeded"}],
                }
            },
        },
        ProviderUnavailable,
        "userRateLimitExceeded",
    ),
]


@pytest.mark.parametrize(
    ("fault", "expected", "error"),
    [pytest.param(f, e, c, id=name) for name, f, e, c in FAULTS],
)
async def test_refresh_errors_are_classified(
    google: Any, fault: dict[str, Any], expected: type[Exception], error: str
) -> None:
    harness = await google()
    tokens = await harness.connect()
    assert tokens.refresh_token is not None
    harness.fake.fail_next("refresh", **fault)
    with pytest.raises(expected) as caught:
        await harness.refresh(tokens.refresh_token)
    assert type(caught.value) is expected
    assert caught.value.error == error
    assert tokens.refresh_token not in str(caught.value)
    assert tokens.refresh_token not in repr(caught.value.description)


async def test_rate_limit_carries_retry_after(google: Any) -> None:
    harness = await google()
    tokens = await harness.connect()
    harness.fake.fail_next("refresh", "rate_limited", retry_after=30)
    with pytest.raises(ProviderUnavailable) as caught:
        await harness.refresh(tokens.refresh_token)
    assert caught.value.retry_after == 30


async def test_refresh_keeps_no_refresh_token_and_reports_granted_scopes(google: Any) -> None:
    harness = await google()
    tokens = await harness.connect()
    assert tokens.refresh_token is not None
    refreshed = await harness.refresh(tokens.refresh_token, tokens.scopes)
    assert refreshed.refresh_token is None  # Google does not rotate: the host keeps the old one
    assert refreshed.access_token != tokens.access_token
    assert harness.fake.is_live(refreshed.access_token)
    assert refreshed.scopes == tokens.scopes
    assert refreshed.expires_at is not None


# ---------------------------------------------------------------------- validation


async def test_validate_uses_tokeninfo_with_the_token_in_the_body(google: Any) -> None:
    harness = await google()
    harness.fake.login_as("grace@example.test")
    tokens = await harness.connect()
    result = await harness.validate(tokens.access_token)
    assert result.valid is True
    assert result.email == "grace@example.test"
    assert result.scopes is not None
    assert CALENDAR in result.scopes
    assert harness.fake.count("tokeninfo") == 1
    assert harness.fake.count("userinfo") == 0
    assert all(tokens.access_token not in url for url in harness.urls)


async def test_validate_reports_an_expired_token_invalid(google: Any) -> None:
    harness = await google()
    tokens = await harness.connect()
    harness.fake.expire_access_token(tokens.access_token)
    result = await harness.validate(tokens.access_token)
    assert result.valid is False
    assert result.detail is not None
    assert tokens.access_token not in result.detail


async def test_validate_raises_when_tokeninfo_is_down(google: Any) -> None:
    harness = await google()
    tokens = await harness.connect()
    harness.fake.fail_next("tokeninfo", "server_error", status=503)
    with pytest.raises(ProviderUnavailable):
        await harness.validate(tokens.access_token)


async def test_google_tokeninfo_url_overrides_the_derived_endpoint(
    google: Any, fake_provider: Any
) -> None:
    other = fake_provider("google")
    harness = await google(GOOGLE_TOKENINFO_URL=str(other.endpoints["tokeninfo_url"]))
    tokens = await harness.connect()
    # The other fake never issued this token, so it answers invalid_token.
    assert (await harness.validate(tokens.access_token)).valid is False
    assert other.count("tokeninfo") == 1
    assert harness.fake.count("tokeninfo") == 0


# ---------------------------------------------------------------------- revocation


async def test_revoke_prefers_the_refresh_token_and_ends_the_grant(google: Any) -> None:
    harness = await google()
    tokens = await harness.connect()
    result = await harness.revoke(tokens.access_token, tokens.refresh_token)
    assert result.revoked is True
    assert result.supported is True
    assert not harness.fake.is_live(tokens.refresh_token)
    assert not harness.fake.is_live(tokens.access_token)
    assert harness.fake.count("revoke") == 1
    assert all(tokens.refresh_token not in url for url in harness.urls)


async def test_revoking_an_already_dead_token_counts_as_revoked(google: Any) -> None:
    harness = await google()
    tokens = await harness.connect()
    harness.fake.revoke_grant(tokens.refresh_token)  # the user removed the app at Google
    result = await harness.revoke(tokens.access_token, tokens.refresh_token)
    assert result.revoked is True
    assert result.detail == "Google reports the token already invalid"


async def test_revoke_raises_transient_failures_for_the_host_to_retry(google: Any) -> None:
    harness = await google()
    tokens = await harness.connect()
    harness.fake.fail_next("revoke", "server_error", status=503)
    with pytest.raises(ProviderUnavailable):
        await harness.revoke(tokens.access_token, tokens.refresh_token)
    assert harness.fake.is_live(tokens.refresh_token)


async def test_revoke_sends_no_client_secret(google: Any) -> None:
    harness = await google()
    tokens = await harness.connect()
    # A revoke endpoint that demands client authentication would refuse us: Google's does not.
    fake: FakeProvider = harness.fake
    assert fake.client_secret is not None
    sent: list[bytes] = []

    async def capture(request: Any) -> None:
        if request.url.path.endswith("/revoke"):
            sent.append(request.content)

    harness.host.context("google").http.event_hooks["request"].append(capture)
    await harness.revoke(tokens.access_token, tokens.refresh_token)
    assert len(sent) == 1
    assert parse_qs(sent[0].decode()) == {"token": [tokens.refresh_token]}
