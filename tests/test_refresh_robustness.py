"""Refresh edge cases: a fence lost to a non-refresh write keeps the new grant, failing
providers are not polled on every request, backoff never overflows, and reconnects never pair
one account's refresh token with another's access."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC
from datetime import datetime
from pathlib import Path

import pytest

from pulseplan.broker.backoff import next_attempt
from pulseplan.provider import TokenSet
from pulseplan.storage.base import StorageError
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.vault import Vault
from pulseplan.testing.vault import new_user
from pulseplan.testing.vault import running_vault


@pytest.fixture
async def vault(tmp_path: Path) -> AsyncIterator[Vault]:
    async with running_vault(
        tmp_path, providers={"acme": FakeProvider("standard", rotation="strict")}
    ) as v:
        yield v


async def test_a_rewrap_during_a_rotating_refresh_does_not_lose_the_new_grant(
    vault: Vault,
) -> None:
    fake = vault.fakes["acme"]
    storage = vault.runtime.storage
    row = await vault.expire_soon(await vault.connect(new_user()))
    # The provider rotates, then the reply is held: the new refresh token exists only in flight.
    held = fake.fail_next("refresh", "slow", after=True)
    refresh = asyncio.ensure_future(vault.runtime.broker.refresher.refresh(row))
    assert await asyncio.to_thread(held.wait_arrived)
    # Key rotation re-encrypts the same (now spent) refresh token meanwhile: the version moves.
    current = await storage.get_connection_by_id(row.id)
    assert current is not None
    assert current.refresh_token is not None
    same = vault.stored_refresh_token(current)
    rewrapped = vault.runtime.cipher.encrypt(
        same, user_id=row.user_id, provider="acme", field="refresh_token"
    )
    assert await storage.update_connection(current.id, current.version, refresh_token=rewrapped)
    held.release()
    fresh = await refresh
    assert fresh.refreshed
    final = await storage.get_connection_by_id(row.id)
    assert final is not None
    assert vault.stored_refresh_token(final) == fake.latest_refresh_token()
    assert fake.is_live(vault.stored_refresh_token(final))


async def test_a_failing_provider_is_not_called_on_every_poll(vault: Vault) -> None:
    fake = vault.fakes["acme"]
    user = new_user()
    row = await vault.expire_soon(await vault.connect(user))
    fake.fail_next("refresh", "server_error", status=500, times=None)
    for _ in range(5):
        body = await (await vault.tokens(user)).get_json()
        assert body["acme"] is not None  # the still-valid token is served meanwhile
    assert fake.count("refresh") == 1  # then the connection backs off
    stored = await vault.runtime.storage.get_connection_by_id(row.id)
    assert stored is not None
    assert stored.refresh_failures == 1


async def test_an_expired_token_backing_off_says_when_to_retry(vault: Vault) -> None:
    fake = vault.fakes["acme"]
    user = new_user()
    row = await vault.connect(user)
    fake.fail_next("refresh", "rate_limited", retry_after=120, times=None)
    await vault.expire_soon(row, seconds=-1)
    first = await (await vault.tokens(user)).get_json()
    assert first["errors"]["acme"]["code"] == "provider_unavailable"
    forced = await vault.client.post(
        "/api/v1/tokens/connections/acme/refresh", headers=vault.headers(user)
    )
    assert forced.status_code == 503  # an explicit refresh still asks the provider
    second = await vault.client.get("/api/v1/tokens/tokens", headers=vault.headers(user))
    assert (await second.get_json())["errors"]["acme"]["code"] == "provider_unavailable"
    assert fake.count("refresh") == 2  # the poll did not


def test_backoff_never_overflows() -> None:
    now = datetime.now(UTC)
    delay = (next_attempt(now, 5000, base=30.0, cap=3600.0) - now).total_seconds()
    assert 0 < delay <= 3600


async def test_reconnect_without_email_does_not_inherit_a_refresh_token(vault: Vault) -> None:
    user = new_user()
    broker = vault.runtime.broker
    await broker.store(user, "acme", TokenSet(access_token="at-1", refresh_token="rt-account-a"))
    row, _ = await broker.store(user, "acme", TokenSet(access_token="at-2"))
    assert row.refresh_token is None
    await broker.store(
        user, "acme", TokenSet(access_token="at-3", refresh_token="rt-b", email="b@example.test")
    )
    same_account, _ = await broker.store(
        user, "acme", TokenSet(access_token="at-4", email="b@example.test")
    )
    assert same_account.refresh_token is not None
    assert vault.stored_refresh_token(same_account) == "rt-b"


class FailingWrites:
    """Makes the next ``failures`` token writes of ``update_connection`` raise StorageError."""

    def __init__(self, storage: object, failures: int):
        self.original = storage.update_connection  # type: ignore[attr-defined]
        self.failures = failures
        self.attempts = 0

    async def __call__(self, connection_id: str, version: int, **changes: object) -> object:
        if "access_token" in changes:
            self.attempts += 1
            if self.attempts <= self.failures:
                raise StorageError("database unavailable")
        return await self.original(connection_id, version, **changes)


async def test_a_rotated_grant_that_cannot_be_stored_is_never_handed_out(
    vault: Vault, monkeypatch: pytest.MonkeyPatch, logs: list[str]
) -> None:
    # Invariant: the new access token leaves only after the rotated refresh token is stored.
    fake = vault.fakes["acme"]
    user = new_user()
    row = await vault.expire_soon(await vault.connect(user), seconds=-1)
    old_access = vault.stored_access_token(row)
    writes = FailingWrites(vault.runtime.storage, failures=99)
    monkeypatch.setattr(vault.runtime.storage, "update_connection", writes)
    response = await vault.tokens(user)
    assert fake.count("refresh", ok=True) == 1  # the provider did rotate
    assert response.status_code == 503
    assert (await response.get_json())["code"] == "storage_unavailable"
    text = await response.get_data(as_text=True)
    assert "access_token" not in text
    assert old_access not in text
    assert writes.attempts == 3  # retried before giving up
    assert any("CRITICAL" in line and "may be lost" in line for line in logs)


async def test_a_rotated_grant_is_stored_through_a_storage_hiccup(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = vault.fakes["acme"]
    user = new_user()
    row = await vault.expire_soon(await vault.connect(user), seconds=-1)
    old_access = vault.stored_access_token(row)
    writes = FailingWrites(vault.runtime.storage, failures=2)
    monkeypatch.setattr(vault.runtime.storage, "update_connection", writes)
    body = await (await vault.tokens(user)).get_json()
    assert writes.attempts == 3
    stored = await vault.runtime.storage.get_connection_by_id(row.id)
    assert stored is not None
    assert vault.stored_refresh_token(stored) == fake.latest_refresh_token()
    assert body["acme"]["access_token"] == vault.stored_access_token(stored) != old_access
