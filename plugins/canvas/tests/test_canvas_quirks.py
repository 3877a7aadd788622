"""One test per Canvas quirk the plugin handles, each driven against the kit's fake Canvas over
real loopback HTTP (or, for configuration, through the host's settings resolver)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulseplan_canvas
import pytest

from pulseplan import ProviderMisconfigured
from pulseplan import ProviderUnavailable
from pulseplan import ReconnectRequired
from pulseplan.provider_config import resolve

Make = Callable[..., Any]
CLIENT = {"CANVAS_CLIENT_ID": "key-1", "CANVAS_CLIENT_SECRET": "key-secret"}


# --------------------------------------------------------------------------- base URL

VALID = [
    ("https://school.instructure.com", False, "https://school.instructure.com"),
    ("https://School.Instructure.COM/", False, "https://school.instructure.com"),
    ("https://school.instructure.com:443", True, "https://school.instructure.com"),
    ("https://canvas.example.edu:8443", True, "https://canvas.example.edu:8443"),
    ("http://127.0.0.1:8900", False, "http://127.0.0.1:8900"),
    ("http://localhost:3000/", False, "http://localhost:3000"),
    ("http://[::1]:3000", False, "http://[::1]:3000"),
]
INVALID = [
    ("http://school.instructure.com", False, "https"),
    ("http://10.0.0.5", False, "https"),
    ("http://127.0.0.1:8900", True, "https"),  # loopback http only outside production
    ("https://admin:pw@school.instructure.com", False, "credentials"),
    ("https://school.instructure.com/courses/12", False, "without a path"),
    ("https://school.instructure.com/login/oauth2/auth", False, "without a path"),
    ("https://school.instructure.com/?next=/x", False, "query"),
    ("https://school.instructure.com#top", False, "fragment"),
    ("ftp://school.instructure.com", False, "http(s)"),
    ("school.instructure.com", False, "http(s)"),
    ("https://", False, "http(s)"),
    ("https://school.instructure.com:99999", False, "port"),
    ("https://school instructure.com", False, "whitespace"),
]


@pytest.mark.parametrize(("value", "production", "expected"), VALID)
def test_base_url_accepted_and_normalised(value: str, production: bool, expected: str) -> None:
    settings = resolve(
        pulseplan_canvas.SPEC, {**CLIENT, "CANVAS_BASE_URL": value}, production=production
    )
    assert settings.problems == ()
    assert settings.extra["base_url"] == expected
    assert settings.authorize_url == f"{expected}/login/oauth2/auth"
    assert settings.token_url == f"{expected}/login/oauth2/token"
    assert settings.revoke_url == f"{expected}/login/oauth2/token"
    assert settings.userinfo_url == f"{expected}/api/v1/users/self"


@pytest.mark.parametrize(("value", "production", "reason"), INVALID)
def test_base_url_refused(value: str, production: bool, reason: str) -> None:
    settings = resolve(
        pulseplan_canvas.SPEC, {**CLIENT, "CANVAS_BASE_URL": value}, production=production
    )
    assert not settings.configured
    problem = next(p for p in settings.problems if p.startswith("CANVAS_BASE_URL"))
    assert reason in problem
    assert settings.token_url == ""  # nothing is ever built from a refused instance URL


def test_base_url_is_required() -> None:
    settings = resolve(pulseplan_canvas.SPEC, CLIENT, production=False)
    assert any(p.startswith("CANVAS_BASE_URL is not set") for p in settings.problems)


# --------------------------------------------------------------------------- PKCE


async def test_pkce_is_off_by_default(canvas: Make) -> None:
    h = canvas()
    assert "code_challenge" not in h.authorization_url("a-verifier-that-must-not-leak")
    await h.connect()
    assert h.fake.calls("token")[-1].pkce is not True


async def test_pkce_when_the_instance_supports_it(canvas: Make) -> None:
    h = canvas(CANVAS_PKCE="true", require_pkce=True)
    assert "code_challenge_method=S256" in h.authorization_url("v" * 43)
    await h.connect()
    assert h.fake.calls("token")[-1].pkce is True


def test_pkce_setting_must_be_a_boolean() -> None:
    env = {**CLIENT, "CANVAS_BASE_URL": "https://school.instructure.com", "CANVAS_PKCE": "maybe"}
    settings = resolve(pulseplan_canvas.SPEC, env, production=False)
    assert any(p.startswith("CANVAS_PKCE") for p in settings.problems)


# --------------------------------------------------------------------------- code exchange


async def test_exchange_keeps_user_and_instance_and_finds_the_email(canvas: Make) -> None:
    h = canvas()
    tokens = await h.connect()
    assert tokens.email == "ada@example.test"  # from /api/v1/users/self/profile
    assert h.fake.count("profile") == 1
    assert tokens.metadata["base_url"] == h.fake.base_url
    assert isinstance(tokens.metadata["user_id"], int)
    assert tokens.metadata["user_name"] == "Ada Lovelace"
    assert tokens.metadata["user_global_id"].startswith("1000")
    assert tokens.metadata["canvas_region"] == "us-east-1"
    assert tokens.scopes is None  # Canvas reports none; the host keeps the flow's
    assert tokens.expires_at is not None
    assert tokens.refresh_token is not None


async def test_exchange_survives_a_failed_profile_lookup(canvas: Make) -> None:
    h = canvas()
    h.fake.fail_next("userinfo", "raw", status=401, body={"errors": [{"message": "scope"}]})
    tokens = await h.connect()
    assert tokens.email is None
    assert tokens.metadata["user_name"] == "Ada Lovelace"


# --------------------------------------------------------------------------- refresh


async def test_refresh_keeps_the_refresh_token(canvas: Make) -> None:
    h = canvas()
    first = await h.connect()
    assert first.refresh_token is not None
    again = await pulseplan_canvas.refresh(h.ctx, first.refresh_token, (), h.metadata())
    assert again.refresh_token is None  # host keeps the stored one
    assert h.fake.is_live(first.refresh_token)
    assert h.fake.is_live(again.access_token)
    assert not h.fake.is_live(first.access_token)
    assert again.metadata["base_url"] == h.fake.base_url


async def test_refresh_token_not_found_means_reconnect(canvas: Make) -> None:
    h = canvas()
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    h.fake.fail_next("refresh", "canvas_refresh_token_not_found")
    with pytest.raises(ReconnectRequired) as failure:
        await pulseplan_canvas.refresh(h.ctx, tokens.refresh_token, (), h.metadata())
    assert failure.value.error == "invalid_request"
    assert failure.value.description == "refresh_token not found"
    assert tokens.refresh_token not in str(failure.value) + repr(failure.value)


async def test_refresh_after_the_user_removed_the_app(canvas: Make) -> None:
    """The fake's own answer to a deleted token (no scripted fault)."""
    h = canvas()
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    h.fake.revoke_grant(tokens.refresh_token)
    with pytest.raises(ReconnectRequired):
        await pulseplan_canvas.refresh(h.ctx, tokens.refresh_token, (), h.metadata())


@pytest.mark.parametrize(
    ("fault", "options", "expected", "error"),
    [
        ("error", {"error": "invalid_grant", "description": "incorrect client"}, "reconnect", None),
        ("invalid_client", {}, "misconfigured", "invalid_client"),
        ("canvas_rate_limit", {}, "unavailable", "rate_limit_exceeded"),
        ("server_error", {"status": 502}, "unavailable", "http_502"),
        (
            "raw",
            {
                "status": 302,
                "headers": {
                    "Location": "http://127.0.0.1:9/cb?error=invalid_request"
                    "&error_description=refresh_token+not+found"
                },
            },
            "reconnect",
            "invalid_request",
        ),
        (
            "raw",
            {"status": 302, "headers": {"Location": "http://127.0.0.1:9/cb?error=invalid_client"}},
            "misconfigured",
            "invalid_client",
        ),
    ],
)
async def test_refresh_errors_are_classified(
    canvas: Make, fault: str, options: dict[str, Any], expected: str, error: str | None
) -> None:
    kinds = {
        "reconnect": ReconnectRequired,
        "misconfigured": ProviderMisconfigured,
        "unavailable": ProviderUnavailable,
    }
    h = canvas()
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    h.fake.fail_next("refresh", fault, **options)
    with pytest.raises(kinds[expected]) as failure:
        await pulseplan_canvas.refresh(h.ctx, tokens.refresh_token, (), h.metadata())
    if error is not None:
        assert failure.value.error == error
    if fault == "canvas_rate_limit":
        assert failure.value.status == 403
    assert h.fake.is_live(tokens.refresh_token)  # nothing was really lost


# --------------------------------------------------------------------------- validate


async def test_validate_distinguishes_dead_tokens_from_refusals(canvas: Make) -> None:
    h = canvas()
    tokens = await h.connect()
    ok = await pulseplan_canvas.validate(h.ctx, tokens.access_token, h.metadata())
    assert ok.valid

    # 401 without WWW-Authenticate: the token authenticated, the key lacks the scope.
    h.fake.fail_next("userinfo", "raw", status=401, body={"errors": [{"message": "scopes"}]})
    scoped = await pulseplan_canvas.validate(h.ctx, tokens.access_token, h.metadata())
    assert scoped.valid
    assert scoped.detail is not None
    assert "401" in scoped.detail

    h.fake.fail_next("userinfo", "raw", status=403, body={"errors": [{"message": "no"}]})
    forbidden = await pulseplan_canvas.validate(h.ctx, tokens.access_token, h.metadata())
    assert forbidden.valid
    assert forbidden.detail is not None
    assert "403" in forbidden.detail

    h.fake.fail_next("userinfo", "canvas_rate_limit")
    with pytest.raises(ProviderUnavailable) as throttled:
        await pulseplan_canvas.validate(h.ctx, tokens.access_token, h.metadata())
    assert throttled.value.error == "rate_limit_exceeded"

    h.fake.expire_access_token(tokens.access_token)  # 401 *with* WWW-Authenticate
    dead = await pulseplan_canvas.validate(h.ctx, tokens.access_token, h.metadata())
    assert not dead.valid


# --------------------------------------------------------------------------- revoke


async def test_revoke_deletes_the_grant_with_the_bearer_token(canvas: Make) -> None:
    h = canvas()
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    result = await pulseplan_canvas.revoke(
        h.ctx, tokens.access_token, tokens.refresh_token, h.metadata()
    )
    assert result.revoked
    call = h.fake.calls("revoke")[-1]
    assert (call.method, call.status) == ("DELETE", 200)
    assert not h.fake.is_live(tokens.refresh_token)
    assert h.fake.count("refresh") == 0


async def test_revoke_with_an_expired_access_token_refreshes_first(canvas: Make) -> None:
    h = canvas()
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    h.fake.expire_access_token(tokens.access_token)
    result = await pulseplan_canvas.revoke(
        h.ctx, tokens.access_token, tokens.refresh_token, h.metadata()
    )
    assert result.revoked
    assert h.fake.count("refresh") == 1
    assert [c.status for c in h.fake.calls("revoke")] == [401, 200]
    assert not h.fake.is_live(tokens.refresh_token)


async def test_revoke_of_a_grant_canvas_already_forgot(canvas: Make) -> None:
    h = canvas()
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    h.fake.revoke_grant(tokens.refresh_token)
    result = await pulseplan_canvas.revoke(
        h.ctx, tokens.access_token, tokens.refresh_token, h.metadata()
    )
    assert result.revoked
    assert result.detail == "Canvas no longer knows this grant"


async def test_revoke_without_refresh_token_reports_honestly(canvas: Make) -> None:
    h = canvas()
    tokens = await h.connect()
    h.fake.expire_access_token(tokens.access_token)
    result = await pulseplan_canvas.revoke(h.ctx, tokens.access_token, None, h.metadata())
    assert not result.revoked
    assert result.detail is not None
    assert "no refresh token" in result.detail


async def test_revoke_of_a_non_oauth_token(canvas: Make) -> None:
    h = canvas()
    tokens = await h.connect()
    message = "can't delete OAuth access token when not using an OAuth access token"
    h.fake.fail_next("revoke", "raw", status=400, body={"message": message})
    result = await pulseplan_canvas.revoke(h.ctx, tokens.access_token, None, h.metadata())
    assert not result.revoked
    assert result.detail is not None
    assert "not an OAuth token" in result.detail


async def test_revoke_throttled_is_transient(canvas: Make) -> None:
    h = canvas()
    tokens = await h.connect()
    h.fake.fail_next("revoke", "canvas_rate_limit")
    with pytest.raises(ProviderUnavailable):
        await pulseplan_canvas.revoke(h.ctx, tokens.access_token, None, h.metadata())


# --------------------------------------------------------------------------- instance guard


@pytest.mark.parametrize(
    "stored",
    [
        "elsewhere",  # replaced by the other fake's URL
        "https://{host}:{port}",  # same host and port, other scheme
        "http://{host}:1",  # same host, other port
        "http://evil.example:{port}",
        42,
        "not a url",
    ],
)
async def test_a_row_naming_another_instance_is_refused_offline(
    canvas: Make, fake_provider: Callable[..., Any], stored: object
) -> None:
    h = canvas()
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    elsewhere = fake_provider("canvas")
    if isinstance(stored, str):
        host, port = h.fake.base_url.removeprefix("http://").split(":")
        stored = (
            elsewhere.base_url if stored == "elsewhere" else stored.format(host=host, port=port)
        )
    metadata = h.metadata(base_url=stored)
    h.fake.reset_calls()

    with pytest.raises(ReconnectRequired) as failure:
        await pulseplan_canvas.refresh(h.ctx, tokens.refresh_token, (), metadata)
    assert failure.value.error == "canvas_instance_mismatch"
    validation = await pulseplan_canvas.validate(h.ctx, tokens.access_token, metadata)
    assert not validation.valid
    revocation = await pulseplan_canvas.revoke(
        h.ctx, tokens.access_token, tokens.refresh_token, metadata
    )
    assert not revocation.revoked

    assert elsewhere.count() == 0
    assert h.fake.count() == 0
    assert h.fake.is_live(tokens.refresh_token)


async def test_rows_of_the_configured_instance_are_served(canvas: Make) -> None:
    h = canvas()
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    same = h.fake.base_url.upper().replace("HTTP://", "http://") + "/"
    for metadata in ({}, {"base_url": same}):  # legacy rows carry no base_url
        refreshed = await pulseplan_canvas.refresh(h.ctx, tokens.refresh_token, (), metadata)
        assert refreshed.metadata["base_url"] == h.fake.base_url
    assert h.fake.count("refresh") == 2
