"""Helpers shared by the token, OAuth and agent routes."""

from __future__ import annotations

import re
import uuid
from datetime import UTC
from datetime import datetime
from typing import Any

from quart import Quart
from quart import Response
from quart import jsonify
from werkzeug.routing import BaseConverter

from pulseplan.broker.results import FreshToken
from pulseplan.broker.results import TokenProblem
from pulseplan.errors import BadRequest
from pulseplan.errors import NotFound
from pulseplan.runtime import current_runtime

PROVIDER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class ProviderConverter(BaseConverter):
    """``<provider:name>``: a provider-shaped path segment, never the literal ``status``, so
    ``/connections/status`` and ``/connections/<provider>`` cannot be confused (and OPTIONS
    advertises only the methods of the route that really matches)."""

    regex = r"(?!status(?![a-z0-9_-]))[a-z][a-z0-9_-]{0,31}"


def init_app(app: Quart) -> None:
    """Register the URL converters the routes use (before the blueprints)."""
    app.url_map.converters["provider"] = ProviderConverter


def known_provider(provider: str) -> str:
    """The provider name if it is enabled here; 404 listing the enabled ones otherwise."""
    enabled = current_runtime().plugins.providers
    if not PROVIDER_NAME.match(provider) or provider not in enabled:
        shown = provider if PROVIDER_NAME.match(provider) else "(invalid name)"
        raise NotFound(
            f"unknown provider {shown}", code="unknown_provider", extra={"providers": enabled}
        )
    return provider


def title(provider: str) -> str:
    """Display name used in the seed's messages ("Google connection stored successfully")."""
    return current_runtime().plugins.spec(provider).display_name


def iso_datetime(value: object) -> object:
    """Pydantic validator (mode ``before``): only ISO 8601 strings, as the schema says.

    Pydantic would otherwise read ``0`` or ``"0.5"`` as a Unix timestamp.
    """
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("must be an ISO 8601 date-time string") from None


def as_utc(value: datetime | None) -> datetime | None:
    """Pydantic validator: naive means UTC (the seed sent naive timestamps); stored as UTC."""
    if value is None:
        return None
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return aware.astimezone(UTC)
    except OverflowError:
        raise ValueError("date-time is out of range") from None


def canonical_uuid(value: str, what: str = "user_id") -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise BadRequest(f"{what} must be a UUID", code="invalid_user_id") from None


def no_store(payload: Any, status: int = 200) -> Response:
    """JSON that carries a token: never cached by browsers or proxies."""
    response = jsonify(payload)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def tokens_body(
    user_id: str, providers: list[str], results: dict[str, FreshToken | TokenProblem]
) -> dict[str, Any]:
    """The seed's ``UserTokens`` shape plus an ``errors`` object for per-provider failures.

    A provider that is simply not connected is ``null`` without an error, as in the seed.
    """
    body: dict[str, Any] = {"user_id": user_id}
    errors: dict[str, Any] = {}
    for provider in providers:
        result = results.get(provider)
        if isinstance(result, FreshToken):
            body[provider] = result.as_json()
            continue
        body[provider] = None
        if isinstance(result, TokenProblem) and result.code != "not_connected":
            errors[provider] = result.as_json()
    body["errors"] = errors
    return body
