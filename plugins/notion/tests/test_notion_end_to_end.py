"""End to end through the host with the installed Notion plugin (loaded from its entry point):
connect through the fake Notion, fetch, rotate on refresh, disconnect with revocation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulseplan_notion

from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.vault import new_user

Vault = Callable[..., Any]


async def test_connect_fetch_rotate_disconnect(pulseplan_vault: Vault) -> None:
    fake = FakeProvider("notion")
    vault = await pulseplan_vault({"notion": fake})
    assert vault.runtime.plugins.info("notion").package == "pulseplan-notion"
    assert vault.runtime.plugins.pm.get_plugin("notion") is pulseplan_notion
    user = new_user()
    storage = vault.runtime.storage

    row = await vault.connect(user, "notion")  # the fake insists on owner=user + Notion-Version
    account = fake.default_account
    assert row.email == account.email
    assert row.expires_at is None
    assert row.metadata["workspace_name"] == account.workspace
    assert row.metadata["owner_type"] == "user"
    first_refresh = vault.stored_refresh_token(row)

    body = await (await vault.tokens(user)).get_json()
    first_access = body["notion"]["access_token"]
    assert body["notion"]["expires_at"] is None
    assert fake.is_live(first_access)
    assert fake.count("refresh") == 0  # no expiry, no proactive refresh

    for _ in range(2):  # each refresh needs the refresh token the previous one stored
        forced = await vault.client.post(
            "/api/v1/tokens/connections/notion/refresh", headers=vault.headers(user)
        )
        assert forced.status_code == 200, await forced.get_data(as_text=True)
    assert fake.count("refresh", ok=True) == 2
    row = await storage.get_connection(user, "notion")
    assert row.status == "active"
    assert vault.stored_refresh_token(row) == fake.latest_refresh_token()
    assert not fake.is_live(first_refresh)
    assert row.metadata["bot_id"]

    body = await (await vault.tokens(user)).get_json()
    latest_access = body["notion"]["access_token"]
    assert latest_access != first_access
    assert fake.is_live(latest_access)

    response = await vault.disconnect(user, "notion")
    assert response.status_code == 200
    assert (await response.get_json())["revoked"] is True
    assert fake.count("revoke", ok=True) == 1
    assert not fake.is_live(latest_access)
    assert not fake.is_live(vault.stored_refresh_token(row))
    assert await storage.get_connection(user, "notion") is None
