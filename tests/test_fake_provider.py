"""The fake OAuth provider driven by the host's StandardOAuth2 over real loopback HTTP: the
whole lifecycle per profile, PKCE, authorization codes, refresh-token rotation policies,
consent, the call log and the ledger, secrecy, and the standalone entry point."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import asdict

import httpx
import pytest

from pulseplan.errors import ProviderError
from pulseplan.errors import ReconnectRequired
from pulseplan.testing.fake_provider import Account
from pulseplan.testing.fake_provider import ConsentError
from pulseplan.testing.fake_provider import FakeProvider
from tests.fake_harness import PROFILES
from tests.fake_harness import REDIRECT_URI
from tests.fake_harness import Harness
from tests.fake_harness import Make
from tests.fake_harness import harnesses
from tests.fake_harness import query

#: (refresh response carries a new refresh token, the old one stays live) per profile default.
ROTATION = {
    "standard": (True, False),
    "google": (False, True),
    "microsoft": (True, True),
    "canvas": (False, True),
    "notion": (True, False),
}


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    async with harnesses() as build:
        yield build


async def revoke(h: Harness, access_token: str, refresh_token: str) -> None:
    """Revoke the way each provider's plugin has to."""
    profile, fake = h.fake.profile, h.fake
    if profile in ("standard", "google"):
        assert (await h.std.revoke(access_token=access_token, refresh_token=refresh_token)).revoked
    elif profile == "canvas":
        response = await h.http.delete(
            fake.endpoints["revoke_url"] or "", headers={"Authorization": f"Bearer {access_token}"}
        )
        assert (response.status_code, response.json()) == (200, {})
    elif profile == "notion":
        response = await h.http.post(
            fake.endpoints["revoke_url"] or "",
            json={"token": access_token},
            auth=(fake.client_id, fake.client_secret or ""),
        )
        assert response.status_code == 200
        assert "request_id" in response.json()
    else:
        result = await h.std.revoke(access_token=access_token, refresh_token=refresh_token)
        assert not result.supported
        assert fake.revoke_grant(refresh_token) == 1  # the user removes the app instead


# --------------------------------------------------------------------------- lifecycle


@pytest.mark.parametrize("profile", PROFILES)
async def test_full_lifecycle(make: Make, profile: str) -> None:
    h = await make(profile)
    fake = h.fake

    tokens = await h.connect()
    exchange = fake.calls("token")[-1]
    assert exchange.grant_type == "authorization_code"
    assert exchange.ok
    assert exchange.pkce is (True if h.spec.pkce else None)
    assert tokens.access_token.startswith("fake_at_")
    assert tokens.refresh_token is not None
    assert tokens.refresh_token.startswith("fake_rt_")
    assert (await h.std.validate(access_token=tokens.access_token)).valid
    if profile in ("standard", "google", "microsoft"):
        assert tokens.email == "ada@example.test"  # from the ID token

    refreshed = await h.std.refresh(refresh_token=tokens.refresh_token)
    rotates, old_stays_live = ROTATION[profile]
    assert (refreshed.refresh_token is not None) is rotates
    assert fake.is_live(tokens.refresh_token) is old_stays_live
    current = refreshed.refresh_token or tokens.refresh_token
    assert fake.latest_refresh_token() == current
    assert fake.is_live(current)
    assert (await h.std.validate(access_token=refreshed.access_token)).valid

    await revoke(h, refreshed.access_token, current)
    assert not (await h.std.validate(access_token=refreshed.access_token)).valid
    assert not fake.is_live(current)
    assert fake.live_refresh_tokens() == []
    with pytest.raises(ProviderError) as failure:
        await h.std.refresh(refresh_token=current)
    if profile == "canvas":
        # Canvas's dead-refresh-token wording; the canvas plugin maps it to a reconnect.
        assert (failure.value.error, failure.value.description) == (
            "invalid_request",
            "refresh_token not found",
        )
    else:
        assert type(failure.value) is ReconnectRequired
    assert fake.count("refresh") == 2
    assert fake.count("refresh", ok=True) == 1


# --------------------------------------------------------------------------- PKCE and codes


@pytest.mark.parametrize("profile", ["standard", "google", "microsoft", "canvas"])
async def test_wrong_pkce_verifier_is_rejected_and_burns_the_code(make: Make, profile: str) -> None:
    h = await make(profile)
    url, verifier = h.authorization_url(pkce=True)
    code = query(h.fake.consent(url))["code"]
    with pytest.raises(ReconnectRequired):
        await h.std.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier="x" * 50)
    assert h.fake.calls("token")[-1].pkce is False
    with pytest.raises(ReconnectRequired):  # single use, even after a failed attempt
        await h.std.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier)
    assert h.fake.live_refresh_tokens() == []


async def test_missing_verifier_is_rejected(make: Make) -> None:
    h = await make("google")
    url, _ = h.authorization_url(pkce=True)
    code = query(h.fake.consent(url))["code"]
    with pytest.raises(ReconnectRequired):
        await h.std.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier=None)


async def test_standard_profile_requires_s256_and_refuses_downgrades(make: Make) -> None:
    h = await make("standard")
    url, _ = h.authorization_url(pkce=False)
    assert query(h.fake.consent(url))["error"] == "invalid_request"
    plain = url + "&code_challenge=" + "a" * 43 + "&code_challenge_method=plain"
    assert query(h.fake.consent(plain))["error"] == "invalid_request"
    # RFC 9700 §2.1.1: a verifier for a code issued without a challenge is refused.
    h.fake.config.require_pkce = False
    code = query(h.fake.consent(url))["code"]
    with pytest.raises(ReconnectRequired):
        await h.std.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier="v" * 50)


async def test_codes_are_single_use_and_a_replay_revokes_what_they_issued(make: Make) -> None:
    h = await make("standard")
    code, verifier = h.code()
    tokens = await h.std.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier)
    with pytest.raises(ReconnectRequired):
        await h.std.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier)
    assert not h.fake.is_live(tokens.access_token)
    assert tokens.refresh_token is not None
    assert not h.fake.is_live(tokens.refresh_token)
    info = h.fake.grant_info(tokens.access_token)
    assert info is not None
    assert info.revoked_reason == "code_replay"


async def test_codes_expire_and_are_bound_to_redirect_uri_and_client(make: Make) -> None:
    h = await make("standard", code_ttl=60)
    code, verifier = h.code()
    h.fake.advance(61)
    with pytest.raises(ReconnectRequired):
        await h.std.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier)

    code, verifier = h.code()
    with pytest.raises(ReconnectRequired):
        await h.std.exchange_code(
            code=code, redirect_uri=REDIRECT_URI + "/other", code_verifier=verifier
        )

    other = h.fake.add_client("other-client", "other-secret-value")
    code, verifier = h.code()
    response = await h.http.post(
        h.fake.endpoints["token_url"] or "",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier or "",
            "client_id": other.client_id,
            "client_secret": other.client_secret or "",
        },
    )
    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")


# --------------------------------------------------------------------------- rotation


async def test_strict_rotation_reuse_revokes_the_whole_family(make: Make) -> None:
    h = await make("standard", rotation="strict")
    first = await h.connect()
    assert first.refresh_token is not None
    second = await h.std.refresh(refresh_token=first.refresh_token)
    assert second.refresh_token is not None
    assert second.refresh_token != first.refresh_token
    assert not h.fake.is_live(first.refresh_token)

    with pytest.raises(ReconnectRequired):
        await h.std.refresh(refresh_token=first.refresh_token)
    assert not h.fake.is_live(second.refresh_token)
    assert not (await h.std.validate(access_token=second.access_token)).valid
    info = h.fake.grant_info(second.refresh_token)
    assert info is not None
    assert info.revoked_reason == "refresh_token_reuse"
    with pytest.raises(ReconnectRequired):
        await h.std.refresh(refresh_token=second.refresh_token)


async def test_grace_rotation_accepts_the_old_token_for_a_while(make: Make) -> None:
    h = await make("standard", rotation="grace", grace_seconds=30)
    first = await h.connect()
    assert first.refresh_token is not None
    second = await h.std.refresh(refresh_token=first.refresh_token)
    assert h.fake.is_live(first.refresh_token)

    third = await h.std.refresh(refresh_token=first.refresh_token)  # a retry within grace
    assert third.refresh_token not in (None, first.refresh_token, second.refresh_token)
    assert h.fake.latest_refresh_token() == third.refresh_token

    h.fake.advance(31)
    assert not h.fake.is_live(first.refresh_token)
    with pytest.raises(ReconnectRequired):
        await h.std.refresh(refresh_token=first.refresh_token)
    assert third.refresh_token is not None
    assert not h.fake.is_live(third.refresh_token)


async def test_no_rotation_keeps_one_refresh_token(make: Make) -> None:
    h = await make("standard", rotation="none")
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    for _ in range(3):
        assert (await h.std.refresh(refresh_token=tokens.refresh_token)).refresh_token is None
    assert h.fake.live_refresh_tokens() == [tokens.refresh_token]


async def test_plain_rotation_leaves_predecessors_working(make: Make) -> None:
    h = await make("microsoft")
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    newer = await h.std.refresh(refresh_token=tokens.refresh_token)
    again = await h.std.refresh(refresh_token=tokens.refresh_token)
    assert len({tokens.refresh_token, newer.refresh_token, again.refresh_token}) == 3
    assert len(h.fake.live_refresh_tokens()) == 3
    assert h.fake.latest_refresh_token() == again.refresh_token


async def test_concurrent_refreshes_of_one_token_under_strict_rotation(make: Make) -> None:
    h = await make("standard", rotation="strict")
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    rt = tokens.refresh_token
    results = await asyncio.gather(
        *(h.std.refresh(refresh_token=rt) for _ in range(12)), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 11
    assert all(type(f) is ReconnectRequired for f in failures)
    assert h.fake.count("refresh") == 12
    assert h.fake.count("refresh", ok=True) == 1
    assert h.fake.live_refresh_tokens() == []  # the losers' reuse revoked the family


async def test_refresh_may_narrow_but_not_widen_scope(make: Make) -> None:
    h = await make("standard")
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    url = h.fake.endpoints["token_url"] or ""
    auth = {"client_id": h.fake.client_id, "client_secret": h.fake.client_secret or ""}
    narrow = await h.http.post(
        url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens.refresh_token,
            "scope": "read",
            **auth,
        },
    )
    assert narrow.status_code == 200
    assert narrow.json()["scope"] == "read"
    wide = await h.http.post(
        url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": narrow.json()["refresh_token"],
            "scope": "read admin",
            **auth,
        },
    )
    assert (wide.status_code, wide.json()["error"]) == (400, "invalid_scope")


async def test_expiry_knobs(make: Make) -> None:
    h = await make("standard", access_ttl=120)
    tokens = await h.connect()
    assert h.fake.is_live(tokens.access_token)
    h.fake.advance(121)
    assert not (await h.std.validate(access_token=tokens.access_token)).valid
    assert tokens.refresh_token is not None
    fresh = await h.std.refresh(refresh_token=tokens.refresh_token)
    assert h.fake.expire_access_token(fresh.access_token) == 1
    assert not (await h.std.validate(access_token=fresh.access_token)).valid

    h.fake.config.expires_in_report = None
    assert fresh.refresh_token is not None
    unexpiring = await h.std.refresh(refresh_token=fresh.refresh_token)
    assert unexpiring.expires_at is None
    assert unexpiring.refresh_token is not None
    assert h.fake.expire_refresh_token(unexpiring.refresh_token)
    with pytest.raises(ReconnectRequired):
        await h.std.refresh(refresh_token=unexpiring.refresh_token)


# --------------------------------------------------------------------------- consent


async def test_denied_consent_echoes_state(make: Make) -> None:
    h = await make("google")
    url, _ = h.authorization_url(state="s p/a+c=e&é")
    h.fake.deny_next()
    async with httpx.AsyncClient() as browser:
        response = await browser.get(url)
    assert response.status_code == 302
    callback = response.headers["location"]
    assert callback.startswith(REDIRECT_URI + "?")
    assert query(callback) == {"error": "access_denied", "state": "s p/a+c=e&é"}
    approved = query(h.fake.consent(url))
    assert approved["state"] == "s p/a+c=e&é"
    assert "code" in approved
    assert query(h.fake.consent(url, deny=True))["error"] == "access_denied"


async def test_consent_chooses_the_account_per_call(make: Make) -> None:
    h = await make("microsoft")
    grace = await h.connect(account=Account(email="grace@example.test", name="Grace Hopper"))
    assert grace.email == "grace@example.test"
    assert (await h.std.userinfo(grace.access_token))["displayName"] == "Grace Hopper"
    h.fake.login_as("linus@example.test")
    assert (await h.connect()).email == "linus@example.test"
    assert h.fake.latest_refresh_token(email="grace@example.test") == grace.refresh_token


async def test_manual_consent(make: Make) -> None:
    h = await make("standard", consent="manual")
    url, verifier = h.authorization_url(state="manual-state")
    response = await h.http.get(url)
    assert response.status_code == 200
    assert response.json()["consent"] == "pending"
    [pending] = h.fake.pending()
    assert pending.redirect_uri == REDIRECT_URI
    assert "read" in pending.scopes

    callback = h.fake.approve(account=Account(email="mallory@example.test"), scopes=["openid"])
    params = query(callback)
    assert params["state"] == "manual-state"
    tokens = await h.std.exchange_code(
        code=params["code"], redirect_uri=REDIRECT_URI, code_verifier=verifier
    )
    assert tokens.scopes == ("openid",)

    await h.http.get(url)
    assert query(h.fake.deny())["error"] == "access_denied"
    with pytest.raises(LookupError):
        h.fake.approve()


async def test_authorization_errors_that_must_not_redirect(make: Make) -> None:
    h = await make("standard", redirect_uris=[REDIRECT_URI])
    url, _ = h.authorization_url()
    with pytest.raises(ConsentError) as unknown:
        h.fake.consent(url.replace(h.fake.client_id, "nobody"))
    assert unknown.value.status == 400
    with pytest.raises(ConsentError):
        h.fake.consent(url.replace("127.0.0.1%3A9", "evil.example"))
    with pytest.raises(ValueError, match="does not point at this fake"):
        h.fake.consent("https://accounts.google.com/o/oauth2/v2/auth?client_id=x")
    assert query(h.fake.consent(url.replace("response_type=code", "response_type=token"))) == {
        "error": "unsupported_response_type",
        "state": "state-1",
    }


async def test_authorization_response_iss(make: Make) -> None:
    h = await make("standard")
    h.fake.config.authorization_response_iss = True
    url, _ = h.authorization_url()
    assert query(h.fake.consent(url))["iss"] == h.fake.base_url


# --------------------------------------------------------------------------- records, secrets


async def test_call_log_ledger_and_reprs_hold_no_secrets(make: Make) -> None:
    h = await make("standard", token_prefix="canary7")
    url, verifier = h.authorization_url()
    code = query(h.fake.consent(url))["code"]
    assert code.startswith("canary7_code_")
    tokens = await h.std.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier)
    assert tokens.refresh_token is not None
    await h.std.refresh(refresh_token=tokens.refresh_token)
    with pytest.raises(ReconnectRequired):  # reuse: revokes the family
        await h.std.refresh(refresh_token=tokens.refresh_token)
    state = (await h.http.get(h.fake.base_url + "/_fake/state")).json()
    assert state["refreshes"] == 2

    info = h.fake.grant_info(tokens.refresh_token)
    dumps = [
        repr(h.fake),
        repr(h.fake.calls()),
        json.dumps([asdict(c) for c in h.fake.calls()]),
        json.dumps(state),
        repr(info),
        repr(h.fake.fail_next("token", "slow")),
        repr(h.fake.config),
    ]
    secrets = ["canary7", code, tokens.access_token, tokens.refresh_token, h.fake.client_secret]
    # Indexes only: a failing assertion must not print the secret it found.
    leaks = [
        (d, s)
        for d, text in enumerate(dumps)
        for s, value in enumerate(secrets)
        if value and value in text
    ]
    assert leaks == [], "(dump, secret) pairs that leak"
    assert [c.client_auth for c in h.fake.calls("token")] == ["client_secret_post"] * 3


def test_sync_use_and_repeatable_start_stop() -> None:
    fake = FakeProvider("canvas")
    with pytest.raises(RuntimeError, match="not started"):
        fake.base_url  # noqa: B018
    with fake, httpx.Client() as http:
        assert fake.start() is fake
        response = http.get(fake.endpoints["userinfo_url"] or "")
        assert response.status_code == 401
        assert "www-authenticate" not in response.headers  # no token at all: not a dead token
        assert fake.env("canvas")["CANVAS_BASE_URL"] == fake.base_url
    fake.stop()
    assert fake.count("userinfo") == 1


def test_standalone_process_prints_env_lines() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "pulseplan.testing.fake_provider", "--profile", "microsoft"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    ) as process:
        try:
            assert process.stdout is not None
            lines = [process.stdout.readline().strip() for _ in range(6)]
            env = dict(line.split("=", 1) for line in lines)
            assert set(env) == {
                "MICROSOFT_CLIENT_ID",
                "MICROSOFT_CLIENT_SECRET",
                "MICROSOFT_AUTHORIZE_URL",
                "MICROSOFT_TOKEN_URL",
                "MICROSOFT_USERINFO_URL",
                "MICROSOFT_TENANT_ID",
            }
            with httpx.Client() as http:
                response = http.post(env["MICROSOFT_TOKEN_URL"], data={"grant_type": "x"})
            assert response.json()["error"] == "invalid_client"
        finally:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
