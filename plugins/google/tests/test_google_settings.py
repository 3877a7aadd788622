"""The Google provider's description and its one extra setting, GOOGLE_TOKENINFO_URL."""

from __future__ import annotations

from typing import Any

import pytest
from pulseplan_google.spec import SPEC
from pulseplan_google.spec import tokeninfo_url

from pulseplan.provider_config import resolve

CREDENTIALS = {"GOOGLE_CLIENT_ID": "id", "GOOGLE_CLIENT_SECRET": "secret"}


def settings(production: bool = False, **env: str) -> Any:
    return resolve(SPEC, {**CREDENTIALS, **env}, production=production)


def test_spec_describes_google() -> None:
    assert SPEC.name == "google"
    assert SPEC.client_auth == "client_secret_post"
    assert SPEC.pkce is True
    assert SPEC.default_scopes == (
        "openid",
        "email",
        "https://www.googleapis.com/auth/calendar.events",
    )
    resolved = settings()
    assert resolved.configured, resolved.problems
    assert resolved.revoke_url == "https://oauth2.googleapis.com/revoke"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({}, "https://oauth2.googleapis.com/tokeninfo", id="google"),
        pytest.param(
            {"GOOGLE_TOKEN_URL": "http://127.0.0.1:9000/token"},
            "http://127.0.0.1:9000/tokeninfo",
            id="beside-an-overridden-token-url",
        ),
        pytest.param(
            {"GOOGLE_TOKEN_URL": "https://proxy.example/oauth/exchange"},
            None,
            id="underivable-falls-back-to-userinfo",
        ),
        pytest.param(
            {
                "GOOGLE_TOKEN_URL": "https://proxy.example/oauth/exchange",
                "GOOGLE_TOKENINFO_URL": "https://proxy.example/oauth/check",
            },
            "https://proxy.example/oauth/check",
            id="explicit",
        ),
    ],
)
def test_tokeninfo_url(env: dict[str, str], expected: str | None) -> None:
    assert tokeninfo_url(settings(**env)) == expected


@pytest.mark.parametrize(
    ("value", "production"),
    [
        ("http://tokeninfo.example/tokeninfo", False),
        ("http://127.0.0.1:9/tokeninfo", True),
        ("tokeninfo", False),
    ],
)
def test_tokeninfo_url_is_validated(value: str, production: bool) -> None:
    resolved = settings(production, GOOGLE_TOKENINFO_URL=value)
    assert any(p.startswith("GOOGLE_TOKENINFO_URL:") for p in resolved.problems)


async def test_validate_falls_back_to_userinfo_without_a_tokeninfo_url(google: Any) -> None:
    probe = await google()
    # A token URL with a query has no derivable tokeninfo sibling.
    harness = await google(probe.fake, GOOGLE_TOKEN_URL=probe.fake.endpoints["token_url"] + "?v=1")
    tokens = await harness.connect()
    result = await harness.validate(tokens.access_token)
    assert result.valid is True
    assert harness.fake.count("tokeninfo") == 0
    assert harness.fake.count("userinfo") == 1
