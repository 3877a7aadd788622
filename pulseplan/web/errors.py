"""Every error is JSON ``{"detail", "code", "request_id"}``, whatever raised it.

Covers PulsePlan's own :class:`~pulseplan.errors.ApiError`, Werkzeug HTTP errors (404, 405,
413 ...), request validation from quart-schema (422 with field errors, never the rejected input,
which may be a token) and anything unexpected (500 with no internal detail).
"""

from __future__ import annotations

import re
import traceback
from typing import Any

from loguru import logger
from pydantic import ValidationError
from quart import Quart
from quart import Response
from quart import jsonify
from quart.wrappers import Request
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import BadRequest
from werkzeug.exceptions import HTTPException

from pulseplan.errors import ApiError
from pulseplan.observability import sentry
from pulseplan.storage.base import StorageError
from pulseplan.web.request_id import request_id


def error_response(
    status: int,
    detail: str,
    code: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """Build the JSON error response every handler returns."""
    body = {"detail": detail, "code": code, "request_id": request_id(), **extra}
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers or {})
    response.headers["Cache-Control"] = "no-store"
    return response


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def field_errors(exc: Exception) -> list[dict[str, Any]]:
    """Pydantic errors without their ``input``/``ctx`` values (they can hold tokens)."""
    if not isinstance(exc, ValidationError):
        return []
    return [
        {"loc": [str(part) for part in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_input=False, include_url=False, include_context=False)
    ]


class SafeRequest(Request):
    """A request whose body decoding failures are the client's error (400), not ours (500)."""

    def on_json_loading_failed(self, error: Exception) -> Any:
        raise BadRequest("request body is not valid JSON")

    async def get_data(  # type: ignore[override]
        self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False
    ) -> str | bytes:
        try:
            return await super().get_data(cache, as_text, parse_form_data)
        except UnicodeDecodeError:
            raise BadRequest("request body is not valid UTF-8") from None


def init_app(app: Quart) -> None:
    app.request_class = SafeRequest

    @app.errorhandler(ApiError)
    async def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.detail, exc.code, headers=exc.headers, **exc.extra)

    @app.errorhandler(RequestSchemaValidationError)
    async def _validation(exc: RequestSchemaValidationError) -> Response:
        errors = field_errors(exc.validation_error)
        where = ", ".join(".".join(e["loc"]) for e in errors) or "request"
        if not errors:
            detail = "request body is not valid JSON"
        else:
            detail = f"invalid {where}: {errors[0]['msg']}"
        return error_response(422, detail, "validation_error", errors=errors)

    @app.errorhandler(HTTPException)
    async def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        headers = {}
        if status == 405 and exc.get_headers():
            headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
        description = exc.description or exc.name
        if status == 404:
            description = "no such endpoint"
        return error_response(status, description, _snake(exc.name), headers=headers)

    @app.errorhandler(StorageError)
    async def _storage(exc: StorageError) -> Response:
        logger.error("storage unavailable: {}", exc)
        return error_response(
            503,
            "storage is unavailable; retry shortly",
            "storage_unavailable",
            headers={"Retry-After": "2"},
        )

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception) -> Response:
        # Type and place only: the message or locals of an arbitrary exception may hold tokens.
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "unknown"
        # observability: the traceback goes to Sentry (scrubbed) once, not this line as well.
        logger.bind(sentry_skip=True).error(
            "unhandled {} at {} while serving the request", type(exc).__name__, where
        )
        sentry.capture_exception(exc)
        return error_response(500, "internal server error", "internal_error")
