"""The per-app runtime: settings, plugins, the storage backend, the token broker and the health
checks every layer registers. Stored at ``app.extensions["pulseplan"]``; routes reach it through
:func:`current_runtime`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Literal

import httpx
from loguru import logger
from quart import current_app

from pulseplan import __version__
from pulseplan.plugins import PluginHost
from pulseplan.settings import Settings

if TYPE_CHECKING:
    from pulseplan.audit import Auditor
    from pulseplan.broker.service import TokenBroker
    from pulseplan.cache.client import RedisClient
    from pulseplan.crypto import TokenCipher
    from pulseplan.events import EventBus
    from pulseplan.oauth.flows import FlowService
    from pulseplan.refresher import BackgroundRefresher
    from pulseplan.storage.base import Storage

Status = Literal["ok", "degraded", "fail"]


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one health check; ``detail`` is a short operator-facing line (no secrets)."""

    status: Status
    detail: str = ""


CheckFunc = Callable[[], Awaitable[CheckResult]]


@dataclass(frozen=True)
class HealthCheck:
    """A named dependency check. ``critical`` checks gate readiness; others only degrade."""

    name: str
    func: CheckFunc
    critical: bool = True


@dataclass
class Runtime:
    """Everything a request handler needs, built once per app by ``create_app``."""

    settings: Settings
    plugins: PluginHost
    version: str = __version__
    started_monotonic: float = field(default_factory=time.monotonic)
    checks: dict[str, HealthCheck] = field(default_factory=dict)
    http: httpx.AsyncClient | None = None
    # Set by create_app once the layers are built.
    storage: Storage = field(init=False)
    cipher: TokenCipher = field(init=False)
    events: EventBus = field(init=False)
    broker: TokenBroker = field(init=False)
    flows: FlowService = field(init=False)
    auditor: Auditor = field(init=False)
    background: BackgroundRefresher | None = None
    #: The shared Redis client when REDIS_URL is set (the cache layer owns it; others borrow).
    redis: RedisClient | None = None
    #: Figures of the Redis layer for ``/metrics`` (set with the layer).
    redis_metrics: Callable[[], dict[str, int]] | None = None
    auto_migrate: bool = True
    on_start: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def add_check(self, name: str, func: CheckFunc, *, critical: bool = True) -> None:
        """Register a dependency check for ``/api/v1/health/*``."""
        self.checks[name] = HealthCheck(name, func, critical)

    @property
    def uptime_seconds(self) -> float:
        return round(time.monotonic() - self.started_monotonic, 3)

    async def start(self) -> None:
        """Open shared resources; called before the app serves."""
        timeout = self.settings.provider_http_timeout
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            follow_redirects=False,  # a token endpoint answering 3xx is an error, never a hop
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            headers={"User-Agent": f"pulseplan/{self.version}"},
        )
        self.plugins.bind_http(self.http)
        try:
            await self.storage.open()
            if self.auto_migrate:
                await self.storage.migrate()
            for hook in self.on_start:
                await hook()
        except BaseException:
            try:
                await self.stop()  # nothing half-open is left behind
            except Exception as cleanup:  # the start-up failure is the one to report
                logger.warning("cleanup after a failed start failed: {}", type(cleanup).__name__)
            raise
        if self.background is not None:
            self.background.start()

    async def stop(self) -> None:
        """Stop background work, deliver pending events, close resources (graceful SIGTERM).

        Every step runs even when an earlier one fails, so clients and pools are always closed.
        """
        steps: list[Callable[[], Awaitable[None]]] = []
        if self.background is not None:
            steps.append(self.background.stop)
        steps.extend(reversed(self.on_stop))
        steps.extend((self.events.drain, self.storage.close))
        failure: BaseException | None = None
        for step in steps:
            try:
                await step()
            except Exception as exc:
                failure = failure or exc
        if self.http is not None:
            await self.http.aclose()
            self.http = None
        if failure is not None:
            raise failure

    async def run_checks(
        self, *, budget: float = 0.8, only_critical: bool = False
    ) -> dict[str, tuple[HealthCheck, CheckResult, float]]:
        """Run checks concurrently, each bounded by ``budget`` seconds.

        :return: name -> (check, result, duration in ms).
        """
        selected = [c for c in self.checks.values() if c.critical or not only_critical]

        async def run(check: HealthCheck) -> tuple[HealthCheck, CheckResult, float]:
            start = time.perf_counter()
            try:
                result = await asyncio.wait_for(check.func(), budget)
            except TimeoutError:
                result = CheckResult("fail", f"no answer within {budget:.1f}s")
            except Exception as exc:
                result = CheckResult("fail", f"{type(exc).__name__}")
            return check, result, round((time.perf_counter() - start) * 1000, 1)

        results = await asyncio.gather(*(run(c) for c in selected))
        return {check.name: (check, result, ms) for check, result, ms in results}


def current_runtime() -> Runtime:
    """The runtime of the app handling the current request."""
    runtime: Runtime = current_app.extensions["pulseplan"]
    return runtime
