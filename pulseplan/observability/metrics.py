"""Prometheus metrics: the families, a tiny API other layers call, and the exposition.

Labels are only ever a method, a route *template*, a status, a provider name, an outcome or a
fixed group name: never a user id, connection id or token (DESIGN.md §6.1). Every value goes
through :func:`label`, which folds anything unexpected into ``other``.

Several workers: set ``PROMETHEUS_MULTIPROC_DIR`` (a real environment variable, not ``.env``:
prometheus-client reads it when first imported) to an empty directory writable by every worker;
``pulseplan serve`` empties it at start. Each worker then writes its samples to files there and
whichever worker answers ``/metrics`` reports the sum over all of them. Without the variable every
worker keeps its own registry, which is only right with one worker (or a per-worker scrape).

API for other layers (all cheap, never raise on odd input)::

    from pulseplan.observability import metrics
    metrics.ratelimit_rejected("tokens")        # a request answered 429
    metrics.ratelimit_backend_error("tokens")   # the limiter's store failed (open or closed)
    metrics.cache_hit("tokens") / metrics.cache_miss("tokens")
    metrics.lock_wait(0.12, lock="refresh", outcome="acquired")
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Histogram
from prometheus_client import PlatformCollector
from prometheus_client import ProcessCollector
from prometheus_client import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

#: Decided once, like prometheus-client's own choice of value storage at import time.
MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
CONTENT_TYPE = CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry(auto_describe=True)
if MULTIPROC_DIR is None:
    # Per-process figures mean nothing summed over workers, so only in single-process mode.
    ProcessCollector(registry=REGISTRY)
    PlatformCollector(registry=REGISTRY)

_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PROVIDER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0)
_LOCK_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)

HTTP_REQUESTS = Counter(
    "pulseplan_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "pulseplan_http_request_duration_seconds",
    "Time to produce a response, by method, route template and status.",
    ["method", "route", "status"],
    buckets=_HTTP_BUCKETS,
    registry=REGISTRY,
)
REFRESHES = Counter(
    "pulseplan_refreshes",
    "Token refreshes sent to providers, by outcome "
    "(success, reconnect, misconfigured, unavailable, cancelled).",
    ["provider", "outcome"],
    registry=REGISTRY,
)
REFRESH_LATENCY = Histogram(
    "pulseplan_refresh_duration_seconds",
    "Provider time of one token refresh, by outcome.",
    ["provider", "outcome"],
    buckets=_PROVIDER_BUCKETS,
    registry=REGISTRY,
)
PROVIDER_ERRORS = Counter(
    "pulseplan_provider_errors",
    "Errors from provider calls (authorize, refresh, validate, revoke) by class: reconnect "
    "(the user must consent again), misconfigured (the operator must fix the client), "
    "unavailable (transient).",
    ["provider", "operation", "error_class"],
    registry=REGISTRY,
)
CONNECTION_EVENTS = Counter(
    "pulseplan_connection_events",
    "Connection events (connected, refreshed, refresh_failed, needs_reauth, disconnected, "
    "revocation_failed).",
    ["provider", "event"],
    registry=REGISTRY,
)
RATELIMIT_REJECTIONS = Counter(
    "pulseplan_ratelimit_rejections",
    "Requests refused with 429, by route group.",
    ["group"],
    registry=REGISTRY,
)
RATELIMIT_BACKEND_ERRORS = Counter(
    "pulseplan_ratelimit_backend_errors",
    "Rate-limit checks whose backend failed (answered per the group's fail-open/closed policy).",
    ["group"],
    registry=REGISTRY,
)
CACHE_HITS = Counter(
    "pulseplan_cache_hits", "Cache lookups that found a value.", ["cache"], registry=REGISTRY
)
CACHE_MISSES = Counter(
    "pulseplan_cache_misses", "Cache lookups that found nothing.", ["cache"], registry=REGISTRY
)
LOCK_WAIT = Histogram(
    "pulseplan_lock_wait_seconds",
    "Time spent waiting for a lease lock, by lock kind and outcome "
    "(acquired, skipped: another holder did the work, timeout).",
    ["lock", "outcome"],
    buckets=_LOCK_BUCKETS,
    registry=REGISTRY,
)

_SAFE = re.compile(r"^[A-Za-z0-9_.:/<>\-]{1,128}$")
_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,31}$")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def label(value: str, *, name: bool = True) -> str:
    """``value`` if it is a safe, short label value; ``other`` otherwise.

    :param name: require a lower-case identifier (providers, groups, outcomes); route
        templates pass ``False`` and may contain ``/``, ``<`` and ``>``.
    """
    pattern = _NAME if name else _SAFE
    return value if isinstance(value, str) and pattern.match(value) else "other"


# --------------------------------------------------------------------------- the API


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """One HTTP response. ``route`` is the URL rule (``/api/v1/oauth/<provider>/callback``)."""
    verb = method.upper() if method.upper() in METHODS else "OTHER"
    labels = (verb, label(route, name=False), str(int(status)))
    HTTP_REQUESTS.labels(*labels).inc()
    HTTP_LATENCY.labels(*labels).observe(max(seconds, 0.0))


def refresh_observed(provider: str, outcome: str, seconds: float) -> None:
    """One refresh call to a provider and how it ended."""
    REFRESHES.labels(label(provider), label(outcome)).inc()
    REFRESH_LATENCY.labels(label(provider), label(outcome)).observe(max(seconds, 0.0))


def provider_error(provider: str, operation: str, error_class: str) -> None:
    """A provider call failed with ``reconnect``, ``misconfigured`` or ``unavailable``."""
    PROVIDER_ERRORS.labels(label(provider), label(operation), label(error_class)).inc()


def connection_event(provider: str, event: str) -> None:
    """A connection event was delivered."""
    CONNECTION_EVENTS.labels(label(provider), label(event)).inc()


def ratelimit_rejected(group: str) -> None:
    """The rate limiter refused a request of route group ``group`` (429)."""
    RATELIMIT_REJECTIONS.labels(label(group)).inc()


def ratelimit_backend_error(group: str) -> None:
    """The rate limiter's backend failed while checking route group ``group``."""
    RATELIMIT_BACKEND_ERRORS.labels(label(group)).inc()


def cache_hit(cache: str = "default") -> None:
    """A lookup in cache ``cache`` found a value."""
    CACHE_HITS.labels(label(cache)).inc()


def cache_miss(cache: str = "default") -> None:
    """A lookup in cache ``cache`` found nothing."""
    CACHE_MISSES.labels(label(cache)).inc()


def lock_wait(seconds: float, *, lock: str = "refresh", outcome: str = "acquired") -> None:
    """Time spent waiting for a lock. ``lock`` is the lock's *kind* (``refresh``), never its
    full name: names carry connection ids."""
    LOCK_WAIT.labels(label(lock), label(outcome)).observe(max(seconds, 0.0))


# --------------------------------------------------------------------------- exposition


def render(extra: Iterable[Collector] = ()) -> bytes:
    """The exposition text: every worker's samples (multiprocess mode) or this process's,
    followed by ``extra`` collectors computed at scrape time."""
    if MULTIPROC_DIR is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=MULTIPROC_DIR)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    output = generate_latest(registry)
    collectors = list(extra)
    if collectors:
        scrape = CollectorRegistry(auto_describe=False)
        for collector in collectors:
            scrape.register(collector)
        output += generate_latest(scrape)
    return output


def reset_multiprocess_dir() -> None:
    """Empty ``PROMETHEUS_MULTIPROC_DIR`` (before the workers start: stale files of earlier
    runs would be summed in). Creates the directory if needed; does nothing without it."""
    if MULTIPROC_DIR is None:
        return
    os.makedirs(MULTIPROC_DIR, exist_ok=True)
    for entry in os.scandir(MULTIPROC_DIR):
        if entry.is_file() and entry.name.endswith(".db"):
            os.unlink(entry.path)
