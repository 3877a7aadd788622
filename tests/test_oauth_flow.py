"""OAuth flow safety: single-use state bound to its user and provider, PKCE, exact redirect URIs,
allow-listed return URLs, and the opt-in confirmation step against login CSRF."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import pytest

from pulseplan.oauth import flows
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.vault import RETURN
from pulseplan.testing.vault import Vault
from pulseplan.testing.vault import new_user
from pulseplan.testing.vault import running_vault


@pytest.fixture
async def vault(tmp_path: Path) -> AsyncIterator[Vault]:
    async with running_vault(
        tmp_path,
        providers={"acme": FakeProvider("standard"), "beta": FakeProvider("standard")},
    ) as v:
        yield v


async def start(vault: Vault, user: str, provider: str = "acme") -> str:
    response = await vault.authorize(user, provider)
    assert response.status_code == 200
    url: str = (await response.get_json())["authorization_url"]
    return url


async def assert_nothing_stored(vault: Vault, *users: str) -> None:
    for user in users:
        assert await vault.runtime.storage.list_connections(user) == []


async def error_code(response: object) -> str:
    assert response.status_code == 400  # type: ignore[attr-defined]
    body = await response.get_json()  # type: ignore[attr-defined]
    assert set(body) >= {"detail", "code", "request_id"}
    code: str = body["code"]
    return code


async def test_state_is_single_use(vault: Vault) -> None:
    user = new_user()
    callback = vault.fakes["acme"].consent(await start(vault, user))
    assert (await vault.callback(callback)).status_code == 303
    await vault.runtime.storage.delete_connection(user, "acme")
    replay = await vault.callback(callback)
    assert await error_code(replay) == "invalid_state"
    await assert_nothing_stored(vault, user)


async def test_expired_state_is_rejected(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    user = new_user()
    callback = vault.fakes["acme"].consent(await start(vault, user))
    later = datetime.now(UTC) + timedelta(minutes=11)
    monkeypatch.setattr(flows, "utcnow", lambda: later)
    assert await error_code(await vault.callback(callback)) == "invalid_state"
    await assert_nothing_stored(vault, user)


async def test_missing_or_forged_state_is_rejected(vault: Vault) -> None:
    callback = vault.fakes["acme"].consent(await start(vault, new_user()))
    parts = urlsplit(callback)
    query = parse_qs(parts.query)
    forged = urlunsplit(parts._replace(query=urlencode({"code": query["code"][0], "state": "x"})))
    assert await error_code(await vault.callback(forged)) == "invalid_state"
    bare = urlunsplit(parts._replace(query=urlencode({"code": query["code"][0]})))
    missing = await vault.callback(bare)
    assert missing.status_code == 422
    assert (await missing.get_json())["errors"][0]["loc"] == ["state"]


async def test_state_for_provider_a_on_provider_b_callback(vault: Vault) -> None:
    user = new_user()
    callback = vault.fakes["acme"].consent(await start(vault, user, "acme"))
    on_beta = callback.replace("/oauth/acme/callback", "/oauth/beta/callback")
    assert await error_code(await vault.callback(on_beta)) == "state_mismatch"
    await assert_nothing_stored(vault, user)
    assert vault.fakes["acme"].count("code") == 0  # no code was exchanged anywhere
    assert vault.fakes["beta"].count("code") == 0


async def test_wrong_pkce_verifier_is_refused_by_the_provider(vault: Vault) -> None:
    user = new_user()
    url = await start(vault, user)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    # The challenge the provider sees no longer matches the verifier PulsePlan holds.
    query["code_challenge"] = "A" * 43
    tampered = urlunsplit(parts._replace(query=urlencode(query)))
    response = await vault.callback(vault.fakes["acme"].consent(tampered))
    assert response.status_code == 303
    location = parse_qs(urlsplit(response.headers["Location"]).query)
    assert location["status"] == ["error"]
    assert location["error"] == ["exchange_failed"]
    assert vault.fakes["acme"].count("code", ok=False) == 1
    await assert_nothing_stored(vault, user)


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/connected",
        "//evil.example/connected",
        "https://app.example.evil.example/connected",
        "https://app.example@evil.example/connected",
        "https:/\\evil.example",
        "javascript:alert(1)",
        "http://app.example/connected",  # scheme must match too
        "https://app.example/connected-elsewhere",
        "https://app.example:99999/connected",  # malformed ports and hosts: 400, never 500
        "https://app.example:abc/connected",
        "https://[abc/connected",
        "https://app.example\u2100b/connected",
    ],
)
async def test_return_url_off_the_allow_list(vault: Vault, target: str) -> None:
    user = new_user()
    response = await vault.authorize(user, return_url=target)
    assert await error_code(response) == "return_url_not_allowed"
    await assert_nothing_stored(vault, user)


@pytest.mark.parametrize(
    "target", ["https://app.example/app/../admin", "https://app.example/app/%2e%2e/admin"]
)
async def test_dot_segments_cannot_escape_an_allowed_prefix(tmp_path: Path, target: str) -> None:
    async with running_vault(
        tmp_path,
        providers={"acme": FakeProvider("standard")},
        ALLOWED_RETURN_URLS="https://app.example/app/",
    ) as vault:
        user = new_user()
        assert (
            await vault.authorize(user, return_url="https://app.example/app/done")
        ).status_code == 200
        refused = await vault.authorize(user, return_url=target)
        assert await error_code(refused) == "return_url_not_allowed"


async def test_user_denial_comes_back_as_an_error_status(vault: Vault) -> None:
    user = new_user()
    response = await vault.callback(
        vault.fakes["acme"].consent(await start(vault, user), deny=True)
    )
    assert (
        response.headers["Location"] == f"{RETURN}?status=error&provider=acme&error=access_denied"
    )
    await assert_nothing_stored(vault, user)


async def test_scopes_outside_the_configured_set_are_refused(tmp_path: Path) -> None:
    async with running_vault(
        tmp_path, providers={"acme": FakeProvider("standard")}, ACME_SCOPES="read write"
    ) as vault:
        user = new_user()
        ok = await vault.authorize(user, scopes="read")
        assert ok.status_code == 200
        assert "scope=read&" in (await ok.get_json())["authorization_url"]
        refused = await vault.authorize(user, scopes="read admin")
        assert await error_code(refused) == "scope_not_allowed"


async def test_unconfigured_provider_cannot_start_a_flow(tmp_path: Path) -> None:
    async with running_vault(
        tmp_path, providers={"acme": FakeProvider("standard")}, ACME_CLIENT_SECRET=""
    ) as vault:
        response = await vault.authorize(new_user())
        assert response.status_code == 409
        assert (await response.get_json())["code"] == "provider_not_configured"


async def test_confirmation_step_rejects_another_users_flow(tmp_path: Path) -> None:
    async with running_vault(
        tmp_path, providers={"acme": FakeProvider("standard")}, OAUTH_REQUIRE_CONFIRMATION="true"
    ) as vault:
        attacker, victim = new_user(), new_user()
        # The attacker starts a flow; the victim is tricked into consenting with their account.
        parked = await vault.callback(vault.fakes["acme"].consent(await start(vault, attacker)))
        location = parse_qs(urlsplit(parked.headers["Location"]).query)
        assert location["status"] == ["pending"]
        flow = location["flow"][0]
        await assert_nothing_stored(vault, attacker, victim)
        # The victim's app confirms with the victim's JWT: refused, nothing stored for anyone.
        confirm = await vault.client.post(
            "/api/v1/oauth/acme/confirm", json={"flow": flow}, headers=vault.headers(victim)
        )
        assert confirm.status_code == 404
        await assert_nothing_stored(vault, attacker, victim)
        # The grant is gone: the attacker cannot claim it afterwards either.
        late = await vault.client.post(
            "/api/v1/oauth/acme/confirm", json={"flow": flow}, headers=vault.headers(attacker)
        )
        assert late.status_code == 404
        await assert_nothing_stored(vault, attacker)


async def test_confirmation_step_stores_for_the_same_user(tmp_path: Path) -> None:
    async with running_vault(
        tmp_path, providers={"acme": FakeProvider("standard")}, OAUTH_REQUIRE_CONFIRMATION="true"
    ) as vault:
        user = new_user()
        parked = await vault.callback(vault.fakes["acme"].consent(await start(vault, user)))
        flow = parse_qs(urlsplit(parked.headers["Location"]).query)["flow"][0]
        confirm = await vault.client.post(
            "/api/v1/oauth/acme/confirm", json={"flow": flow}, headers=vault.headers(user)
        )
        assert confirm.status_code == 201
        row = await vault.runtime.storage.get_connection(user, "acme")
        assert row is not None
        assert (await confirm.get_json())["connection_id"] == row.id


async def test_pkce_verifiers_are_fresh_and_well_formed(vault: Vault) -> None:
    user = new_user()
    challenges = set()
    for _ in range(20):
        query = parse_qs(urlsplit(await start(vault, user)).query)
        assert query["code_challenge_method"] == ["S256"]
        challenges.add(query["code_challenge"][0])
        assert len(query["state"][0]) >= 43
    assert len(challenges) == 20


async def test_flow_state_is_stored_hashed_with_an_encrypted_verifier(vault: Vault) -> None:
    user = new_user()
    url = await start(vault, user)
    state = parse_qs(urlsplit(url).query)["state"][0]
    storage = vault.runtime.storage
    async with storage.db.execute("SELECT key, payload FROM pulseplan_oauth_flows") as cursor:  # type: ignore[attr-defined]
        rows = await cursor.fetchall()
    assert len(rows) == 1
    assert state not in rows[0]["key"]
    assert state not in rows[0]["payload"]
    assert '"verifier": "v1:' in rows[0]["payload"]
