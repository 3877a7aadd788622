"""Security headers on every response, request size limits, and the CORS allow-list.

Every response (JSON, errors, 404s, static files, the docs pages) gets:

* ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy:
  no-referrer``;
* ``Content-Security-Policy``: :data:`API_CSP` (nothing may load, nothing may frame us), or
  :data:`DOCS_CSP` on ``/docs`` and ``/redoc``, which run the locally served Swagger UI and
  ReDoc: scripts from this origin only (no inline script: Swagger UI's start-up lives in
  ``/static/docs/swagger-init.js``), inline *styles* (both UIs set style attributes), images
  and fonts from this origin or ``data:``, ``fetch`` of the OpenAPI document from this origin,
  and ReDoc's search worker from a ``blob:`` URL it builds itself;
* ``Strict-Transport-Security: max-age=N`` when ``HSTS_SECONDS`` is set, or by default (one
  year) when ``PUBLIC_BASE_URL`` is https (``HSTS_SECONDS=0`` turns it off);
* ``Cache-Control: no-store`` on every ``/api/v1/`` JSON response that does not set its own,
  except the public, token-free health, providers and OpenAPI documents.

Request sizes, enforced where:

* body: ``MAX_CONTENT_LENGTH`` (64 KiB, set in ``create_app``), by Quart while reading it -> 413;
* query string: ``MAX_QUERY_STRING_BYTES`` (8 KiB) here -> 414 JSON;
* all header lines together: ``MAX_HEADER_BYTES`` (16 KiB) here -> 431 JSON.

Hypercorn has its own, looser, bounds and answers them itself (an empty 431, not JSON): over
HTTP/1.1, h11 refuses a request head larger than ``h11_max_incomplete_size``, which
``pulseplan serve`` raises to 128 KiB so that every head up to that size reaches the checks here
and gets a JSON answer; over HTTP/2 the header list is limited by ``h2_max_header_list_size``
(64 KiB).
"""

from __future__ import annotations

from typing import Final

from quart import Quart
from quart import Response
from quart import render_template_string
from quart import request
from quart import url_for
from quart_schema import hide

from pulseplan.errors import ApiError
from pulseplan.runtime import Runtime
from pulseplan.settings import Settings
from pulseplan.web import cors

API_CSP: Final = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src blob:",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    )
)
DOCS_PATHS: Final = frozenset({"/docs", "/redoc"})
#: ``/api/v1/`` documents that hold no token and may be cached.
CACHEABLE_PREFIXES: Final = ("/api/v1/health/", "/api/v1/providers", "/api/v1/openapi.json")
HSTS_DEFAULT_SECONDS: Final = 365 * 24 * 3600

FIXED_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

# quart-schema's Swagger page starts the UI with an inline <script>; this one loads a file.
SWAGGER_PAGE: Final = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{{ title }}</title>
  <link rel="stylesheet" href="{{ css_url }}">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{{ openapi_url }}"></div>
  <script src="{{ js_url }}"></script>
  <script src="{{ init_url }}"></script>
</body>
</html>
"""


def hsts_header(settings: Settings) -> str | None:
    """The ``Strict-Transport-Security`` value, or ``None`` when it must not be sent."""
    seconds = settings.hsts_seconds
    if seconds is None:
        seconds = HSTS_DEFAULT_SECONDS if settings.public_base_url.startswith("https://") else 0
    return f"max-age={seconds}" if seconds > 0 else None


def init_app(app: Quart) -> None:
    """Install headers, size limits, CORS and the script-free Swagger page.

    Call after ``docs.init_app`` (it replaces quart-schema's Swagger view).

    :raises ConfigurationError: a ``CORS_ALLOWED_ORIGINS`` entry is not an exact origin.
    """
    runtime: Runtime = app.extensions["pulseplan"]
    settings = runtime.settings
    hsts = hsts_header(settings)
    max_query = settings.max_query_string_bytes
    max_headers = settings.max_header_bytes

    @app.before_request
    async def _request_sizes() -> None:
        if len(request.query_string) > max_query:
            raise ApiError(
                f"the query string is longer than {max_query} bytes",
                code="uri_too_long",
                status=414,
            )
        size = sum(len(name) + len(value) + 4 for name, value in request.headers.items())
        if size > max_headers:
            raise ApiError(
                f"the request headers are larger than {max_headers} bytes",
                code="request_header_fields_too_large",
                status=431,
            )

    @app.after_request
    async def _security_headers(response: Response) -> Response:
        headers = response.headers
        headers.update(FIXED_HEADERS)
        headers.setdefault(
            "Content-Security-Policy", DOCS_CSP if request.path in DOCS_PATHS else API_CSP
        )
        if hsts:
            headers["Strict-Transport-Security"] = hsts
        path = request.path
        if (
            path.startswith("/api/v1/")
            and not path.startswith(CACHEABLE_PREFIXES)
            and "json" in (response.mimetype or "")
        ):
            headers.setdefault("Cache-Control", "no-store")
        return response

    cors.init_app(app)
    _swagger_without_inline_script(app)


def _swagger_without_inline_script(app: Quart) -> None:
    if "swagger_ui" not in app.view_functions:
        return
    schema = app.extensions.get("QUART_SCHEMA")
    title = schema.info.title if schema is not None and schema.info is not None else "API"

    @hide
    async def swagger_ui() -> str:
        return await render_template_string(
            SWAGGER_PAGE,
            title=title,
            openapi_url=url_for("openapi"),
            css_url=app.config["QUART_SCHEMA_SWAGGER_CSS_URL"],
            js_url=app.config["QUART_SCHEMA_SWAGGER_JS_URL"],
            init_url=url_for("static", filename="docs/swagger-init.js"),
        )

    app.view_functions["swagger_ui"] = swagger_ui
