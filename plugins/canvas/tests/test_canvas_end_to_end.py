"""End to end through the host with the installed Canvas plugin (loaded from its entry point):
connect through the fake Canvas, fetch, expire, refresh, disconnect with revocation; and a
stored row whose instance was tampered with never reaches any server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulseplan_canvas

from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.vault import new_user

Vault = Callable[..., Any]


async def test_connect_fetch_expire_refresh_disconnect(pulseplan_vault: Vault) -> None:
    fake = FakeProvider("canvas")
    vault = await pulseplan_vault({"canvas": fake})
    assert vault.runtime.plugins.info("canvas").package == "pulseplan-canvas"
    assert vault.runtime.plugins.pm.get_plugin("canvas") is pulseplan_canvas
    user = new_user()

    row = await vault.connect(user, "canvas")
    assert row.email == "ada@example.test"
    assert row.metadata["base_url"] == fake.base_url
    assert row.metadata["user_name"] == "Ada Lovelace"
    original_refresh = vault.stored_refresh_token(row)

    body = await (await vault.tokens(user)).get_json()
    first_access = body["canvas"]["access_token"]
    assert fake.is_live(first_access)
    assert "refresh_token" not in body["canvas"]

    fake.expire_access_token(first_access)
    await vault.expire_soon(row)
    body = await (await vault.tokens(user)).get_json()
    second_access = body["canvas"]["access_token"]
    assert second_access != first_access
    assert fake.is_live(second_access)
    assert fake.count("refresh") == 1
    refreshed = await vault.runtime.storage.get_connection(user, "canvas")
    assert vault.stored_refresh_token(refreshed) == original_refresh  # Canvas did not rotate
    assert refreshed.metadata["base_url"] == fake.base_url

    response = await vault.disconnect(user, "canvas")
    assert response.status_code == 200
    assert (await response.get_json())["revoked"] is True
    assert [c.method for c in fake.calls("revoke")] == ["DELETE"]
    assert not fake.is_live(original_refresh)
    assert await vault.runtime.storage.get_connection(user, "canvas") is None


async def test_a_tampered_instance_url_reaches_no_server(pulseplan_vault: Vault) -> None:
    fake = FakeProvider("canvas")
    elsewhere = FakeProvider("canvas").start()
    try:
        vault = await pulseplan_vault({"canvas": fake})
        user = new_user()
        row = await vault.connect(user, "canvas")
        storage = vault.runtime.storage
        row = await storage.update_connection(
            row.id, row.version, metadata={**row.metadata, "base_url": elsewhere.base_url}
        )
        fake.reset_calls()

        forced = await vault.client.post(
            "/api/v1/tokens/connections/canvas/refresh", headers=vault.headers(user)
        )
        assert forced.status_code == 409
        assert (await forced.get_json())["code"] == "needs_reauth"
        stored = await storage.get_connection(user, "canvas")
        assert (stored.status, stored.status_reason) == ("needs_reauth", "canvas_instance_mismatch")

        response = await vault.disconnect(user, "canvas")
        assert response.status_code == 200
        body = await response.get_json()
        assert body["revoked"] is False
        assert "another Canvas instance" in body["revocation"]["detail"]

        assert elsewhere.count() == 0
        assert fake.count() == 0
    finally:
        elsewhere.stop()
