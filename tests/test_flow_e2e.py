"""Connect, fetch, refresh and disconnect end to end, against a fake provider over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest

from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.vault import RETURN
from pulseplan.testing.vault import Vault
from pulseplan.testing.vault import new_user
from pulseplan.testing.vault import running_vault


@pytest.fixture
async def vault(tmp_path: Path) -> AsyncIterator[Vault]:
    async with running_vault(
        tmp_path, providers={"acme": FakeProvider("standard", rotation="strict")}
    ) as v:
        yield v


async def test_full_flow_connect_fetch_refresh_disconnect(vault: Vault) -> None:
    fake = vault.fakes["acme"]
    user = new_user()
    started = await vault.authorize(user, return_url=RETURN)
    body = await started.get_json()
    assert started.headers["Cache-Control"] == "no-store"
    query = parse_qs(urlsplit(body["authorization_url"]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == ["http://pulseplan.test/api/v1/oauth/acme/callback"]
    assert "code_verifier" not in query

    callback = await vault.callback(fake.consent(body["authorization_url"]))
    assert callback.status_code == 303
    assert callback.headers["Location"] == f"{RETURN}?status=connected&provider=acme"
    assert callback.headers["Referrer-Policy"] == "no-referrer"

    row = await vault.runtime.storage.get_connection(user, "acme")
    assert row is not None
    assert row.email == "ada@example.test"
    # Stored encrypted: nothing in the row is a live provider token.
    assert not fake.is_live(row.access_token)
    assert row.refresh_token is not None
    assert not fake.is_live(row.refresh_token)
    assert row.access_token.startswith("v1:")
    first_refresh = vault.stored_refresh_token(row)
    assert fake.is_live(first_refresh)

    fetched = await vault.tokens(user)
    assert fetched.headers["Cache-Control"] == "no-store"
    tokens = await fetched.get_json()
    assert fake.is_live(tokens["acme"]["access_token"])
    assert "refresh_token" not in tokens["acme"]
    assert tokens["errors"] == {}
    assert fake.count("refresh") == 0

    await vault.expire_soon(row)  # time passes: the token is now inside the refresh skew
    refreshed = await (await vault.tokens(user)).get_json()
    assert refreshed["acme"]["access_token"] != tokens["acme"]["access_token"]
    assert fake.is_live(refreshed["acme"]["access_token"])
    assert fake.count("refresh") == 1
    stored = await vault.runtime.storage.get_connection(user, "acme")
    assert stored is not None
    assert vault.stored_refresh_token(stored) == fake.latest_refresh_token()
    assert not fake.is_live(first_refresh)  # strictly rotated

    deleted = await vault.client.delete(
        "/api/v1/tokens/connections/acme", headers=vault.headers(user)
    )
    assert deleted.status_code == 200
    assert (await deleted.get_json())["revoked"] is True
    assert fake.count("revoke") == 1
    assert not fake.is_live(refreshed["acme"]["access_token"])
    assert await vault.runtime.storage.get_connection(user, "acme") is None
    await vault.runtime.events.drain()
    assert vault.events.names("acme") == ["connected", "refreshed", "disconnected"]


async def test_concurrent_fetches_inside_the_skew_cause_one_refresh(vault: Vault) -> None:
    fake = vault.fakes["acme"]
    user = new_user()
    row = await vault.connect(user)
    await vault.expire_soon(row)
    responses = await asyncio.gather(*(vault.tokens(user) for _ in range(50)))
    tokens = {(await r.get_json())["acme"]["access_token"] for r in responses}
    assert fake.count("refresh") == 1
    assert len(tokens) == 1
    assert fake.is_live(tokens.pop())
    stored = await vault.runtime.storage.get_connection(user, "acme")
    assert stored is not None
    assert vault.stored_refresh_token(stored) == fake.latest_refresh_token()
    assert stored.version == row.version + 2  # expire_soon + exactly one refresh


async def test_refresh_without_refresh_token_keeps_the_old_one(vault: Vault) -> None:
    fake = vault.fakes["acme"]
    fake.rotation = "none"
    user = new_user()
    row = await vault.connect(user)
    before = vault.stored_refresh_token(row)
    fake.fail_next("refresh", "omit_refresh_token")
    await vault.expire_soon(row)
    assert (await (await vault.tokens(user)).get_json())["errors"] == {}
    after = await vault.runtime.storage.get_connection(user, "acme")
    assert after is not None
    assert vault.stored_refresh_token(after) == before
    assert fake.is_live(before)


async def test_invalid_grant_marks_needs_reauth_and_fires_the_event(vault: Vault) -> None:
    fake = vault.fakes["acme"]
    user = new_user()
    row = await vault.connect(user)
    fake.fail_next("refresh", "invalid_grant")
    await vault.expire_soon(row)
    body = await (await vault.tokens(user)).get_json()
    assert body["acme"] is None
    assert body["errors"]["acme"]["code"] == "needs_reauth"
    stored = await vault.runtime.storage.get_connection(user, "acme")
    assert stored is not None
    assert (stored.status, stored.status_reason) == ("needs_reauth", "invalid_grant")
    await vault.runtime.events.drain()
    assert "needs_reauth" in vault.events.names("acme")
    # No retry loop: the next fetch does not call the provider again.
    await vault.tokens(user)
    assert fake.count("refresh") == 1
    status = await vault.client.get(
        "/api/v1/tokens/connections/status", headers=vault.headers(user)
    )
    assert (await status.get_json())["acme"] is False


async def test_provider_503_keeps_the_connection_active_and_schedules_a_retry(
    vault: Vault,
) -> None:
    fake = vault.fakes["acme"]
    user = new_user()
    row = await vault.connect(user)
    old = (await (await vault.tokens(user)).get_json())["acme"]["access_token"]
    fake.fail_next("refresh", "server_error", status=503)
    await vault.expire_soon(row)  # still valid for 60 s, but inside the skew
    body = await (await vault.tokens(user)).get_json()
    assert body["acme"]["access_token"] == old  # the still-valid token is served meanwhile
    stored = await vault.runtime.storage.get_connection(user, "acme")
    assert stored is not None
    assert stored.status == "active"
    assert stored.refresh_failures == 1
    assert stored.next_refresh_at is not None
    assert stored.next_refresh_at > stored.updated_at
    assert fake.is_live(vault.stored_refresh_token(stored))


async def test_a_failing_connection_does_not_delay_the_others(tmp_path: Path) -> None:
    from datetime import UTC
    from datetime import datetime
    from datetime import timedelta

    from pulseplan.refresher import BackgroundRefresher

    async with running_vault(
        tmp_path,
        providers={"acme": FakeProvider("standard"), "beta": FakeProvider("standard")},
        REFRESH_BATCH_SIZE="2",
    ) as vault:
        broken = [await vault.connect(new_user(), "acme") for _ in range(4)]
        healthy = await vault.connect(new_user(), "beta")
        vault.fakes["acme"].fail_next("refresh", "server_error", times=None)
        storage = vault.runtime.storage
        # The broken ones expire first, so they are at the head of the queue.
        for i, row in enumerate(broken):
            await vault.expire_soon(row, seconds=10 + i)
        await vault.expire_soon(healthy, seconds=100)
        sweeper = BackgroundRefresher(
            storage=storage,
            coordinator=vault.runtime.broker.refresher,
            settings=vault.settings,
        )
        result = await sweeper.sweep()
        assert (result.claimed, result.refreshed) == (5, 1)
        assert vault.fakes["beta"].count("refresh") == 1
        for row in broken:
            current = await storage.get_connection_by_id(row.id)
            assert current is not None
            assert current.status == "active"
            assert current.next_refresh_at is not None
            assert current.next_refresh_at > datetime.now(UTC) + timedelta(seconds=1)
        # Backed off: an immediate second sweep leaves them alone.
        again = await sweeper.sweep()
        assert again.claimed == 0
        assert vault.fakes["acme"].count("refresh") == 4


async def test_force_refresh_and_validate(vault: Vault) -> None:
    fake = vault.fakes["acme"]
    user = new_user()
    await vault.connect(user)
    forced = await vault.client.post(
        "/api/v1/tokens/connections/acme/refresh", headers=vault.headers(user)
    )
    assert forced.status_code == 200
    assert (await forced.get_json())["refreshed"] is True
    assert fake.count("refresh") == 1
    valid = await vault.client.post(
        "/api/v1/tokens/connections/acme/validate", headers=vault.headers(user)
    )
    assert (await valid.get_json())["valid"] is True
    fake.expire_access_token()
    invalid = await vault.client.post(
        "/api/v1/tokens/connections/acme/validate", headers=vault.headers(user)
    )
    assert (await invalid.get_json())["valid"] is False


async def test_stopping_the_refresher_finishes_in_flight_work_and_starts_none(
    tmp_path: Path,
) -> None:
    from pulseplan.refresher import BackgroundRefresher

    async with running_vault(
        tmp_path,
        providers={"acme": FakeProvider("standard", rotation="strict")},
        REFRESH_BATCH_SIZE="2",
        REFRESH_CONCURRENCY="1",
    ) as vault:
        fake = vault.fakes["acme"]
        rows = [await vault.expire_soon(await vault.connect(new_user())) for _ in range(5)]
        held = fake.fail_next("refresh", "slow", after=True)  # rotates, then holds the reply
        sweeper = BackgroundRefresher(
            storage=vault.runtime.storage,
            coordinator=vault.runtime.broker.refresher,
            settings=vault.settings,
        )
        sweeper.start()
        assert await asyncio.to_thread(held.wait_arrived)
        sweeper.request_stop()  # shutdown begins while one refresh is at the provider
        held.release()
        await sweeper.stop()
        assert fake.count("refresh") == 1  # the one in flight; nothing started after stop()
        stored = [await vault.runtime.storage.get_connection_by_id(r.id) for r in rows]
        refreshed = [s for s in stored if s is not None and s.last_refreshed_at is not None]
        assert len(refreshed) == 1
        assert fake.is_live(vault.stored_refresh_token(refreshed[0]))  # its rotation was kept
        # Every claim was released: another worker's sweep takes the rest at once.
        other = BackgroundRefresher(
            storage=vault.runtime.storage,
            coordinator=vault.runtime.broker.refresher,
            settings=vault.settings,
        )
        assert (await other.sweep()).claimed == 4


async def test_the_sweeper_and_readers_racing_refresh_once(tmp_path: Path) -> None:
    from pulseplan.refresher import BackgroundRefresher

    async with running_vault(
        tmp_path, providers={"acme": FakeProvider("standard", rotation="strict")}
    ) as vault:
        fake = vault.fakes["acme"]
        user = new_user()
        row = await vault.expire_soon(await vault.connect(user))
        sweeper = BackgroundRefresher(
            storage=vault.runtime.storage,
            coordinator=vault.runtime.broker.refresher,
            settings=vault.settings,
        )
        # The provider holds its reply, so every reader arrives while the refresh is in flight.
        held = fake.fail_next("refresh", "slow", after=True)
        sweep = asyncio.ensure_future(sweeper.sweep())
        assert await asyncio.to_thread(held.wait_arrived)
        readers = asyncio.gather(*(vault.tokens(user) for _ in range(20)))
        held.release()
        responses, result = await readers, await sweep
        assert result.claimed == 1
        bodies = [await r.get_json() for r in responses]
        assert fake.count("refresh") == 1
        stored = await vault.runtime.storage.get_connection_by_id(row.id)
        assert stored is not None
        assert {b["acme"]["access_token"] for b in bodies} == {vault.stored_access_token(stored)}
        assert fake.is_live(vault.stored_refresh_token(stored))


async def test_a_hanging_provider_does_not_hold_every_refresh_slot(tmp_path: Path) -> None:
    from pulseplan.refresher import BackgroundRefresher

    async with running_vault(
        tmp_path,
        providers={"acme": FakeProvider("standard"), "beta": FakeProvider("standard")},
        REFRESH_CONCURRENCY="2",
    ) as vault:
        acme, beta = vault.fakes["acme"], vault.fakes["beta"]
        # acme's rows are due first, so without a per-provider cap they take both slots.
        for i in range(3):
            await vault.expire_soon(await vault.connect(new_user(), "acme"), seconds=10 + i)
        await vault.expire_soon(await vault.connect(new_user(), "beta"), seconds=100)
        stuck = acme.fail_next("refresh", "slow", times=None)
        waiting = beta.fail_next("refresh", "slow")
        sweeper = BackgroundRefresher(
            storage=vault.runtime.storage,
            coordinator=vault.runtime.broker.refresher,
            settings=vault.settings,
        )
        sweep = asyncio.ensure_future(sweeper.sweep())
        assert await asyncio.to_thread(stuck.wait_arrived)
        # beta's refresh reaches its provider while acme's is still hanging.
        assert await asyncio.to_thread(waiting.wait_arrived)
        waiting.release()
        stuck.release()
        acme.clear_faults()
        result = await sweep
        assert result.claimed == 4
        assert beta.count("refresh", ok=True) == 1


def test_one_provider_alone_may_use_every_refresh_slot() -> None:
    from types import SimpleNamespace

    from pulseplan.refresher import provider_slots

    def rows(*providers: str) -> list[Any]:
        return [SimpleNamespace(provider=p) for p in providers]

    alone = provider_slots(rows("google", "google"), 8)
    assert alone["google"]._value == 8  # a single-provider deployment keeps full concurrency
    mixed = provider_slots(rows("google", "notion", "google"), 8)
    assert {name: slot._value for name, slot in mixed.items()} == {"google": 4, "notion": 4}
    assert provider_slots(rows("a", "b"), 1)["a"]._value == 1
