"""CORS for browser app clients: an explicit origin allow-list, nothing else.

``CORS_ALLOWED_ORIGINS`` lists exact origins (``https://app.example.com``). A request whose
``Origin`` is on the list gets ``Access-Control-Allow-Origin: <that origin>``; any other origin
gets no CORS header at all, so the browser keeps the response from the page. There is no
wildcard, and ``Access-Control-Allow-Credentials`` is never sent: app clients authenticate with
``Authorization: Bearer`` (a request header the preflight allows), not with cookies, so nothing
needs credentialed CORS. Preflights (``OPTIONS`` with ``Access-Control-Request-Method``) from an
allowed origin are answered here with 204; from other origins they fall through to Quart's
plain ``OPTIONS`` answer, without CORS headers.

This is the small subset of quart-cors the API needs (quart-cors is not a dependency).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

from quart import Quart
from quart import Response
from quart import request

from pulseplan.errors import ConfigurationError
from pulseplan.runtime import Runtime

ALLOWED_METHODS: Final = ("GET", "POST", "DELETE")
ALLOWED_HEADERS: Final = ("Authorization", "Content-Type", "X-Request-ID")
#: Response headers a page may read besides the CORS-safelisted ones.
EXPOSED_HEADERS: Final = (
    "X-Request-ID",
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)
DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def normalize_origin(value: str) -> str:
    """``HTTPS://App.Example.com:443`` -> ``https://app.example.com``.

    :raises ValueError: not an ``http(s)://host[:port]`` origin (a path, ``*`` or ``null``).
    """
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise ValueError(f"{value!r} is not an origin") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s)://host[:port] origin")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{value!r} is not an origin (no path, query or user info)")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port is None or port == DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def parse_origins(values: Iterable[str]) -> frozenset[str]:
    """Validate ``CORS_ALLOWED_ORIGINS``.

    :raises ConfigurationError: one line per value that is not an exact origin.
    """
    origins, problems = set(), []
    for value in values:
        if value.strip() == "*":
            problems.append("CORS_ALLOWED_ORIGINS must list origins; '*' is not allowed")
            continue
        try:
            origins.add(normalize_origin(value))
        except ValueError as exc:
            problems.append(f"CORS_ALLOWED_ORIGINS: {exc}")
    if problems:
        raise ConfigurationError(problems)
    return frozenset(origins)


def init_app(app: Quart) -> None:
    """Answer preflights and add CORS headers for ``CORS_ALLOWED_ORIGINS`` (off when empty).

    :raises ConfigurationError: an entry is not an exact origin.
    """
    runtime: Runtime = app.extensions["pulseplan"]
    origins = parse_origins(runtime.settings.cors_allowed_origins)
    if not origins:
        return
    max_age = str(runtime.settings.cors_max_age)

    def allowed_origin() -> str | None:
        origin = request.headers.get("Origin")
        if origin is None:
            return None
        try:
            known = normalize_origin(origin) in origins
        except ValueError:
            return None
        # Echo the header as sent: the browser compares it byte for byte with its own.
        return origin if known else None

    @app.before_request
    async def _preflight() -> Response | None:
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        origin = allowed_origin()
        if origin is None:
            return None
        return Response(
            "",
            status=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ", ".join(ALLOWED_METHODS),
                "Access-Control-Allow-Headers": ", ".join(ALLOWED_HEADERS),
                "Access-Control-Max-Age": max_age,
            },
        )

    @app.after_request
    async def _cors_headers(response: Response) -> Response:
        # The answer depends on Origin, so caches must key on it, whatever the origin was.
        response.vary.add("Origin")
        origin = allowed_origin()
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            if request.method != "OPTIONS":
                response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
        return response
