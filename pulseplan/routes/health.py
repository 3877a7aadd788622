"""Health endpoints: ``/health`` (seed-compatible summary), ``/api/v1/health/health``
(per-dependency checks), and the Kubernetes probes ``/ready`` and ``/live``.

Liveness depends on nothing external (a dead database must not get every pod restarted);
readiness runs only the critical checks, each bounded so the probe answers within a second.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from quart import Blueprint
from quart import Response
from quart import jsonify
from quart_schema import document_response
from quart_schema import tag

from pulseplan.runtime import current_runtime
from pulseplan.web.request_id import request_id

blueprint = Blueprint("health", __name__)
SERVICE = "pulseplan"


class Health(BaseModel):
    status: str
    service: str
    version: str
    uptime_seconds: float
    timestamp: datetime


class Check(BaseModel):
    status: str
    critical: bool
    detail: str
    duration_ms: float


class DetailedHealth(Health):
    checks: dict[str, Check]


class Probe(BaseModel):
    status: str
    checks: dict[str, Check] = {}


def _summary(status: str) -> dict[str, Any]:
    runtime = current_runtime()
    return {
        "status": status,
        "service": SERVICE,
        "version": runtime.version,
        "uptime_seconds": runtime.uptime_seconds,
        "timestamp": datetime.now(UTC).isoformat(),
    }


def _reply(body: dict[str, Any], ok: bool, code: str) -> Response:
    response = jsonify(body if ok else {**body, "code": code, "request_id": request_id()})
    response.status_code = 200 if ok else 503
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/health")
@tag(["health"])
@document_response(Health)
async def health() -> Response:
    """Service summary; always 200 while the process serves."""
    return _reply(_summary("healthy"), True, "")


@blueprint.get("/api/v1/health/health")
@tag(["health"])
@document_response(DetailedHealth)
@document_response(DetailedHealth, 503)
async def detailed() -> Response:
    """Every dependency check. 503 when a critical check fails; ``degraded`` otherwise."""
    results = await current_runtime().run_checks()
    checks = {
        name: {"status": r.status, "critical": c.critical, "detail": r.detail, "duration_ms": ms}
        for name, (c, r, ms) in results.items()
    }
    failed = [n for n, (c, r, _) in results.items() if c.critical and r.status == "fail"]
    degraded = any(r.status != "ok" for _, r, _ in results.values())
    status = "unhealthy" if failed else "degraded" if degraded else "healthy"
    body = {**_summary(status), "checks": checks}
    if failed:
        body["detail"] = "failing: " + ", ".join(sorted(failed))
    return _reply(body, not failed, "unhealthy")


@blueprint.get("/api/v1/health/ready")
@tag(["health"])
@document_response(Probe)
@document_response(Probe, 503)
async def ready() -> Response:
    """Readiness: storage, keys and migrations. 503 (fast) when any of them fails."""
    results = await current_runtime().run_checks(only_critical=True, budget=0.5)
    checks = {
        name: {"status": r.status, "critical": True, "detail": r.detail, "duration_ms": ms}
        for name, (_, r, ms) in results.items()
    }
    failed = sorted(n for n, (_, r, _) in results.items() if r.status == "fail")
    degraded = any(r.status == "degraded" for _, r, _ in results.values())
    body: dict[str, Any] = {
        "status": "not_ready" if failed else "degraded" if degraded else "ready",
        "checks": checks,
    }
    if failed:
        body["detail"] = "not ready: " + ", ".join(failed)
    return _reply(body, not failed, "not_ready")


@blueprint.get("/api/v1/health/live")
@tag(["health"])
@document_response(Probe)
async def live() -> Response:
    """Liveness: the process answers. Checks nothing external on purpose."""
    return _reply({"status": "alive"}, True, "")
