"""Per-request observability: the log context, one access line and the HTTP metrics.

The access line has the method, the path *without* its query string (OAuth callbacks carry the
authorization code and state there), the status, ``duration_ms``, the request id and the user
(plain, hashed or omitted per ``LOG_USER_IDS``). Probes and ``/metrics`` scrapes log at DEBUG
so they do not drown real traffic.

The timer is the first ``before_request`` function: a later one (the rate limiter) may answer
early, and that response must still be timed, logged and counted.
"""

from __future__ import annotations

import re
import time

from loguru import logger
from quart import Quart
from quart import Response
from quart import request

from pulseplan.auth.guard import current_agent
from pulseplan.auth.guard import current_user
from pulseplan.observability import context
from pulseplan.observability import metrics
from pulseplan.observability import sentry
from pulseplan.observability.context import Principal
from pulseplan.observability.context import RequestLog
from pulseplan.web.request_id import request_id

PROVIDER = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
UNMATCHED = "<unmatched>"
QUIET_ROUTES = frozenset({"/metrics", "/api/v1/health/live", "/api/v1/health/ready"})
MAX_PATH = 512
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


def _principal() -> Principal | None:
    try:
        return ("user", current_user().id)
    except RuntimeError:
        pass
    try:
        return ("agent", current_agent().id)
    except RuntimeError:
        return None


def log_path() -> str:
    """The request path as logs show it: no query string, no control characters, bounded,
    and a ``<user_id>`` path segment hashed or hidden like any other user id."""
    path = request.path
    user_id = (request.view_args or {}).get("user_id")
    if isinstance(user_id, str) and user_id and context.user_policy() != "plain":
        path = path.replace(user_id, context.render_user(user_id))
    path = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group(0)):02x}", path)
    return path if len(path) <= MAX_PATH else path[:MAX_PATH] + "..."


CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def route_template() -> str:
    """The matched URL rule (``/api/v1/tokens/connections/<provider>``), never the raw path."""
    rule = request.url_rule
    # Drop converter names (<provider:provider> -> <provider>): labels stay stable.
    return CONVERTER.sub(r"<\1>", rule.rule) if rule is not None else UNMATCHED


async def start_request() -> None:
    """Bind the log context and start the clock (first ``before_request`` function)."""
    rid = request_id() or "-"
    provider = (request.view_args or {}).get("provider")
    log = RequestLog(
        request_id=rid,
        method=request.method,
        path=log_path(),
        provider=provider if isinstance(provider, str) and PROVIDER.match(provider) else None,
        resolve_principal=_principal,
    )
    context.bind(log)
    sentry.tag_request(rid)


async def finish_request(response: Response) -> Response:
    """Count the response and write the access line."""
    log = context.current()
    if log is None:  # not a request this module started (cannot happen with init_app)
        return response
    seconds = time.perf_counter() - log.started
    route = route_template()
    status = response.status_code
    metrics.observe_request(request.method, route, status, seconds)
    if status >= 500:
        level = "WARNING"  # the error itself is logged (and reported) where it happened
    elif route in QUIET_ROUTES and status < 400:
        level = "DEBUG"
    else:
        level = "INFO"
    duration_ms = round(seconds * 1000, 1)
    logger.bind(status=status, duration_ms=duration_ms, route=route).log(
        level, "{} {} {} {}ms", request.method, log.path, status, duration_ms
    )
    return response


def init_app(app: Quart) -> None:
    """Time, log and count every request of ``app``."""
    app.before_request_funcs.setdefault(None, []).insert(0, start_request)
    app.after_request(finish_request)
