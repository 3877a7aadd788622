"""Scripted faults of the fake provider, as the host's StandardOAuth2 classifies them
(providers.md §6): reconnect, operator misconfiguration, or transient with Retry-After."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pulseplan.errors import ProviderError
from pulseplan.errors import ProviderMisconfigured
from pulseplan.errors import ProviderUnavailable
from pulseplan.errors import ReconnectRequired
from pulseplan.testing.fake_provider import FakeProvider
from tests.fake_harness import PROFILES
from tests.fake_harness import REDIRECT_URI
from tests.fake_harness import Make
from tests.fake_harness import harnesses


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    async with harnesses() as build:
        yield build


# (kind, fail_next params, expected class, expected error, expected retry_after)
REFRESH_FAULTS: list[tuple[str, dict[str, Any], type[ProviderError], str | None, float | None]] = [
    ("invalid_grant", {}, ReconnectRequired, "invalid_grant", None),
    ("invalid_client", {}, ProviderMisconfigured, "invalid_client", None),
    ("rate_limited", {"retry_after": 30}, ProviderUnavailable, "temporarily_unavailable", 30),
    ("server_error", {}, ProviderUnavailable, "server_error", None),
    ("server_error", {"status": 503}, ProviderUnavailable, "server_error", None),
    ("error", {"error": "temporarily_unavailable"}, ProviderUnavailable, None, None),
    ("error", {"error": "unauthorized_client"}, ProviderMisconfigured, None, None),
    ("raw", {"status": 502, "body": "<html>Bad gateway</html>"}, ProviderUnavailable, None, None),
    ("reset", {}, ProviderUnavailable, "network", None),
    ("google_invalid_rapt", {}, ReconnectRequired, "invalid_rapt", None),
    ("google_deleted_client", {}, ProviderMisconfigured, "deleted_client", None),
    ("aadsts", {"code": 70008}, ReconnectRequired, "invalid_grant", None),
    ("aadsts", {"code": 50076}, ReconnectRequired, "interaction_required", None),
    ("aadsts", {"code": 65001}, ReconnectRequired, "consent_required", None),
    ("aadsts", {"code": 7000215}, ProviderMisconfigured, "invalid_client", None),
    ("aadsts", {"code": 90024}, ProviderUnavailable, "temporarily_unavailable", None),
    ("aadsts", {"code": 50196, "status": 429, "retry_after": 3}, ProviderUnavailable, None, 3),
    ("notion_error", {"code": "invalid_grant"}, ReconnectRequired, "invalid_grant", None),
    ("notion_error", {"code": "rate_limited"}, ProviderUnavailable, "rate_limited", 7),
    ("notion_error", {"code": "service_overload"}, ProviderUnavailable, None, None),
    ("notion_error", {"code": "invalid_client"}, ProviderMisconfigured, None, None),
]


@pytest.mark.parametrize(
    ("kind", "params", "expected", "error", "retry_after"),
    REFRESH_FAULTS,
    ids=[
        f"{k}-{p.get('code', p.get('status', p.get('error', '')))}" for k, p, *_ in REFRESH_FAULTS
    ],
)
async def test_refresh_fault_classification(
    make: Make,
    kind: Any,
    params: dict[str, Any],
    expected: type[ProviderError],
    error: str | None,
    retry_after: float | None,
) -> None:
    h = await make("standard")
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    fault = h.fake.fail_next("refresh", kind, **params)
    with pytest.raises(ProviderError) as failure:
        await h.std.refresh(refresh_token=tokens.refresh_token)
    assert type(failure.value) is expected
    if error is not None:
        assert failure.value.error == error
    if retry_after is not None:
        assert isinstance(failure.value, ProviderUnavailable)
        assert failure.value.retry_after == retry_after
    assert fault.hits == 1
    assert h.fake.calls("token")[-1].fault == kind
    # One-shot: the grant is untouched and the next refresh works.
    assert (await h.std.refresh(refresh_token=tokens.refresh_token)).access_token


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("invalid_client", ProviderMisconfigured),
        ("rate_limited", ProviderUnavailable),
        ("server_error", ProviderUnavailable),
        ("invalid_grant", ReconnectRequired),
    ],
)
async def test_each_profile_words_faults_so_standard_classifies_them(
    make: Make, profile: str, kind: Any, expected: type[ProviderError]
) -> None:
    h = await make(profile)
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    h.fake.fail_next("refresh", kind)
    with pytest.raises(ProviderError) as failure:
        await h.std.refresh(refresh_token=tokens.refresh_token)
    if profile == "canvas" and kind == "invalid_grant":
        # Canvas says a dead refresh token with invalid_request; the canvas plugin must map it
        # (StandardOAuth2 reads invalid_request as misconfiguration).
        assert failure.value.error == "invalid_request"
        assert failure.value.description == "refresh_token not found"
    else:
        assert type(failure.value) is expected


async def test_code_exchange_faults(make: Make) -> None:
    h = await make("google")
    h.fake.fail_next("code", "invalid_grant")
    code, verifier = h.code()
    with pytest.raises(ReconnectRequired):
        await h.std.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier)
    h.fake.fail_next("token", "server_error", times=2)
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            await h.connect()
    assert (await h.connect()).refresh_token is not None


async def test_fault_repeats_until_cleared(make: Make) -> None:
    h = await make("standard")
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    fault = h.fake.fail_next("refresh", "rate_limited", times=None)
    for _ in range(3):
        with pytest.raises(ProviderUnavailable):
            await h.std.refresh(refresh_token=tokens.refresh_token)
    h.fake.clear_faults()
    assert (await h.std.refresh(refresh_token=tokens.refresh_token)).access_token
    assert fault.hits == 3


async def test_omit_refresh_token_keeps_the_old_one_alive(make: Make) -> None:
    h = await make("standard", rotation="strict")
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    h.fake.fail_next("refresh", "omit_refresh_token")
    assert (await h.std.refresh(refresh_token=tokens.refresh_token)).refresh_token is None
    assert h.fake.is_live(tokens.refresh_token)
    assert (await h.std.refresh(refresh_token=tokens.refresh_token)).refresh_token is not None

    h.fake.fail_next("code", "omit_refresh_token")
    assert (await h.connect()).refresh_token is None


async def test_slow_response_waits_for_release(make: Make) -> None:
    h = await make("standard")
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    fault = h.fake.fail_next("refresh", "slow")
    task = asyncio.create_task(h.std.refresh(refresh_token=tokens.refresh_token))
    assert await asyncio.to_thread(fault.wait_arrived)
    assert not task.done()
    assert h.fake.is_live(tokens.refresh_token)  # held before processing: nothing rotated yet
    fault.release()
    assert (await task).refresh_token is not None
    assert not h.fake.is_live(tokens.refresh_token)


@pytest.mark.parametrize(("rotation", "recovers"), [("grace", True), ("strict", False)])
async def test_reply_lost_after_rotation(make: Make, rotation: Any, recovers: bool) -> None:
    """The provider rotates, then the client times out before reading the reply (the crash
    window of security-checklist C6.5): only a grace window lets the old token retry."""
    h = await make("standard", rotation=rotation, http_timeout=0.2)
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    fault = h.fake.fail_next("refresh", "slow", after=True)
    with pytest.raises(ProviderUnavailable) as failure:
        await h.std.refresh(refresh_token=tokens.refresh_token)
    assert failure.value.error == "timeout"
    fault.release()
    assert h.fake.latest_refresh_token() != tokens.refresh_token
    if recovers:
        retried = await h.std.refresh(refresh_token=tokens.refresh_token)
        assert h.fake.latest_refresh_token() == retried.refresh_token
    else:
        with pytest.raises(ReconnectRequired):
            await h.std.refresh(refresh_token=tokens.refresh_token)


async def test_userinfo_faults(make: Make) -> None:
    h = await make("microsoft")
    tokens = await h.connect()
    h.fake.fail_next("userinfo", "server_error", status=503)
    with pytest.raises(ProviderUnavailable):
        await h.std.validate(access_token=tokens.access_token)
    h.fake.fail_next("userinfo", "invalid_grant")
    assert not (await h.std.validate(access_token=tokens.access_token)).valid
    assert (await h.std.validate(access_token=tokens.access_token)).valid


async def test_revoke_faults(make: Make) -> None:
    h = await make("google")
    tokens = await h.connect()
    h.fake.fail_next("revoke", "server_error", status=503)
    with pytest.raises(ProviderUnavailable):
        await h.std.revoke(access_token=tokens.access_token, refresh_token=tokens.refresh_token)
    assert tokens.refresh_token is not None
    assert h.fake.is_live(tokens.refresh_token)


def test_unknown_faults_are_refused() -> None:
    fake = FakeProvider("standard")  # no server needed
    with pytest.raises(ValueError, match="unknown fault kind"):
        fake.fail_next("token", "explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown endpoint"):
        fake.fail_next("tokens", "slow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times"):
        fake.fail_next("token", "slow", times=0)


# --------------------------------------------------------------------------- StandardOAuth2 details


async def test_standard_keeps_canvas_throttle_text_for_the_plugin(make: Make) -> None:
    h = await make("canvas")
    tokens = await h.connect()
    assert tokens.refresh_token is not None
    h.fake.fail_next("refresh", "canvas_rate_limit")
    with pytest.raises(ProviderError) as failure:
        await h.std.refresh(refresh_token=tokens.refresh_token)
    assert failure.value.status == 403
    assert "Rate Limit Exceeded" in (failure.value.description or "")


async def test_standard_keeps_tokens_when_email_lookup_fails(make: Make) -> None:
    h = await make("canvas")
    h.fake.fail_next("userinfo", "server_error", status=503)
    tokens = await h.connect()
    assert tokens.refresh_token is not None


async def test_random_faults_are_reproducible(make: Make) -> None:
    async def outcomes(seed: int) -> list[bool]:
        h = await make("standard", rotation="none")
        tokens = await h.connect()
        assert tokens.refresh_token is not None
        h.fake.fail_next("refresh", "server_error", times=None, rate=0.5, seed=seed)
        results = []
        for _ in range(12):
            try:
                await h.std.refresh(refresh_token=tokens.refresh_token)
                results.append(True)
            except ProviderUnavailable:
                results.append(False)
        return results

    first = await outcomes(7)
    assert first == await outcomes(7)
    assert True in first
    assert False in first
