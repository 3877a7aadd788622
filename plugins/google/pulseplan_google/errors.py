"""Google's failure responses mapped to PulsePlan's three error classes (providers.md §1.7,
§1.8 and §6).

Two body shapes reach us: the OAuth one (``{"error", "error_description", "error_subtype"}``)
from the token, revoke and tokeninfo endpoints, and the Google API one
(``{"error": {"code", "message", "status", "errors": [{"reason"}]}}``) whose ``reason`` carries
the rate-limit signal on a 403. Exceptions carry the error *code* and Google's short
description only, never a token or the raw body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from pulseplan import ProviderError
from pulseplan import ProviderMisconfigured
from pulseplan import ProviderUnavailable
from pulseplan import ReconnectRequired
from pulseplan import json_object
from pulseplan.standard import retry_after_seconds
from pulseplan_google.spec import NAME

#: The grant is dead: the user must consent again. ``invalid_grant`` covers every description
#: ("Token has been expired or revoked.", "Bad Request"...); the subtypes are Cloud session
#: control (reauthentication) and are reported as the error so ops can tell them apart.
RECONNECT_ERRORS = frozenset({"invalid_grant", "admin_policy_enforced"})
RECONNECT_SUBTYPES = frozenset({"invalid_rapt", "rapt_required"})
#: The operator must fix the OAuth client (``deleted_client``: unused for six months, §1.6).
CONFIG_ERRORS = frozenset({"invalid_client", "unauthorized_client", "deleted_client"})
#: What Google's own client retries (``google/oauth2/_client.py`` ``_can_retry``).
TRANSIENT_ERRORS = frozenset({"internal_failure", "server_error", "temporarily_unavailable"})
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: Google API throttling answered as 403 (§1.8), plus the newer ``ErrorInfo`` wording.
RATE_LIMIT_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"}
)


@dataclass(frozen=True)
class GoogleError:
    """What a Google error body says, in either shape."""

    error: str | None = None
    description: str | None = None
    subtype: str | None = None
    reasons: frozenset[str] = frozenset()
    status_text: str | None = None


def _text(value: object) -> str | None:
    return value[:200] if isinstance(value, str) and value else None


def _api_error(error: dict[str, Any]) -> GoogleError:
    reasons: set[str] = set()
    for key in ("errors", "details"):
        items = error.get(key)
        if isinstance(items, list):
            reasons.update(
                item["reason"]
                for item in items
                if isinstance(item, dict) and isinstance(item.get("reason"), str)
            )
    status = _text(error.get("status"))
    return GoogleError(
        error=status,
        description=_text(error.get("message")),
        reasons=frozenset(reasons),
        status_text=status,
    )


def parse(response: httpx.Response) -> GoogleError:
    """Read an error body; anything unreadable yields an empty :class:`GoogleError`."""
    body = json_object(response)
    if body is None:
        return GoogleError()
    error = body.get("error")
    if isinstance(error, dict):
        return _api_error(error)
    return GoogleError(
        error=_text(error),
        description=_text(body.get("error_description")),
        subtype=_text(body.get("error_subtype")),
    )


def classify(response: httpx.Response, *, operation: str) -> ProviderError:
    """Map a failed Google response to :class:`ReconnectRequired`,
    :class:`ProviderMisconfigured` or :class:`ProviderUnavailable`.

    Transient signals are checked first: a server-side failure must never mark a grant dead.
    """
    found = parse(response)
    status = response.status_code
    message = f"{operation} failed with HTTP {status}"
    error = found.error or f"http_{status}"
    common: dict[str, Any] = {"provider": NAME, "description": found.description, "status": status}
    retry_after = retry_after_seconds(response)
    if status in TRANSIENT_STATUS or found.error in TRANSIENT_ERRORS:
        return ProviderUnavailable(message, error=error, retry_after=retry_after, **common)
    if found.description in TRANSIENT_ERRORS:
        # Google's client retries when the *description* names a transient condition too.
        return ProviderUnavailable(message, error=error, retry_after=retry_after, **common)
    limited = found.reasons & RATE_LIMIT_REASONS
    if limited or found.status_text == "RESOURCE_EXHAUSTED":
        reason = min(limited) if limited else "RESOURCE_EXHAUSTED"
        return ProviderUnavailable(message, error=reason, retry_after=retry_after, **common)
    if found.error in RECONNECT_ERRORS:
        if found.subtype in RECONNECT_SUBTYPES:
            error = found.subtype
        return ReconnectRequired(message, error=error, **common)
    if found.error in CONFIG_ERRORS:
        return ProviderMisconfigured(message, error=error, **common)
    # invalid_request, invalid_scope, redirect_uri_mismatch, unknown 4xx: the operator's to fix.
    return ProviderMisconfigured(message, error=error, **common)
