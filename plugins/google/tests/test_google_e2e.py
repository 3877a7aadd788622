"""End to end through the host with the installed plugin (loaded from its entry point): connect
through the fake Google, fetch, expire, refresh, validate, reconnect and disconnect."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pulseplan_google

from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.vault import new_user

CALENDAR = "https://www.googleapis.com/auth/calendar.events"


async def test_connect_fetch_refresh_validate_disconnect(pulseplan_vault: Any) -> None:
    fake = FakeProvider("google")
    vault = await pulseplan_vault({"google": fake})
    info = vault.runtime.plugins.info("google")
    assert info.package == "pulseplan-google"  # the installed distribution, not a test double
    assert info.spec is pulseplan_google.SPEC
    user = new_user()
    fake.login_as("grace@example.test")

    started = await vault.authorize(user, "google")
    url = (await started.get_json())["authorization_url"]
    params = parse_qs(urlsplit(url).query)
    assert params["prompt"] == ["consent"]  # nothing stored yet: a refresh token is needed
    assert params["access_type"] == ["offline"]
    assert params["redirect_uri"] == ["http://pulseplan.test/api/v1/oauth/google/callback"]
    await vault.callback(fake.consent(url))
    row = await vault.runtime.storage.get_connection(user, "google")
    assert row is not None
    assert row.email == "grace@example.test"
    assert CALENDAR in row.scopes
    first_refresh = vault.stored_refresh_token(row)
    assert fake.is_live(first_refresh)

    tokens = (await (await vault.tokens(user)).get_json())["google"]
    assert fake.is_live(tokens["access_token"])
    assert "refresh_token" not in tokens
    assert fake.count("refresh") == 0

    await vault.expire_soon(row)
    refreshed = (await (await vault.tokens(user)).get_json())["google"]
    assert refreshed["access_token"] != tokens["access_token"]
    assert fake.is_live(refreshed["access_token"])
    assert fake.count("refresh") == 1
    stored = await vault.runtime.storage.get_connection(user, "google")
    assert stored is not None
    assert vault.stored_refresh_token(stored) == first_refresh  # Google does not rotate

    checked = await vault.client.post(
        "/api/v1/tokens/connections/google/validate", headers=vault.headers(user)
    )
    assert (await checked.get_json())["valid"] is True
    assert fake.count("tokeninfo") == 1

    gone = await vault.disconnect(user, "google")
    assert gone.status_code == 200
    body = await gone.get_json()
    assert body["revoked"] is True
    assert body["revocation"]["supported"] is True
    assert not fake.is_live(first_refresh)
    assert not fake.is_live(refreshed["access_token"])
    assert await vault.runtime.storage.get_connection(user, "google") is None
    await vault.runtime.events.drain()
    assert vault.events.names("google") == ["connected", "refreshed", "disconnected"]


async def test_reconnect_skips_prompt_consent_and_keeps_the_refresh_token(
    pulseplan_vault: Any,
) -> None:
    fake = FakeProvider("google")
    vault = await pulseplan_vault({"google": fake})
    user = new_user()
    row = await vault.connect(user, "google")
    first_refresh = vault.stored_refresh_token(row)

    started = await vault.authorize(user, "google")
    url = (await started.get_json())["authorization_url"]
    assert "prompt" not in parse_qs(urlsplit(url).query)
    await vault.callback(fake.consent(url))
    again = await vault.runtime.storage.get_connection(user, "google")
    assert again is not None
    assert vault.stored_refresh_token(again) == first_refresh
    assert fake.live_refresh_tokens() == [first_refresh]  # no second token toward the cap


async def test_invalid_rapt_marks_the_connection_for_reconnection(pulseplan_vault: Any) -> None:
    fake = FakeProvider("google")
    vault = await pulseplan_vault({"google": fake})
    user = new_user()
    row = await vault.connect(user, "google")
    fake.fail_next("refresh", "google_invalid_rapt")
    await vault.expire_soon(row, seconds=-1)
    body = await (await vault.tokens(user)).get_json()
    assert body["google"] is None
    assert body["errors"]["google"]["code"] == "needs_reauth"
    stored = await vault.runtime.storage.get_connection(user, "google")
    assert stored is not None
    assert stored.status == "needs_reauth"
    assert stored.status_reason == "invalid_rapt"


async def test_narrowed_consent_stores_only_the_granted_scopes(pulseplan_vault: Any) -> None:
    fake = FakeProvider("google")
    vault = await pulseplan_vault({"google": fake})
    fake.drop_scopes(CALENDAR)
    row = await vault.connect(new_user(), "google")
    assert CALENDAR not in row.scopes
    assert "openid" in row.scopes
