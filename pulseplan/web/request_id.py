"""Request ids: taken from ``X-Request-ID`` when well-formed, generated otherwise, echoed in the
response and available to logs and error bodies."""

from __future__ import annotations

import re
import uuid

from quart import Quart
from quart import Response
from quart import g
from quart import has_request_context
from quart import request

HEADER = "X-Request-ID"
# Strict on purpose: the value goes into logs and headers, so nothing that could forge a log
# line or smuggle a header.
VALID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def request_id() -> str | None:
    """The current request's id, or ``None`` outside a request."""
    if not has_request_context():
        return None
    if "request_id" not in g:
        incoming = request.headers.get(HEADER, "")
        g.request_id = incoming if VALID.match(incoming) else uuid.uuid4().hex
    value: str = g.request_id
    return value


def init_app(app: Quart) -> None:
    @app.before_request
    async def _assign() -> None:
        request_id()

    @app.after_request
    async def _echo(response: Response) -> Response:
        rid = request_id()
        if rid:
            response.headers[HEADER] = rid
        return response
