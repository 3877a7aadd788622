"""Assembles the Redis layer for a runtime (called by ``pulseplan.wiring`` when ``REDIS_URL`` is
set): the row cache around the storage backend, layered refresh locks, Redis flow state, the
``redis`` health check, and the client's start and stop hooks.

Degraded mode: when Redis is unreachable the service keeps serving from the database. Reads skip
the cache, locks are the database's alone, OAuth flows are stored in the database, and the
``redis`` check reports ``degraded`` (readiness stays 200). When Redis answers again every part
uses it again without a restart (the client retries after ``REDIS_RETRY_INTERVAL`` seconds and
the health check pings on every probe).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pulseplan.cache.client import RedisClient
from pulseplan.cache.client import RedisUnavailable
from pulseplan.cache.flows import RedisFlowStore
from pulseplan.cache.locks import LayeredLocks
from pulseplan.cache.locks import RedisLocks
from pulseplan.cache.rows import CachedStorage
from pulseplan.locks import StorageLocks
from pulseplan.runtime import CheckResult
from pulseplan.storage.base import Storage

if TYPE_CHECKING:
    from pulseplan.runtime import Runtime

#: The check must answer well inside the readiness budget (0.5 s), so it never turns into "fail".
CHECK_TIMEOUT = 0.3
DEGRADED = (
    "Redis unreachable: serving from the database without the cache; refresh locks and OAuth "
    "flows use the database"
)


@dataclass
class RedisLayer:
    """The parts built on one :class:`RedisClient`; :meth:`stats` gathers their counters."""

    client: RedisClient
    storage: CachedStorage
    locks: LayeredLocks
    flows: RedisFlowStore

    async def check(self) -> CheckResult:
        """``ok`` when Redis answers, else ``degraded``; never ``fail`` (see :func:`install`)."""
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                await self.client.ping()
        except TimeoutError:
            return CheckResult("degraded", f"Redis did not answer within {CHECK_TIMEOUT:g}s")
        except RedisUnavailable:
            return CheckResult("degraded", DEGRADED)
        except Exception as exc:  # a health check must report, never raise
            return CheckResult("degraded", f"Redis check failed ({type(exc).__name__})")
        await self.storage.flush_pending()  # Redis is back: replay invalidations it missed
        if self.storage.paused:
            return CheckResult("ok", "Redis reachable; row cache paused after a recent error")
        return CheckResult("ok", "Redis reachable: row cache, refresh locks, OAuth flows")

    def metric_values(self) -> dict[str, int]:
        """The figures ``/metrics`` exports (``pulseplan_redis_up``, ``..._fallbacks``)."""
        return {
            "up": 0 if self.client.down else 1,
            "lock_skips": self.locks.skipped,
            "flow_fallback_puts": self.flows.fallback_puts,
            "flow_fallback_takes": self.flows.fallback_takes,
            "cache_bypassed": self.storage.bypassed,
        }

    def stats(self) -> dict[str, dict[str, float | int | bool]]:
        """Every counter of the layer, for the metrics layer."""
        return {
            "client": dict(self.client.stats()),
            "cache": dict(self.storage.stats()),
            "locks": dict(self.locks.stats()),
            "flows": dict(self.flows.stats()),
        }


def install(runtime: Runtime, storage: Storage) -> RedisLayer:
    """Build the Redis layer around ``storage`` and register its check and lifecycle hooks.

    The ``redis`` check is registered as a readiness check (``critical=True``) on purpose:
    ``/api/v1/health/ready`` runs only those, and readiness must *say* ``degraded`` while Redis is
    down. It cannot make readiness fail: it answers within :data:`CHECK_TIMEOUT` and returns
    ``ok`` or ``degraded``, never ``fail``, so a Redis outage never takes a pod out of service.

    :raises ConfigurationError: ``REDIS_URL`` is malformed or disables TLS verification.
    """
    settings = runtime.settings
    client = RedisClient.from_settings(settings)
    layer = RedisLayer(
        client=client,
        storage=CachedStorage(storage, client, ttl=settings.redis_cache_ttl),
        # The storage lock is the real exclusion; Redis only makes waiting cheap (locks.py).
        locks=LayeredLocks(RedisLocks(client), StorageLocks(storage)),
        flows=RedisFlowStore(client, fallback=storage),
    )
    runtime.redis = client  # the rate limiter shares this pool
    runtime.redis_metrics = layer.metric_values
    runtime.add_check("redis", layer.check, critical=True)
    runtime.on_start.append(client.open)
    runtime.on_stop.append(client.close)
    return layer
