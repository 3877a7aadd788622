"""Dependencies going away under a real server (issue 6 acceptance): Redis cut during a load run
-> no 5xx, degraded readiness, recovery when it returns; PostgreSQL cut -> readiness 503 within a
second, 503 JSON for requests, recovery without a restart.

The outages are made with a loopback TCP proxy in front of the shared servers (``tests/
tcp_proxy.py``): from the app's side that is a stopped server, without stopping the PostgreSQL
and Redis the rest of the suite uses.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import httpx
import pytest

from pulseplan.settings import Settings
from pulseplan.testing.fake_provider import FakeProvider
from pulseplan.testing.users import user_token
from pulseplan.testing.vault import new_user
from tests.conftest import BASE_ENV
from tests.pg_fixtures import scratch_database
from tests.redis_kit import require_redis
from tests.redis_kit import unique_prefix
from tests.server import pulseplan
from tests.server import running_server
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


class ThreadedProxy:
    """:class:`TcpProxy` on its own event loop in a thread, so it keeps forwarding while the
    test blocks (a CLI subprocess, server start-up)."""

    def __init__(self, host: str, port: int):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxy = TcpProxy(host, port)

    @property
    def port(self) -> int:
        return self.proxy.port

    def _run(self, coro: Any) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def start(self) -> None:
        self._run(self.proxy.start())

    def stop(self) -> None:
        self._run(self.proxy.stop())

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


def via(url: str, port: int) -> str:
    parts = urlsplit(url)
    host = f"{parts.username}@127.0.0.1:{port}" if parts.username else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=host))


async def connect(
    http: httpx.AsyncClient, base: str, fake: FakeProvider, headers: dict[str, str]
) -> None:
    started = await http.get(f"{base}/api/v1/oauth/google/authorize", headers=headers)
    assert started.status_code == 200, started.text
    parts = urlsplit(fake.consent(started.json()["authorization_url"]))
    done = await http.get(f"{base}{parts.path}?{parts.query}")
    assert done.json()["status"] == "connected", done.text


async def wave(
    http: httpx.AsyncClient, base: str, headers: dict[str, str], n: int = 40
) -> list[int]:
    responses = await asyncio.gather(
        *(http.get(f"{base}/api/v1/tokens/tokens", headers=headers) for _ in range(n))
    )
    for response in responses:
        assert response.headers["content-type"].startswith("application/json")
    return [r.status_code for r in responses]


@pytest.mark.redis
async def test_redis_cut_during_load_then_back(tmp_path: Path) -> None:
    await require_redis()
    redis = ThreadedProxy("127.0.0.1", 6379)
    redis.start()
    with scratch_database() as db, FakeProvider("google") as fake:
        env = {
            **BASE_ENV,
            **fake.env("google"),
            "DATABASE_URL": db.url,
            "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
            "REDIS_KEY_PREFIX": unique_prefix(),
            "REDIS_RETRY_INTERVAL": "0",
            "PULSEPLAN_PROVIDERS": "google",
            "BACKGROUND_REFRESH": "false",
            "ENABLE_RATE_LIMITING": "true",
            "RATE_LIMIT_TOKENS": "10000/60",
        }
        assert pulseplan("migrate", env=env, cwd=tmp_path).returncode == 0
        settings = Settings.load(env, env_file=None, generate_dev_secrets=False)
        headers = {"Authorization": f"Bearer {user_token(settings, new_user())}"}
        with running_server(
            {**env, "PUBLIC_BASE_URL": "http://127.0.0.1:0"}, tmp_path, workers=2
        ) as server:
            base = server.base_url
            async with httpx.AsyncClient(timeout=15) as http:
                # PUBLIC_BASE_URL only builds the redirect URI; the consent returns to it and
                # the test forwards the query to the real server.
                await connect(http, base, fake, headers)
                assert set(await wave(http, base, headers)) == {200}

                # Cut while a wave runs (how many requests straddle the cut varies from run to
                # run): whichever side of it a request falls on, it ends 200.
                in_flight = asyncio.ensure_future(wave(http, base, headers, 80))
                await asyncio.to_thread(redis.stop)
                assert set(await in_flight) == {200}
                during = await wave(http, base, headers)
                ready = await http.get(f"{base}/api/v1/health/ready")
                assert set(during) == {200}, during  # served from PostgreSQL, no 5xx at all
                assert ready.status_code == 200
                assert ready.json()["status"] == "degraded"

                redis.start()
                after = await wave(http, base, headers)
                assert set(after) == {200}
                recovered = await http.get(f"{base}/api/v1/health/ready")
                assert recovered.json()["status"] == "ready", recovered.text
    redis.close()


async def test_postgres_cut_readiness_503_fast_then_recovers(tmp_path: Path) -> None:
    with scratch_database() as db, FakeProvider("google") as fake:
        proxy = ThreadedProxy("127.0.0.1", urlsplit(db.url).port or 5432)
        proxy.start()
        env = {
            **BASE_ENV,
            **fake.env("google"),
            "DATABASE_URL": via(db.url, proxy.port),
            "PULSEPLAN_PROVIDERS": "google",
            "BACKGROUND_REFRESH": "false",
            "PUBLIC_BASE_URL": "http://127.0.0.1:0",
        }
        assert pulseplan("migrate", env=env, cwd=tmp_path).returncode == 0
        settings = Settings.load(env, env_file=None, generate_dev_secrets=False)
        headers = {"Authorization": f"Bearer {user_token(settings, new_user())}"}
        with running_server(env, tmp_path) as server:
            base = server.base_url
            async with httpx.AsyncClient(timeout=15) as http:
                await connect(http, base, fake, headers)
                assert set(await wave(http, base, headers, 5)) == {200}

                proxy.stop()
                # The probe must answer inside Kubernetes' default 1 s probe timeout.
                ready = await http.get(f"{base}/api/v1/health/ready", timeout=1.0)
                assert ready.status_code == 503
                assert ready.json()["code"] == "not_ready"
                live = await http.get(f"{base}/api/v1/health/live", timeout=1.0)
                assert live.status_code == 200
                down = await http.get(f"{base}/api/v1/tokens/tokens", headers=headers)
                assert down.status_code == 503
                assert down.json()["code"] == "storage_unavailable"
                assert down.headers["Retry-After"]

                proxy.start()
                recovered = await http.get(f"{base}/api/v1/health/ready", timeout=2.0)
                assert recovered.status_code == 200, recovered.text
                assert set(await wave(http, base, headers, 5)) == {200}
        proxy.close()
