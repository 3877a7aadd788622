"""Security headers on every response, the docs pages' CSP, no-store on token responses, CORS,
and request size limits."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel
from quart import Blueprint
from quart import Quart
from quart_schema import validate_request

from pulseplan.app import create_app
from pulseplan.errors import ConfigurationError
from pulseplan.settings import Settings
from pulseplan.web.security import API_CSP
from pulseplan.web.security import DOCS_CSP
from tests.auth_fakes import user_token

ORIGIN = "https://app.example.com"


class Body(BaseModel):
    count: int


def with_probes(app: Quart) -> Quart:
    bp = Blueprint("probe", __name__)

    @bp.post("/_probe/validate")
    @validate_request(Body)
    async def validated(data: Body) -> dict[str, str]:
        return {"ok": "yes"}

    @bp.get("/_probe/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("boom")

    app.register_blueprint(bp)
    return app


@pytest.fixture
async def edge_app(make_settings: Callable[..., Settings]) -> AsyncIterator[Quart]:
    settings = make_settings(
        ENABLE_RATE_LIMITING="true",
        RATE_LIMIT_DEFAULT="1/60",
        CORS_ALLOWED_ORIGINS=f"{ORIGIN}, http://localhost:3000",
        BACKGROUND_REFRESH="false",
    )
    app = with_probes(create_app(settings))
    async with app.test_app():
        yield app


def assert_security_headers(response: Any, csp: str = API_CSP) -> None:
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Content-Security-Policy"] == csp
    assert "Strict-Transport-Security" not in headers  # PUBLIC_BASE_URL is http here


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/health", {}, 200),
        ("GET", "/api/v1/tokens/connections", {}, 401),
        ("GET", "/no/such/endpoint", {"scope_base": {"client": ("192.0.2.1", 1)}}, 404),
        ("DELETE", "/health", {}, 405),
        ("POST", "/_probe/validate", {"json": {"count": "x" * 70_000}}, 413),
        ("POST", "/_probe/validate", {"json": {"count": "many"}}, 422),
        ("GET", "/_probe/boom", {}, 500),
        ("GET", "/static/docs/swagger-ui.css", {}, 200),
        ("GET", "/api/v1/openapi.json", {}, 200),
    ],
)
async def test_every_response_carries_the_security_headers(
    edge_app: Quart, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    response = await edge_app.test_client().open(path, method=method, **kwargs)
    assert response.status_code == status
    assert_security_headers(response)


async def test_rate_limited_responses_carry_the_security_headers(edge_app: Quart) -> None:
    client = edge_app.test_client()
    await client.get("/api/v1/providers")
    refused = await client.get("/api/v1/providers")
    assert refused.status_code == 429
    assert_security_headers(refused)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_docs_pages_get_a_csp_for_local_assets_only(edge_app: Quart, path: str) -> None:
    client = edge_app.test_client()
    response = await client.get(path)
    assert response.status_code == 200
    assert_security_headers(response, DOCS_CSP)
    html = await response.get_data(as_text=True)
    directives = {
        name: value for name, _, value in (d.strip().partition(" ") for d in DOCS_CSP.split(";"))
    }
    # Scripts only from this origin, never inline; nothing from another origin at all.
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'none'"
    assert "http" not in DOCS_CSP
    assert "*" not in DOCS_CSP
    assert "unsafe-eval" not in DOCS_CSP
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts, "the page loads its UI with scripts"
    for attributes, inline in scripts:
        assert inline.strip() == "", "inline script would need 'unsafe-inline'"
        assert 'src="/static/docs/' in attributes
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert url.startswith("/"), url
        assert (await client.get(url)).status_code == 200, url
    assert "/api/v1/openapi.json" in html  # fetched from this origin (connect-src 'self')


async def test_swagger_start_up_script_is_a_local_file(edge_app: Quart) -> None:
    html = await (await edge_app.test_client().get("/docs")).get_data(as_text=True)
    assert '<script src="/static/docs/swagger-init.js"></script>' in html
    assert 'data-openapi-url="/api/v1/openapi.json"' in html
    init = await edge_app.test_client().get("/static/docs/swagger-init.js")
    assert init.status_code == 200
    assert "SwaggerUIBundle(" in await init.get_data(as_text=True)
    other_client = {"scope_base": {"client": ("192.0.2.50", 1)}}  # RATE_LIMIT_DEFAULT is 1/60
    spec = await (
        await edge_app.test_client().get("/api/v1/openapi.json", **other_client)
    ).get_json()
    assert "/docs" not in spec["paths"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PUBLIC_BASE_URL": "https://vault.example.com"}, "max-age=31536000"),
        ({"PUBLIC_BASE_URL": "https://vault.example.com", "HSTS_SECONDS": "0"}, None),
        ({"HSTS_SECONDS": "600"}, "max-age=600"),
        ({}, None),
    ],
)
async def test_hsts_when_configured_or_https(
    make_settings: Callable[..., Settings], env: dict[str, str], expected: str | None
) -> None:
    app = create_app(make_settings(**env))
    async with app.test_app():
        for path in ("/health", "/no/such/page"):
            response = await app.test_client().get(path)
            assert response.headers.get("Strict-Transport-Security") == expected


async def test_api_json_is_no_store_by_default(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    app = create_app(settings)
    async with app.test_app():
        client = app.test_client()
        auth = {"Authorization": f"Bearer {user_token(settings)}"}
        for path in (
            "/api/v1/tokens/tokens",
            "/api/v1/tokens/connections",
            "/api/v1/tokens/connections/status",
            "/api/v1/tokens/audit",
        ):
            response = await client.get(path, headers=auth)
            assert response.status_code == 200, path
            assert response.headers["Cache-Control"] == "no-store", path
        stored = await client.post(
            "/api/v1/tokens/connections/google",
            headers=auth,
            json={"access_token": "ya29.token-canary", "scopes": []},
        )
        assert stored.status_code in (200, 201)
        assert stored.headers["Cache-Control"] == "no-store"
        for public in ("/api/v1/providers", "/api/v1/openapi.json"):
            response = await client.get(public)
            assert "no-store" not in response.headers.get("Cache-Control", ""), public


async def test_cors_preflight_from_an_allowed_origin(edge_app: Quart) -> None:
    response = await edge_app.test_client().options(
        "/api/v1/tokens/tokens",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert response.status_code == 204
    headers = response.headers
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "GET" in headers["Access-Control-Allow-Methods"]
    assert "Authorization" in headers["Access-Control-Allow-Headers"]
    assert int(headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in headers
    assert_security_headers(response)


async def test_cors_preflight_from_an_unknown_origin_gets_no_cors_headers(
    edge_app: Quart,
) -> None:
    for origin in ("https://evil.example", "null", "https://app.example.com.evil.example"):
        response = await edge_app.test_client().options(
            "/api/v1/tokens/tokens",
            headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
        )
        assert "Access-Control-Allow-Origin" not in response.headers, origin
        assert "Access-Control-Allow-Methods" not in response.headers, origin


async def test_cors_headers_on_actual_requests(edge_app: Quart) -> None:
    client = edge_app.test_client()
    allowed = await client.get("/health", headers={"Origin": "http://localhost:3000"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "X-RateLimit-Remaining" in allowed.headers["Access-Control-Expose-Headers"]
    assert "Origin" in allowed.headers["Vary"]
    unknown = await client.get("/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in unknown.headers
    assert "Origin" in unknown.headers["Vary"]
    error = await client.get("/api/v1/tokens/tokens", headers={"Origin": ORIGIN})
    assert error.status_code == 401  # the app can read the error body
    assert error.headers["Access-Control-Allow-Origin"] == ORIGIN


@pytest.mark.parametrize("origins", ["*", "https://app.example.com/path", "app.example.com"])
def test_cors_allow_list_must_hold_exact_origins(
    make_settings: Callable[..., Settings], origins: str
) -> None:
    with pytest.raises(ConfigurationError, match="CORS_ALLOWED_ORIGINS"):
        create_app(make_settings(CORS_ALLOWED_ORIGINS=origins))


async def test_long_query_strings_and_headers_are_refused_as_json(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(MAX_QUERY_STRING_BYTES="1024", MAX_HEADER_BYTES="2048"))
    async with app.test_app():
        client = app.test_client()
        long_query = await client.get("/api/v1/providers?x=" + "a" * 2000)
        assert long_query.status_code == 414
        assert (await long_query.get_json())["code"] == "uri_too_long"
        big_headers = await client.get("/health", headers={"X-Padding": "b" * 4000})
        assert big_headers.status_code == 431
        assert (await big_headers.get_json())["code"] == "request_header_fields_too_large"
        assert_security_headers(big_headers)
        assert (await client.get("/api/v1/providers?x=" + "a" * 500)).status_code == 200
