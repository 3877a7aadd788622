"""Canvas's error vocabulary mapped onto PulsePlan's three provider errors (providers.md §3.7,
§3.8 and §6).

Where Canvas differs from RFC 6749 and from the host's standard classification:

* a dead refresh token is ``invalid_request`` / "refresh_token not found", not
  ``invalid_grant``: the user must reconnect (the standard treats ``invalid_request`` as the
  operator's problem);
* throttling is a plain-text ``403 Forbidden (Rate Limit Exceeded)``, not a 429: transient;
* ``invalid_client`` (developer key deleted, disabled or its secret rotated) stays
  :class:`~pulseplan.ProviderMisconfigured`. It concerns the key, not one user's grant: every
  connection fails at once and a reconnect cannot succeed until the operator fixes the key, so
  marking every user ``needs_reauth`` would only spam them. Once a new key is configured, the old
  grants answer ``invalid_grant`` ("incorrect client") and are marked for reconnection then;
* a 3xx from the token endpoint (old ``redirect_uri`` error behaviour) carries ``error`` in the
  ``Location`` query; the host's ``parse_error_body`` reads it and the rules above apply.
"""

from __future__ import annotations

import httpx

from pulseplan import ProviderError
from pulseplan import ProviderUnavailable
from pulseplan import ReconnectRequired
from pulseplan.standard import classify as standard_classify
from pulseplan.standard import parse_error_body
from pulseplan.standard import retry_after_seconds

REFRESH_NOT_FOUND = "refresh_token not found"
RATE_LIMIT_TEXT = "rate limit exceeded"
#: ``error`` code for Canvas's plain-text throttling answer, which has none.
RATE_LIMITED = "rate_limit_exceeded"


def is_rate_limited(status: int | None, description: str | None) -> bool:
    """Canvas throttling: HTTP 403 whose body says "Rate Limit Exceeded"."""
    return status == 403 and description is not None and RATE_LIMIT_TEXT in description.lower()


def reclassify(exc: ProviderError) -> ProviderError:
    """Re-map an error the standard implementation raised, by Canvas's rules.

    Only the error's code, description and status are read; nothing else is carried over, so
    no request detail can leak into the new exception.
    """
    if isinstance(exc, ProviderUnavailable):
        return exc
    if is_rate_limited(exc.status, exc.description):
        return ProviderUnavailable(
            exc.message,
            provider=exc.provider,
            error=RATE_LIMITED,
            description=exc.description,
            status=exc.status,
        )
    if exc.error == "invalid_request" and REFRESH_NOT_FOUND in (exc.description or "").lower():
        return ReconnectRequired(
            exc.message,
            provider=exc.provider,
            error=exc.error,
            description=exc.description,
            status=exc.status,
        )
    return exc


def classify(response: httpx.Response, *, provider: str, operation: str) -> ProviderError:
    """Classify a failed Canvas response (token endpoint or API)."""
    status = response.status_code
    _, description = parse_error_body(response)
    if is_rate_limited(status, description):
        return ProviderUnavailable(
            f"{operation} was throttled by Canvas (HTTP 403)",
            provider=provider,
            error=RATE_LIMITED,
            description=description,
            status=status,
            retry_after=retry_after_seconds(response),
        )
    return reclassify(standard_classify(response, provider=provider, operation=operation))
