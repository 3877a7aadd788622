"""End to end through the host with the installed plugin (loaded from its entry point): connect
through the fake Microsoft identity platform, fetch, expire, refresh (rotating), validate and
disconnect (local only, and the response says so)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pulseplan_microsoft

from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.vault import new_user


async def test_connect_fetch_rotate_validate_disconnect(pulseplan_vault: Any) -> None:
    fake = FakeProvider("microsoft")
    # The operator forgot offline_access: the plugin adds it, or there is no refresh token.
    vault = await pulseplan_vault(
        {"microsoft": fake}, MICROSOFT_SCOPES="openid email User.Read Calendars.ReadWrite"
    )
    info = vault.runtime.plugins.info("microsoft")
    assert info.package == "pulseplan-microsoft"  # the installed distribution
    assert info.spec is pulseplan_microsoft.SPEC
    user = new_user()
    fake.login_as("grace@contoso.example")

    started = await vault.authorize(user, "microsoft")
    url = (await started.get_json())["authorization_url"]
    params = parse_qs(urlsplit(url).query)
    assert "offline_access" in params["scope"][0].split()
    # Microsoft recommends PKCE for every client: the host must make and send a verifier.
    assert pulseplan_microsoft.SPEC.pkce is True
    assert params["code_challenge_method"] == ["S256"]
    await vault.callback(fake.consent(url))
    assert [c.pkce for c in fake.calls("token")] == [True]
    row = await vault.runtime.storage.get_connection(user, "microsoft")
    assert row is not None
    assert row.email == "grace@contoso.example"
    assert "Calendars.ReadWrite" in row.scopes
    assert row.metadata["tenant_id"] == fake.default_account.uuid("tenant")
    first_refresh = vault.stored_refresh_token(row)
    assert fake.is_live(first_refresh)

    tokens = (await (await vault.tokens(user)).get_json())["microsoft"]
    assert fake.is_live(tokens["access_token"])
    assert fake.count("refresh") == 0

    await vault.expire_soon(row)
    refreshed = (await (await vault.tokens(user)).get_json())["microsoft"]
    assert refreshed["access_token"] != tokens["access_token"]
    assert fake.count("refresh") == 1
    stored = await vault.runtime.storage.get_connection(user, "microsoft")
    assert stored is not None
    rotated = vault.stored_refresh_token(stored)
    assert rotated != first_refresh
    assert rotated == fake.latest_refresh_token()  # the host kept the rotated token

    checked = await vault.client.post(
        "/api/v1/tokens/connections/microsoft/validate", headers=vault.headers(user)
    )
    assert (await checked.get_json())["valid"] is True

    gone = await vault.disconnect(user, "microsoft")
    assert gone.status_code == 200
    body = await gone.get_json()
    assert body["revoked"] is False
    assert body["revocation"]["supported"] is False
    assert "deleted locally" in body["revocation"]["detail"]
    assert fake.count("revoke") == 0
    assert await vault.runtime.storage.get_connection(user, "microsoft") is None
    await vault.runtime.events.drain()
    # Local-only deletion is not a failed revocation.
    assert vault.events.names("microsoft") == ["connected", "refreshed", "disconnected"]


async def test_expired_grant_marks_the_connection_for_reconnection(pulseplan_vault: Any) -> None:
    fake = FakeProvider("microsoft")
    vault = await pulseplan_vault({"microsoft": fake})
    user = new_user()
    row = await vault.connect(user, "microsoft")
    fake.fail_next("refresh", "aadsts", code=70043)
    await vault.expire_soon(row, seconds=-1)
    body = await (await vault.tokens(user)).get_json()
    assert body["errors"]["microsoft"]["code"] == "needs_reauth"
    stored = await vault.runtime.storage.get_connection(user, "microsoft")
    assert stored is not None
    assert stored.status == "needs_reauth"


async def test_throttling_with_a_grant_error_body_keeps_the_connection(
    pulseplan_vault: Any,
) -> None:
    fake = FakeProvider("microsoft")
    vault = await pulseplan_vault({"microsoft": fake})
    user = new_user()
    row = await vault.connect(user, "microsoft")
    before = vault.stored_refresh_token(row)
    # AADSTS90006 arrives here as invalid_grant; the AADSTS table says it is transient.
    fake.fail_next("refresh", "aadsts", code=90006, error="invalid_grant")
    await vault.expire_soon(row, seconds=-1)
    await vault.tokens(user)
    stored = await vault.runtime.storage.get_connection(user, "microsoft")
    assert stored is not None
    assert stored.status == "active"
    assert stored.refresh_failures == 1
    assert vault.stored_refresh_token(stored) == before
    assert fake.is_live(before)
