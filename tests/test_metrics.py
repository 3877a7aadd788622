"""``/metrics``: the families after a flow, label hygiene, the bearer gate, and the
multiprocess mode that sums every worker's samples."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from quart import Quart

from pulseplan import ProviderContext
from pulseplan import ProviderSpec
from pulseplan import TokenSet
from pulseplan import hookimpl
from pulseplan.app import create_app
from pulseplan.errors import ProviderMisconfigured
from pulseplan.errors import ProviderUnavailable
from pulseplan.errors import ReconnectRequired
from pulseplan.observability import metrics
from pulseplan.plugins import PluginHost
from pulseplan.provider import Revocation
from pulseplan.settings import Settings
from tests.auth_fakes import USER_ID
from tests.auth_fakes import user_token
from tests.conftest import service_unavailable
from tests.observability_kit import ALLOWED_LABELS
from tests.observability_kit import samples
from tests.observability_kit import value
from tests.plugin_kit import provider_env
from tests.plugin_kit import spec
from tests.server import running_server

MakeSettings = Callable[..., Settings]
ROUTE = "/api/v1/tokens/connections/<provider>"


class ScriptedProvider:
    """Refreshes succeed unless a failure is queued; revocation always works."""

    def __init__(self, name: str):
        self.name = name
        self.failures: list[Exception] = []

    @hookimpl
    def describe_provider(self) -> ProviderSpec:
        return spec(self.name)

    @hookimpl
    async def refresh(self, provider: ProviderContext, refresh_token: str) -> TokenSet:
        if self.failures:
            raise self.failures.pop(0)
        return TokenSet(
            access_token="at-" + secrets.token_hex(8),
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )

    @hookimpl
    async def revoke(self, provider: ProviderContext) -> Revocation:
        return Revocation(revoked=True)


@dataclass
class Scraped:
    app: Quart
    provider: ScriptedProvider
    settings: Settings

    @property
    def client(self) -> Any:
        return self.app.test_client()

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {user_token(self.settings)}"}

    async def scrape(self, **headers: str) -> str:
        response = await self.client.get("/metrics", headers=headers)
        assert response.status_code == 200, await response.get_data(as_text=True)
        assert response.content_type.startswith("text/plain")
        text: str = await response.get_data(as_text=True)
        return text


@pytest.fixture
async def scraped(make_settings: MakeSettings) -> AsyncIterator[Scraped]:
    settings = make_settings(
        **provider_env("acme"), BACKGROUND_REFRESH="false", METRICS_CONNECTIONS_TTL="0"
    )
    provider = ScriptedProvider("acme")
    host = PluginHost(settings, load_entrypoints=False, extra_plugins=[("acme", provider)])
    app = create_app(settings, plugins=host)
    async with app.test_app():
        yield Scraped(app, provider, settings)


def delta(before: str, after: str, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_the_families_after_a_flow(scraped: Scraped) -> None:
    client, auth = scraped.client, scraped.auth()
    before = await scraped.scrape()
    access, refresh = "at-" + secrets.token_hex(12), "rt-" + secrets.token_hex(12)
    stored = await client.post(
        "/api/v1/tokens/connections/acme",
        json={
            "access_token": access,
            "refresh_token": refresh,
            "expires_at": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
        },
        headers=auth,
    )
    assert stored.status_code == 201
    assert (await client.get("/api/v1/tokens/tokens", headers=auth)).status_code == 200
    scraped.provider.failures += [
        ProviderUnavailable("down", error="server_error"),
        ProviderMisconfigured("bad client", error="invalid_client"),
        ReconnectRequired("grant gone", error="invalid_grant"),
    ]
    for _ in range(3):
        await client.post("/api/v1/tokens/connections/acme/refresh", headers=auth)
    assert (await client.get("/no/such/" + secrets.token_hex(4))).status_code == 404
    await scraped.app.extensions["pulseplan"].events.drain()
    after = await scraped.scrape()

    total = "pulseplan_http_requests_total"
    assert delta(before, after, total, method="POST", route=ROUTE, status="201") == 1
    assert delta(before, after, total, route="/api/v1/tokens/tokens", status="200") == 1
    assert delta(before, after, total, route="<unmatched>", status="404") == 1
    latency = "pulseplan_http_request_duration_seconds_count"
    assert delta(before, after, latency, method="GET", route="/api/v1/tokens/tokens") == 1
    for outcome in ("success", "unavailable", "misconfigured", "reconnect"):
        assert delta(before, after, "pulseplan_refreshes_total", provider="acme", outcome=outcome)
        assert delta(before, after, "pulseplan_refresh_duration_seconds_count", outcome=outcome), (
            outcome
        )
    for error_class in ("unavailable", "misconfigured", "reconnect"):
        name = "pulseplan_provider_errors_total"
        assert delta(before, after, name, operation="refresh", error_class=error_class) == 1
    events = "pulseplan_connection_events_total"
    for event in ("connected", "refreshed", "refresh_failed", "needs_reauth"):
        assert delta(before, after, events, provider="acme", event=event) >= 1, event
    assert value(after, "pulseplan_connections", status="needs_reauth") == 1
    assert value(after, "pulseplan_connections", status="active") == 0
    assert delta(before, after, "pulseplan_lock_wait_seconds_count", lock="refresh") >= 4
    assert value(after, "pulseplan_build_info") == 1

    # No user id, token, raw path or connection id in any label.
    assert USER_ID not in after
    assert access not in after
    assert refresh not in after
    assert "/api/v1/tokens/connections/acme" not in after
    row = await scraped.app.extensions["pulseplan"].storage.get_connection(USER_ID, "acme")
    assert row is not None
    assert row.id not in after
    for _, labels, _ in samples(after):
        assert set(labels) <= ALLOWED_LABELS, labels


async def test_connection_counts_are_cached_for_the_ttl(make_settings: MakeSettings) -> None:
    settings = make_settings(**provider_env("acme"), METRICS_CONNECTIONS_TTL="3600")
    host = PluginHost(
        settings, load_entrypoints=False, extra_plugins=[("acme", ScriptedProvider("acme"))]
    )
    app = create_app(settings, plugins=host)
    async with app.test_app():
        client = app.test_client()

        async def store(user: str) -> None:
            headers = {"Authorization": f"Bearer {user_token(settings, sub=user)}"}
            body = {"access_token": "at-" + secrets.token_hex(8)}
            response = await client.post(
                "/api/v1/tokens/connections/acme", json=body, headers=headers
            )
            assert response.status_code == 201

        await store(USER_ID)
        first = await (await client.get("/metrics")).get_data(as_text=True)
        await store("0b9f5c4e-1d2a-4e3b-8c7d-6a5b4c3d2e1f")
        second = await (await client.get("/metrics")).get_data(as_text=True)
    assert value(first, "pulseplan_connections", status="active") == 1
    assert value(second, "pulseplan_connections", status="active") == 1  # one query per TTL


async def test_the_metrics_token_gate(make_settings: MakeSettings) -> None:
    token = secrets.token_urlsafe(24)
    app = create_app(make_settings(METRICS_TOKEN=token))
    async with app.test_app():
        client = app.test_client()
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            response = await client.get("/metrics", headers=headers)
            assert response.status_code == 401
            body = await response.get_json()
            assert body["code"] == "unauthorized"
            assert body["request_id"] == response.headers["X-Request-ID"]
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert token not in await response.get_data(as_text=True)
        ok = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        assert "pulseplan_http_requests_total" in await ok.get_data(as_text=True)


async def test_metrics_can_be_turned_off(make_settings: MakeSettings) -> None:
    app = create_app(make_settings(METRICS_ENABLED="false"))
    async with app.test_app():
        assert (await app.test_client().get("/metrics")).status_code == 404


async def test_the_api_for_other_layers(scraped: Scraped) -> None:
    before = await scraped.scrape()
    metrics.ratelimit_rejected("tokens")
    metrics.ratelimit_backend_error("oauth_callback")
    metrics.cache_hit("rows")
    metrics.cache_miss("rows")
    metrics.lock_wait(0.25, lock="refresh", outcome="timeout")
    metrics.cache_hit(f"user:{USER_ID}")  # a careless caller: folded into "other"
    metrics.ratelimit_rejected("ya29.token-looking-label")
    after = await scraped.scrape()
    assert delta(before, after, "pulseplan_ratelimit_rejections_total", group="tokens") == 1
    name = "pulseplan_ratelimit_backend_errors_total"
    assert delta(before, after, name, group="oauth_callback") == 1
    assert delta(before, after, "pulseplan_cache_hits_total", cache="rows") == 1
    assert delta(before, after, "pulseplan_cache_misses_total", cache="rows") == 1
    assert delta(before, after, "pulseplan_cache_hits_total", cache="other") == 1
    assert delta(before, after, "pulseplan_ratelimit_rejections_total", group="other") == 1
    timeout = "pulseplan_lock_wait_seconds_sum"
    assert delta(before, after, timeout, lock="refresh", outcome="timeout") == 0.25
    assert USER_ID not in after
    assert "ya29" not in after


def test_multiprocess_mode_sums_every_worker(tmp_path: Path) -> None:
    """Two processes record, a third (any worker answering a scrape) reports the sum."""
    directory = tmp_path / "prom"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    record = textwrap.dedent(
        """
        from pulseplan.observability import metrics
        metrics.observe_request("GET", "/health", 200, 0.01)
        metrics.ratelimit_rejected("tokens")
        """
    )
    report = textwrap.dedent(
        """
        import sys
        from pulseplan.observability import metrics
        sys.stdout.write(metrics.render().decode())
        """
    )

    def run(code: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    run("from pulseplan.observability import metrics; metrics.reset_multiprocess_dir()")
    run(record)
    run(record)
    text = run(report)
    assert value(text, "pulseplan_http_requests_total", route="/health", status="200") == 2
    assert value(text, "pulseplan_ratelimit_rejections_total", group="tokens") == 2
    assert "process_cpu_seconds_total" not in text  # per-process figures are not summed
    run("from pulseplan.observability import metrics; metrics.reset_multiprocess_dir()")
    assert value(run(report), "pulseplan_http_requests_total") == 0


def test_two_served_workers_report_the_same_totals(tmp_path: Path) -> None:
    """``pulseplan serve --workers 2`` with ``PROMETHEUS_MULTIPROC_DIR``: whichever worker
    answers a scrape reports every worker's requests; Hypercorn logs in the JSON sink."""
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
    except OSError as exc:
        service_unavailable("Redis (needed for several workers)", exc)
    env = {
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "REDIS_KEY_PREFIX": f"pulseplan:test-{secrets.token_hex(6)}:",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "LOG_FORMAT": "json",
        "BACKGROUND_REFRESH": "false",
    }
    (tmp_path / "prom").mkdir()
    (tmp_path / "prom" / "counter_1.db").write_bytes(b"stale")  # a previous run's file
    with running_server(env, tmp_path, workers=2) as server, httpx.Client(timeout=10) as http:
        for _ in range(20):
            assert http.get(f"{server.base_url}/health").status_code == 200
        totals = set()
        for _ in range(6):
            text = http.get(f"{server.base_url}/metrics").text
            totals.add(value(text, "pulseplan_http_requests_total", route="/health"))
    assert totals == {20.0}
    running = [line for line in server.output if "Running on" in line]
    assert len(running) == 2
    assert all(json.loads(line)["logger"] == "hypercorn.error" for line in running)
