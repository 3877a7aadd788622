"""``GET /metrics``: the Prometheus exposition, optionally behind a bearer token.

With ``METRICS_TOKEN`` set, a scrape needs ``Authorization: Bearer <token>`` (Prometheus:
``authorization: {credentials: ...}`` in the scrape config); anything else gets 401 JSON. The
route is hidden from the OpenAPI document: it is for operators, not API clients.

``pulseplan_connections{status}`` is computed at scrape time from
``storage.count_connections_by_status()``, cached for ``METRICS_CONNECTIONS_TTL`` seconds so that
frequent scrapes (or several Prometheus servers) cost one query per interval. It is read from
the shared database, so it is the same whichever worker answers.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field

from loguru import logger
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from quart import Quart
from quart import Response
from quart import current_app
from quart import request
from quart_schema import hide

from pulseplan import __version__
from pulseplan.observability import metrics
from pulseplan.runtime import Runtime
from pulseplan.runtime import current_runtime
from pulseplan.storage.base import Storage
from pulseplan.storage.base import StorageError
from pulseplan.web.errors import error_response

PATH = "/metrics"
STATUSES = ("active", "needs_reauth", "error")
EXTENSION = "pulseplan.metrics"


class _Static(Collector):
    """Metric families computed before the scrape is rendered."""

    def __init__(self, *families: GaugeMetricFamily):
        self.families = families

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self.families


@dataclass
class ConnectionCounts:
    """``count_connections_by_status`` with a short cache."""

    storage: Storage
    ttl: float
    _value: dict[str, int] | None = None
    _at: float = field(default=float("-inf"))

    async def get(self) -> dict[str, int] | None:
        now = time.monotonic()
        if self._value is None or now - self._at >= self.ttl:
            try:
                self._value = await self.storage.count_connections_by_status()
            except StorageError as exc:
                logger.warning("metrics: connection counts unavailable ({})", type(exc).__name__)
                return self._value  # the last good figures, or none at all
            self._at = now
        return self._value


def scrape_families(
    counts: dict[str, int] | None, redis: dict[str, int] | None = None
) -> list[GaugeMetricFamily]:
    """The families computed at scrape time: build info, connections by status and, with
    Redis, whether this worker reaches it and how often it fell back to the database."""
    build = GaugeMetricFamily(
        "pulseplan_build_info", "PulsePlan version of the answering worker.", labels=["version"]
    )
    build.add_metric([__version__], 1)
    families = [build]
    if redis is not None:
        up = GaugeMetricFamily(
            "pulseplan_redis_up", "1 when this worker reached Redis on its last call, else 0."
        )
        up.add_metric([], redis.get("up", 0))
        families.append(up)
        fallbacks = GaugeMetricFamily(
            "pulseplan_redis_fallbacks",
            "Operations this worker served without Redis since it started, by kind.",
            labels=["kind"],
        )
        for kind in ("lock_skips", "flow_fallback_puts", "flow_fallback_takes", "cache_bypassed"):
            fallbacks.add_metric([kind], redis.get(kind, 0))
        families.append(fallbacks)
    if counts is not None:
        gauge = GaugeMetricFamily(
            "pulseplan_connections", "Stored connections by status.", labels=["status"]
        )
        for status in sorted(set(STATUSES) | set(counts)):
            gauge.add_metric([metrics.label(status)], counts.get(status, 0))
        families.append(gauge)
    return families


def redis_stats(runtime: Runtime) -> dict[str, int] | None:
    """The Redis layer's figures, when there is one."""
    return runtime.redis_metrics() if runtime.redis_metrics is not None else None


def _authorized(token: str | None) -> bool:
    if not token:
        return True
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credential.strip().encode(), token.encode())


@hide
async def metrics_view() -> Response:
    """Prometheus metrics of every worker (multiprocess mode) or of this worker."""
    runtime = current_runtime()
    if not _authorized(runtime.settings.secret("metrics_token")):
        return error_response(
            401,
            "a valid metrics bearer token is required",
            "unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    counts: ConnectionCounts = current_app.extensions[EXTENSION]
    body = metrics.render([_Static(*scrape_families(await counts.get(), redis_stats(runtime)))])
    response = Response(body, status=200, content_type=metrics.CONTENT_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Quart) -> None:
    """Serve ``/metrics`` on ``app``."""
    runtime = app.extensions["pulseplan"]
    app.extensions[EXTENSION] = ConnectionCounts(
        runtime.storage, runtime.settings.metrics_connections_ttl
    )
    app.add_url_rule(PATH, "metrics", metrics_view, methods=["GET"])
