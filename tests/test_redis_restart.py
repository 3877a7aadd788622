"""A private redis-server killed and restarted under a running app: degraded mode, then recovery
(with an empty Redis: scripts reloaded after NOSCRIPT, cache refilled) without an app restart.

Separate from the other Redis tests on purpose: it starts its own server on a free port so the
shared instance on 6379 is never touched.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from pulseplan.cache.rows import CachedStorage
from pulseplan.testing.fake_provider import FakeProvider
from tests.conftest import service_unavailable
from tests.redis_kit import closed_port
from tests.redis_kit import layer
from tests.redis_kit import one_refresh_under_concurrency
from tests.redis_kit import ready
from tests.vault import new_user
from tests.vault import running_vault

pytestmark = pytest.mark.redis


class PrivateRedis:
    """``redis-server`` on ``port`` without persistence (a restart loses every key)."""

    def __init__(self, port: int, workdir: Path):
        self.port = port
        self.workdir = workdir
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            service_unavailable("redis-server", FileNotFoundError("redis-server not on PATH"))
            return
        self.process = await asyncio.create_subprocess_exec(
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert self.process.stdout is not None
        async with asyncio.timeout(10):  # a bound, not a wait: we react to the log line
            while line := await self.process.stdout.readline():
                if b"Ready to accept connections" in line:
                    return
        raise AssertionError("redis-server did not become ready")

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self.process = None


@asynccontextmanager
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    server = PrivateRedis(closed_port(), tmp_path)
    try:
        await server.start()
        yield server
    finally:
        await server.kill()


async def test_kill_and_restart_redis_under_a_running_app(tmp_path: Path) -> None:
    async with (
        private_redis(tmp_path) as server,
        running_vault(
            tmp_path,
            providers={"acme": FakeProvider("standard", rotation="strict")},
            REDIS_URL=f"redis://127.0.0.1:{server.port}/0",
            REDIS_RETRY_INTERVAL="0",
        ) as vault,
    ):
        storage, locks, flows = layer(vault)
        await one_refresh_under_concurrency(vault, new_user())
        assert (await ready(vault))[1]["status"] == "ready"
        assert flows.fallback_puts == 0

        await server.kill()
        status, body = await ready(vault)
        assert (status, body["status"], body["checks"]["redis"]["status"]) == (
            200,
            "degraded",
            "degraded",
        )
        await one_refresh_under_concurrency(vault, new_user())  # database locks and flows
        assert flows.fallback_puts == 1

        await server.start()  # same port, empty: no keys, no loaded scripts
        status, body = await ready(vault)
        assert (status, body["status"], body["checks"]["redis"]["status"]) == (
            200,
            "ready",
            "ok",
        )
        skipped = locks.skipped
        await one_refresh_under_concurrency(vault, new_user())
        assert flows.fallback_puts == 1  # flow state back in Redis
        assert locks.skipped == skipped  # Lua release after NOSCRIPT: reloaded, not skipped
        assert isinstance(storage, CachedStorage)
        assert storage.stats()["pending_invalidations"] == 0
