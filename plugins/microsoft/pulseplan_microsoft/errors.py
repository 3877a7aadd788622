"""Microsoft identity platform failures mapped to PulsePlan's three error classes
(providers.md §2.7 and §6).

Microsoft asks clients to branch on ``error``; the AADSTS number (``error_codes`` or the
``AADSTS<n>:`` prefix of ``error_description``) refines that where the table below knows it,
e.g. ``invalid_grant`` + AADSTS54005 (code already redeemed) is the operator's problem, not a
dead grant. A 5xx, 408 or 429 is transient whatever the body says: a server-side failure must
never mark a connection dead.

Exceptions carry ``error`` (the OAuth code) and a description made of the AADSTS number, our
own label and Microsoft's trace/correlation ids, never Microsoft's free text (some AADSTS
messages quote the user's sign-in name) and never a token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from typing import Literal

import httpx

from pulseplan import ProviderError
from pulseplan import ProviderMisconfigured
from pulseplan import ProviderUnavailable
from pulseplan import ReconnectRequired
from pulseplan import json_object
from pulseplan.standard import retry_after_seconds
from pulseplan_microsoft.spec import NAME

Bucket = Literal["reconnect", "config", "transient"]

#: AADSTS number -> (bucket, label). providers.md §2.7, from Microsoft's reference-error-codes.
AADSTS: dict[int, tuple[Bucket, str]] = {
    # The user must sign in and consent again.
    70008: ("reconnect", "refresh token or code expired or revoked"),
    700082: ("reconnect", "refresh token expired due to inactivity"),
    50173: ("reconnect", "grant revoked; a fresh sign-in is needed"),
    700084: ("reconnect", "single-page-app refresh token lifetime ended"),
    70043: ("reconnect", "Conditional Access sign-in frequency reached"),
    50089: ("reconnect", "flow token expired"),
    50076: ("reconnect", "multi-factor authentication required"),
    50079: ("reconnect", "multi-factor registration required"),
    50078: ("reconnect", "multi-factor authentication expired"),
    50074: ("reconnect", "strong authentication required"),
    65001: ("reconnect", "consent missing"),
    50132: ("reconnect", "session invalid after a password change"),
    50133: ("reconnect", "session invalid after password expiry"),
    50055: ("reconnect", "password expired"),
    50057: ("reconnect", "user account disabled"),
    53003: ("reconnect", "blocked by Conditional Access"),
    70000: ("reconnect", "grant invalid or malformed"),
    # The operator must fix the app registration or the configuration.
    7000215: ("config", "invalid client secret"),
    7000222: ("config", "client secret expired"),
    700016: ("config", "application not found in the directory"),
    70001: ("config", "application disabled"),
    7000112: ("config", "application disabled"),
    50011: ("config", "redirect URI does not match the registration"),
    50194: ("config", "single-tenant app used with a multi-tenant authority"),
    9002332: ("config", "app does not accept personal accounts on /consumers"),
    54005: ("config", "authorization code already redeemed"),
    # Retry later.
    50196: ("transient", "request loop detected"),
    90024: ("transient", "request budget exceeded"),
    50033: ("transient", "retryable error"),
    90006: ("transient", "transient error"),
    90090: ("transient", "transient error"),
    50087: ("transient", "transient error"),
    40010: ("transient", "transient error"),
    90055: ("transient", "tenant throttled"),
    70012: ("transient", "Microsoft account server error"),
    80014: ("transient", "pass-through authentication timed out"),
}
RECONNECT_ERRORS = frozenset(
    {"invalid_grant", "interaction_required", "consent_required", "login_required"}
)
CONFIG_ERRORS = frozenset({"invalid_client", "unauthorized_client"})
TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
AADSTS_PREFIX = re.compile(r"^\s*AADSTS(\d{4,9})\b")


@dataclass(frozen=True)
class EntraError:
    """What an Entra ID error body says."""

    error: str | None = None
    code: int | None = None
    trace_id: str | None = None
    correlation_id: str | None = None


def _code(body: dict[str, Any]) -> int | None:
    codes = body.get("error_codes")
    if isinstance(codes, list) and codes and isinstance(codes[0], int):
        return codes[0]
    description = body.get("error_description")
    if isinstance(description, str):
        found = AADSTS_PREFIX.match(description)
        if found:
            return int(found.group(1))
    return None


def _ident(value: object) -> str | None:
    return value if isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F-]{1,64}", value) else None


def parse(response: httpx.Response) -> EntraError:
    """Read an error body; an unreadable one yields an empty :class:`EntraError`."""
    body = json_object(response)
    if body is None:
        return EntraError()
    error = body.get("error")
    if isinstance(error, dict):
        # Microsoft Graph: {"error": {"code": "InvalidAuthenticationToken", "message": ...}}.
        error = error.get("code")
    return EntraError(
        error=error[:100] if isinstance(error, str) and error else None,
        code=_code(body),
        trace_id=_ident(body.get("trace_id")),
        correlation_id=_ident(body.get("correlation_id")),
    )


def bucket(found: EntraError, status: int) -> Bucket:
    """Which class a failure belongs to: status first (transient), then the AADSTS table,
    then the OAuth ``error``; anything else is the operator's to look at."""
    if status in TRANSIENT_STATUS or status >= 500:  # 501, 520... are not the user's doing
        return "transient"
    if found.code is not None and found.code in AADSTS:
        return AADSTS[found.code][0]
    if found.error in TRANSIENT_ERRORS:
        return "transient"
    if found.error in RECONNECT_ERRORS:
        return "reconnect"
    return "config"


def describe(found: EntraError) -> str | None:
    """A description safe to log: AADSTS number, our label, Microsoft's trace ids."""
    parts: list[str] = []
    if found.code is not None:
        label = AADSTS.get(found.code, (None, None))[1]
        parts.append(f"AADSTS{found.code}" + (f" ({label})" if label else ""))
    if found.trace_id:
        parts.append(f"trace_id={found.trace_id}")
    if found.correlation_id:
        parts.append(f"correlation_id={found.correlation_id}")
    return "; ".join(parts) or None


def classify(response: httpx.Response, *, operation: str) -> ProviderError:
    """Map a failed Microsoft response to :class:`ReconnectRequired`,
    :class:`ProviderMisconfigured` or :class:`ProviderUnavailable`."""
    found = parse(response)
    status = response.status_code
    message = f"{operation} failed with HTTP {status}"
    common: dict[str, Any] = {
        "provider": NAME,
        "error": found.error or (f"AADSTS{found.code}" if found.code else f"http_{status}"),
        "description": describe(found),
        "status": status,
    }
    kind = bucket(found, status)
    if kind == "transient":
        return ProviderUnavailable(message, retry_after=retry_after_seconds(response), **common)
    if kind == "reconnect":
        return ReconnectRequired(message, **common)
    return ProviderMisconfigured(message, **common)
