"""The Redis layer wired into the app: end to end with Redis up, down, and coming back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from pulseplan.app import create_app
from pulseplan.settings import Settings
from pulseplan.testing.fake_provider import FakeProvider
from tests.observability_kit import value
from tests.redis_kit import REDIS_URL
from tests.redis_kit import AppliedThenFailed
from tests.redis_kit import closed_port
from tests.redis_kit import delete_keys
from tests.redis_kit import layer
from tests.redis_kit import one_refresh_under_concurrency
from tests.redis_kit import proxy
from tests.redis_kit import proxy_url
from tests.redis_kit import ready
from tests.redis_kit import require_redis
from tests.redis_kit import ttl_violations
from tests.redis_kit import unique_prefix
from tests.vault import Vault
from tests.vault import new_user
from tests.vault import running_vault

pytestmark = pytest.mark.redis
PASSWORD = "hunter2-redis-password"


def delta(before: str, after: str, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@asynccontextmanager
async def redis_vault(tmp_path: Path, redis_url: str, **env: str) -> AsyncIterator[Vault]:
    """A vault with ``REDIS_URL`` under a fresh key prefix; afterwards checks and deletes the
    per-user cache keys it can name (flow and lock keys are consumed by the flows themselves)."""
    await require_redis()  # for the key checks afterwards, even when the app's Redis is "down"
    async with running_vault(
        tmp_path,
        providers={"acme": FakeProvider("standard", rotation="strict")},
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=unique_prefix(),
        **env,
    ) as vault:
        storage, _, _ = layer(vault)
        try:
            yield vault
        finally:
            names = {storage.key(user) for user in vault.users}
            violations = await ttl_violations(names)
            await delete_keys(names)
            assert violations == {}


async def test_with_redis_flows_cache_and_locks_use_it(tmp_path: Path) -> None:
    async with redis_vault(tmp_path, REDIS_URL) as vault:
        storage, locks, flows = layer(vault)
        user = new_user()
        await one_refresh_under_concurrency(vault, user)
        assert flows.fallback_puts == flows.fallback_takes == 0
        assert locks.skipped == 0
        before = await (await vault.client.get("/metrics")).get_data(as_text=True)
        listed = [
            await vault.client.get("/api/v1/tokens/connections", headers=vault.headers(user))
            for _ in range(3)
        ]
        assert {r.status_code for r in listed} == {200}
        assert storage.hits >= 2
        after = await (await vault.client.get("/metrics")).get_data(as_text=True)
        assert delta(before, after, "pulseplan_cache_hits_total", cache="connections") >= 2
        status, body = await ready(vault)
        assert (status, body["status"]) == (200, "ready")
        assert body["checks"]["redis"]["status"] == "ok"
        scraped = await (await vault.client.get("/metrics")).get_data(as_text=True)
        assert "pulseplan_redis_up 1.0" in scraped
        assert 'pulseplan_redis_fallbacks{kind="lock_skips"} 0.0' in scraped


async def test_redis_down_the_service_keeps_serving_from_the_database(
    tmp_path: Path, logs: list[str]
) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{closed_port()}/0"
    async with redis_vault(tmp_path, url) as vault:
        storage, locks, flows = layer(vault)
        await one_refresh_under_concurrency(vault, new_user())  # flows and locks: database
        assert flows.fallback_puts == 1
        assert locks.skipped > 0
        assert storage.hits == 0
        status, body = await ready(vault)
        assert (status, body["status"]) == (200, "degraded")
        assert body["checks"]["redis"]["status"] == "degraded"
        detailed = await vault.client.get("/api/v1/health/health")
        details = await detailed.get_json()
        assert (detailed.status_code, details["status"]) == (200, "degraded")
        assert "unreachable" in details["checks"]["redis"]["detail"]
        assert PASSWORD not in await detailed.get_data(as_text=True)
        scraped = await (await vault.client.get("/metrics")).get_data(as_text=True)
        assert "pulseplan_redis_up 0.0" in scraped
        assert 'pulseplan_redis_fallbacks{kind="flow_fallback_puts"} 1.0' in scraped
    assert any("Redis at redis://127.0.0.1:" in line for line in logs)
    assert not any(PASSWORD in line for line in logs)


async def test_readiness_is_degraded_not_failed_when_redis_is_down(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0"))
    async with app.test_app():
        client = app.test_client()
        ready_response = await client.get("/api/v1/health/ready")
        assert ready_response.status_code == 200
        body = await ready_response.get_json()
        assert body["status"] == "degraded"
        assert body["checks"]["redis"]["status"] == "degraded"
        detailed = await client.get("/api/v1/health/health")
        assert detailed.status_code == 200
        checks = (await detailed.get_json())["checks"]
        assert checks["redis"]["status"] == "degraded"
        assert {checks[name]["status"] for name in ("storage", "migrations", "keys")} == {"ok"}


async def test_recovery_without_restart(tmp_path: Path) -> None:
    async with (
        proxy() as relay,
        redis_vault(tmp_path, proxy_url(relay), REDIS_RETRY_INTERVAL="0") as vault,
    ):
        storage, _, flows = layer(vault)
        user = new_user()
        await vault.connect(user)
        assert (await ready(vault))[1]["status"] == "ready"

        await relay.stop()  # Redis goes away
        assert (await ready(vault))[1]["status"] == "degraded"
        await one_refresh_under_concurrency(vault, new_user())
        listing = await vault.client.get("/api/v1/tokens/connections", headers=vault.headers(user))
        assert listing.status_code == 200
        puts_during_outage = flows.fallback_puts
        assert puts_during_outage == 1

        await relay.start()  # and comes back on the same address
        status, body = await ready(vault)
        assert (status, body["status"], body["checks"]["redis"]["status"]) == (200, "ready", "ok")
        await vault.connect(new_user())
        assert flows.fallback_puts == puts_during_outage  # flow state is in Redis again
        assert storage.stats()["pending_invalidations"] == 0


async def test_a_flow_write_that_may_have_landed_is_retried_under_a_new_state(
    tmp_path: Path,
) -> None:
    async with redis_vault(tmp_path, REDIS_URL) as vault:
        _, _, flows = layer(vault)
        flaky = AppliedThenFailed(REDIS_URL, prefix=flows.client.prefix)
        flows.client = flaky  # every Redis reply to the flow store is lost after the write
        try:
            user = new_user()
            started = await vault.authorize(user)
            assert started.status_code == 200
            url = (await started.get_json())["authorization_url"]
            assert flows.fallback_puts == 1  # the second state went to the database only
            callback = vault.fakes["acme"].consent(url)
            done = await vault.callback(callback)
            assert done.status_code == 303
            assert await vault.runtime.storage.get_connection(user, "acme") is not None
            replay = await vault.callback(callback)
            assert replay.status_code == 400  # the state was single-use
        finally:
            await flaky.close()
