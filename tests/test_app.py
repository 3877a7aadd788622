"""The app shell: health endpoints, JSON errors for every status, request ids, API docs."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from pydantic import BaseModel
from quart import Blueprint
from quart import Quart
from quart_schema import validate_request

from pulseplan.app import create_app
from pulseplan.runtime import CheckResult
from pulseplan.runtime import current_runtime
from pulseplan.settings import Settings
from pulseplan.storage.base import StorageError

CANARY = "ya29.canary-secret-value-0123456789"


class Body(BaseModel):
    access_token: str
    count: int


def probe_app(settings: Settings) -> Quart:
    """The real app plus a few routes that fail in known ways."""
    app = create_app(settings)
    bp = Blueprint("probe", __name__)

    @bp.post("/_probe/validate")
    @validate_request(Body)
    async def validated(data: Body) -> dict[str, str]:
        return {"ok": "yes"}

    @bp.get("/_probe/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError(f"exploded while holding {CANARY}")

    app.register_blueprint(bp)
    return app


async def test_health_summary_shape(client: object) -> None:
    response = await client.get("/health")  # type: ignore[attr-defined]
    assert response.status_code == 200
    body = await response.get_json()
    assert body["status"] == "healthy"
    assert body["service"] == "pulseplan"
    assert isinstance(body["uptime_seconds"], float)
    assert body["version"]


async def test_live_and_ready(client: object) -> None:
    live = await client.get("/api/v1/health/live")  # type: ignore[attr-defined]
    assert (live.status_code, (await live.get_json())["status"]) == (200, "alive")
    ready = await client.get("/api/v1/health/ready")  # type: ignore[attr-defined]
    assert ready.status_code == 200
    assert (await ready.get_json())["status"] in ("ready", "degraded")


async def test_readiness_fails_fast_with_json_when_a_critical_check_fails(
    settings: Settings,
) -> None:
    app = create_app(settings)

    async def storage_down() -> CheckResult:
        return CheckResult("fail", "connection refused")

    async def cache_slow() -> CheckResult:
        return CheckResult("degraded", "using in-process fallback")

    async with app.test_app():
        async with app.app_context():
            current_runtime().add_check("storage", storage_down)
            current_runtime().add_check("cache", cache_slow, critical=False)
        client = app.test_client()
        ready = await client.get("/api/v1/health/ready")
        assert ready.status_code == 503
        body = await ready.get_json()
        assert body["code"] == "not_ready"
        assert body["request_id"]
        assert body["checks"]["storage"]["status"] == "fail"
        assert "cache" not in body["checks"]  # only critical checks gate readiness
        detailed = await client.get("/api/v1/health/health")
        assert detailed.status_code == 503
        checks = (await detailed.get_json())["checks"]
        assert checks["cache"] == {
            "status": "degraded",
            "critical": False,
            "detail": "using in-process fallback",
            "duration_ms": checks["cache"]["duration_ms"],
        }
        live = await client.get("/api/v1/health/live")
        assert live.status_code == 200  # liveness never depends on dependencies


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/no/such/endpoint", 404, "not_found"),
        ("DELETE", "/health", 405, "method_not_allowed"),
        ("POST", "/api/v1/providers", 405, "method_not_allowed"),
    ],
)
async def test_http_errors_are_json(
    settings: Settings, method: str, path: str, status: int, code: str
) -> None:
    app = probe_app(settings)
    async with app.test_app():
        response = await app.test_client().open(path, method=method)
        assert response.status_code == status
        assert response.content_type == "application/json"
        body = await response.get_json()
        assert body["code"] == code
        assert body["request_id"] == response.headers["X-Request-ID"]
        assert body["detail"]
        if status == 405:
            assert "GET" in response.headers["Allow"]


async def test_validation_errors_are_422_json_without_the_input(settings: Settings) -> None:
    app = probe_app(settings)
    async with app.test_app():
        client = app.test_client()
        response = await client.post(
            "/_probe/validate", json={"access_token": CANARY, "count": "many"}
        )
        assert response.status_code == 422
        body = await response.get_json()
        assert body["code"] == "validation_error"
        assert body["errors"][0]["loc"] == ["count"]
        assert CANARY not in await response.get_data(as_text=True)
        not_json = await client.post(
            "/_probe/validate", data=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert not_json.status_code in (400, 422)
        assert (await not_json.get_json())["code"]


async def test_oversized_body_is_413_json(settings: Settings) -> None:
    app = probe_app(settings)
    async with app.test_app():
        response = await app.test_client().post(
            "/_probe/validate", json={"access_token": "x" * 100_000, "count": 1}
        )
        assert response.status_code == 413
        assert (await response.get_json())["code"] == "request_entity_too_large"


async def test_unexpected_exception_is_500_json_without_internals(
    settings: Settings, logs: list[str]
) -> None:
    app = probe_app(settings)
    async with app.test_app():
        response = await app.test_client().get("/_probe/boom")
        assert response.status_code == 500
        body = await response.get_json()
        assert body == {
            "detail": "internal server error",
            "code": "internal_error",
            "request_id": body["request_id"],
        }
    assert CANARY not in "".join(logs)
    assert any("RuntimeError" in line for line in logs)  # the operator still learns what happened


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("req-12345678", True),
        ("bad id; X-Evil: 1", False),
        ("<script>alert(1)</script>", False),
        ("short", False),
    ],
)
async def test_request_id_is_echoed_only_when_well_formed(
    client: object, sent: str, kept: bool
) -> None:
    response = await client.get("/health", headers={"X-Request-ID": sent})  # type: ignore[attr-defined]
    echoed = response.headers["X-Request-ID"]
    assert (echoed == sent) is kept
    assert len(echoed) >= 8


async def test_openapi_lists_every_route(app: Quart, client: object) -> None:
    response = await client.get("/api/v1/openapi.json")  # type: ignore[attr-defined]
    assert response.status_code == 200
    spec = await response.get_json()
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] == "PulsePlan"
    documented = set(spec["paths"])
    hidden = {"/api/v1/openapi.json", "/docs", "/redoc", "/static/<path:filename>", "/metrics"}
    routes = {
        re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule not in hidden
    }
    assert routes <= documented, routes - documented


async def test_openapi_document_is_valid(client: object) -> None:
    from openapi_spec_validator import validate

    spec = await (await client.get("/api/v1/openapi.json")).get_json()  # type: ignore[attr-defined]
    validate(spec)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_docs_pages_are_html_with_local_assets(client: object, path: str) -> None:
    response = await client.get(path)  # type: ignore[attr-defined]
    assert response.status_code == 200
    assert response.content_type.startswith("text/html")
    html = await response.get_data(as_text=True)
    assert "cdn" not in html
    for asset in ("/static/docs/swagger-ui-bundle.js", "/static/docs/redoc.standalone.js"):
        if asset.rsplit("/", 1)[1].split("-")[0].split(".")[0] in html:
            assert (await client.get(asset)).status_code == 200  # type: ignore[attr-defined]


async def test_providers_endpoint_lists_enabled_providers(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(
        make_settings(
            PULSEPLAN_DISABLED_PROVIDERS="notion",
            GOOGLE_CLIENT_ID="id",
            GOOGLE_CLIENT_SECRET="secret",
        )
    )
    async with app.test_app():
        body = await (await app.test_client().get("/api/v1/providers")).get_json()
    by_name = {p["name"]: p for p in body["providers"]}
    assert set(by_name) == {"google", "microsoft", "canvas"}
    assert by_name["google"]["configured"] is True
    assert by_name["microsoft"]["configured"] is False
    assert by_name["google"]["supports"] == {
        "refresh": True,
        "revoke": True,
        "validate": True,
        "pkce": True,
    }
    assert by_name["microsoft"]["supports"]["revoke"] is False


async def test_a_failed_start_closes_what_it_opened(settings: Settings) -> None:
    runtime = create_app(settings).extensions["pulseplan"]

    async def broken() -> None:
        raise RuntimeError("dependency refused")

    async def broken_close() -> None:
        raise OSError("close failed too")

    runtime.on_start.append(broken)
    runtime.on_stop.append(broken_close)
    # The start-up failure is what surfaces, not the cleanup's.
    with pytest.raises(RuntimeError, match="dependency refused"):
        await runtime.start()
    assert runtime.http is None
    with pytest.raises(StorageError, match="not open"):
        _ = runtime.storage.db  # the embedded SQLite backend: its connection was closed


async def test_stop_runs_every_step_when_one_fails(settings: Settings) -> None:
    runtime = create_app(settings).extensions["pulseplan"]
    ran: list[str] = []

    async def failing() -> None:
        raise RuntimeError("close failed")

    async def later() -> None:
        ran.append("later")

    runtime.on_stop.extend([later, failing])  # reversed on stop: failing runs first
    await runtime.start()
    with pytest.raises(RuntimeError, match="close failed"):
        await runtime.stop()
    assert ran == ["later"]
    assert runtime.http is None
    with pytest.raises(StorageError, match="not open"):
        _ = runtime.storage.db  # the embedded SQLite backend: its connection was closed
