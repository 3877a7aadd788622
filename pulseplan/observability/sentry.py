"""Error reporting to Sentry when ``SENTRY_DSN`` is set, scrubbed before anything leaves.

What is collected is restricted at the source (no user data, cookies, query strings, bodies or
frame local variables; ``data_collection`` on SDKs that have it, ``send_default_pii=False`` and
friends on older ones), and every event, transaction and breadcrumb is scrubbed again by
:func:`before_send` / :func:`before_breadcrumb` with the same :mod:`redact` rules as the logs:
the SDK's defaults change between versions, this does not.

Integrations: Quart (request context and transactions) and Loguru (ERROR lines become events,
INFO and up become breadcrumbs). The standard library's ``logging`` integration is turned off:
stdlib records already reach loguru through :mod:`pulseplan.observability.stdlib`, after
redaction, and would otherwise be reported twice. The asyncio integration is not used: it needs a
running loop at ``init`` time, and PulsePlan's background tasks report their own failures.

Outgoing requests carry no ``sentry-trace``/``baggage`` headers (``trace_propagation_targets``
is empty): provider token endpoints have no business receiving our trace ids.
"""

from __future__ import annotations

from typing import Any

import sentry_sdk
from sentry_sdk.consts import DEFAULT_OPTIONS
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.integrations.loguru import LoguruIntegration
from sentry_sdk.integrations.quart import QuartIntegration
from sentry_sdk.transport import Transport

from pulseplan import __version__
from pulseplan.observability.redact import REDACTED
from pulseplan.observability.redact import is_sensitive_key
from pulseplan.observability.redact import redact
from pulseplan.observability.redact import redact_text
from pulseplan.observability.redact import strip_url
from pulseplan.settings import Settings

#: A log line bound with ``sentry_skip=True`` is not turned into an event (the caller reports
#: the exception itself, with its traceback).
SKIP = "sentry_skip"
#: Tests replace this with an in-memory transport; ``None`` is the SDK's HTTP transport.
TRANSPORT: type[Transport] | Transport | None = None

SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
        "x-csrf-token",
        "x-forwarded-for",
        "x-real-ip",
        "forwarded",
        "remote-addr",
    }
)
_QUERY_KEYS = ("query_string", "http.query", "http.fragment", "query")

#: What the SDK may collect at all (sentry-sdk >= 2.7x ``data_collection``).
DATA_COLLECTION: dict[str, Any] = {
    "user_info": False,
    "cookies": {"mode": "off"},
    "http_headers": {"request": {"mode": "denylist", "terms": sorted(SENSITIVE_HEADERS)}},
    "http_bodies": [],
    "url_query_params": {"mode": "off"},
    "database_query_data": False,
    "queues": False,
    "stack_frame_variables": False,
}


def sentry_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments for ``sentry_sdk.init`` (without the DSN)."""
    options: dict[str, Any] = {
        "environment": settings.sentry_environment or settings.pulseplan_env,
        "release": settings.sentry_release or f"pulseplan@{__version__}",
        "sample_rate": settings.sentry_sample_rate,
        "traces_sample_rate": settings.sentry_traces_sample_rate,
        "integrations": [
            QuartIntegration(),
            LoguruIntegration(),
            LoggingIntegration(level=None, event_level=None),
        ],
        "before_send": before_send,
        "before_send_transaction": before_send,
        "before_breadcrumb": before_breadcrumb,
        "include_local_variables": False,
        "max_request_body_size": "never",
        "trace_propagation_targets": [],
        "in_app_include": ["pulseplan"],
    }
    if "data_collection" in DEFAULT_OPTIONS:
        options["data_collection"] = DATA_COLLECTION
    else:  # pragma: no cover - older SDKs; the option is deprecated (and warns) on newer ones
        options["send_default_pii"] = False
    return options


def init_sentry(settings: Settings) -> bool:
    """Start the Sentry client if ``SENTRY_DSN`` is set; returns whether it did."""
    dsn = settings.secret("sentry_dsn")
    if not dsn:
        return False
    if enabled():
        sentry_sdk.get_client().close(timeout=0)
    options = sentry_options(settings)
    if TRANSPORT is not None:
        options["transport"] = TRANSPORT
    sentry_sdk.init(dsn=dsn, **options)
    return True


def enabled() -> bool:
    """Whether a Sentry client that can send is active in this process."""
    client = sentry_sdk.get_client()
    return client.is_active() and client.transport is not None


def capture_exception(exc: BaseException) -> None:
    """Report ``exc`` (an unexpected error a handler turned into a 500) if Sentry is on."""
    if enabled():
        sentry_sdk.capture_exception(exc)


def tag_request(request_id: str) -> None:
    """Tag the current request's events so they can be found from a log line."""
    if enabled():
        sentry_sdk.set_tag("request_id", request_id)


# --------------------------------------------------------------------------- scrubbing


def _headers(headers: Any) -> dict[str, Any]:
    if not isinstance(headers, dict):
        return {}
    return {
        name: REDACTED
        if str(name).lower() in SENSITIVE_HEADERS or is_sensitive_key(name)
        else redact_text(str(value))
        for name, value in headers.items()
    }


def _scrub_request(request: dict[str, Any]) -> None:
    for key in ("cookies", "data", "env"):
        request.pop(key, None)
    for key in _QUERY_KEYS:
        if key in request:
            request[key] = ""
    if isinstance(request.get("url"), str):
        request["url"] = strip_url(request["url"])
    if "headers" in request:
        request["headers"] = _headers(request["headers"])


def _scrub_stacktrace(holder: Any) -> None:
    if not isinstance(holder, dict):
        return
    frames = (holder.get("stacktrace") or {}).get("frames") or []
    for frame in frames:
        if isinstance(frame, dict):
            frame.pop("vars", None)  # every local: the safe choice in a token vault


def _scrub_exceptions(event: dict[str, Any]) -> None:
    for value in (event.get("exception") or {}).get("values") or []:
        if not isinstance(value, dict):
            continue
        if isinstance(value.get("value"), str):
            value["value"] = redact_text(value["value"], aggressive=True)
        _scrub_stacktrace(value)
    for thread in (event.get("threads") or {}).get("values") or []:
        _scrub_stacktrace(thread)


def _scrub_data(data: Any) -> Any:
    if not isinstance(data, dict):
        return redact(data)
    cleaned = {k: v for k, v in data.items() if k not in _QUERY_KEYS}
    for key in ("url", "http.url"):
        if isinstance(cleaned.get(key), str):
            cleaned[key] = strip_url(cleaned[key])
    return redact(cleaned)


def _scrub_spans(event: dict[str, Any]) -> None:
    for span in event.get("spans") or []:
        if not isinstance(span, dict):
            continue
        if isinstance(span.get("description"), str):
            span["description"] = redact_text(span["description"].split("?", 1)[0])
        if "data" in span:
            span["data"] = _scrub_data(span["data"])


def scrub_event(event: dict[str, Any]) -> dict[str, Any]:
    """Remove or redact everything secret-shaped in a Sentry event or transaction."""
    event.pop("user", None)
    event.pop("_meta", None)  # annotations of fields that no longer exist after scrubbing
    if isinstance(event.get("request"), dict):
        _scrub_request(event["request"])
    _scrub_exceptions(event)
    _scrub_spans(event)
    crumbs = event.get("breadcrumbs")
    values = crumbs.get("values") if isinstance(crumbs, dict) else crumbs
    if isinstance(values, list):
        values[:] = [scrub_breadcrumb(c) for c in values if isinstance(c, dict)]
    cleaned: dict[str, Any] = redact(event)  # extra, contexts, tags, logentry, messages
    return cleaned


def scrub_breadcrumb(crumb: dict[str, Any]) -> dict[str, Any]:
    """Redact a breadcrumb's message and data (URLs lose their query string)."""
    if isinstance(crumb.get("message"), str):
        crumb["message"] = redact_text(crumb["message"])
    if "data" in crumb:
        crumb["data"] = _scrub_data(crumb["data"])
    return crumb


def _skipped(event: dict[str, Any]) -> bool:
    extra = event.get("extra")
    if not isinstance(extra, dict):
        return False
    record = extra.get("extra")  # the loguru integration nests the record's extras here
    return extra.get(SKIP) is True or (isinstance(record, dict) and record.get(SKIP) is True)


def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    """Sentry ``before_send`` (and ``before_send_transaction``) hook; an event that cannot be
    scrubbed is dropped, never sent as it is."""
    try:
        if _skipped(event):
            return None
        return scrub_event(event)
    except Exception:
        return None


def before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    """Sentry ``before_breadcrumb`` hook (same policy as :func:`before_send`)."""
    try:
        return scrub_breadcrumb(crumb)
    except Exception:
        return None
