"""Authentication errors: one exception type with a machine ``code`` saying why.

Every detail string here is fixed text chosen by PulsePlan. Nothing from the presented
credential (token, header values, claim values, library messages that quote them) ever reaches
``detail``, the response headers or ``str(exc)``: the caller may log the error, and a bearer
token in a log line is a stolen session.
"""

from __future__ import annotations

from typing import Final

from pulseplan.errors import Unauthorized

#: Fixed, operator- and client-facing text for each code. Codes are part of the HTTP contract.
DETAILS: Final[dict[str, str]] = {
    "missing_token": "a bearer token is required",
    "malformed_token": "the bearer token is malformed",
    "unsupported_header": "the token header uses an unsupported parameter",
    "unsupported_algorithm": "the token's signing algorithm is not accepted",
    "unknown_key": "the token was signed with an unknown key",
    "bad_signature": "the token signature is invalid",
    "expired": "the token has expired",
    "not_yet_valid": "the token is not valid yet",
    "missing_claim": "the token lacks a required claim",
    "wrong_audience": "the token is not meant for this service",
    "wrong_issuer": "the token was not issued by the configured Supabase project",
    "bad_subject": "the token subject is not a user id",
    "not_a_user_token": "the token is not a signed-in user's token",
    "anonymous_user": "anonymous users may not use this service",
    "unknown_agent": "the agent credential is not valid",
    "revoked_agent": "the agent credential has been revoked",
    "provider_not_allowed": "this agent may not access that provider",
    "agents_unavailable": "agent authentication is not configured",
    "keys_unavailable": "token signing keys are temporarily unavailable; retry shortly",
}

#: Codes that are not "your credential is bad" 401s, with their HTTP status.
STATUS: Final[dict[str, int]] = {
    "anonymous_user": 403,
    "provider_not_allowed": 403,
    "agents_unavailable": 503,
    "keys_unavailable": 503,
}


class AuthError(Unauthorized):
    """A caller could not be authenticated (or, for a few codes, authorized).

    ``code`` is one of :data:`DETAILS`. The status is 401 unless :data:`STATUS` says otherwise
    (503 for ``keys_unavailable``: the caller did nothing wrong and should retry).

    :param code: the machine reason.
    :param detail: override the fixed text; must never contain credential material.
    :param retry_after: seconds, sent as ``Retry-After`` on 503s.
    """

    def __init__(
        self, code: str, *, detail: str | None = None, retry_after: float | None = None
    ) -> None:
        if code not in DETAILS:
            raise ValueError(f"unknown auth error code {code!r}")
        status = STATUS.get(code, 401)
        super().__init__(detail or DETAILS[code], code=code, status=status)
        self.headers = _headers(code, status, retry_after)

    def __repr__(self) -> str:
        return f"AuthError(code={self.code!r}, status={self.status})"


def _headers(code: str, status: int, retry_after: float | None) -> dict[str, str]:
    if status == 503:
        return {"Retry-After": str(max(1, round(retry_after)))} if retry_after else {}
    if status == 403:
        # RFC 6750 §3.1: the credential is fine, the request needs more than it grants.
        return {"WWW-Authenticate": 'Bearer realm="pulseplan", error="insufficient_scope"'}
    if code == "missing_token":
        # RFC 6750 §3.1: no error code when the request carried no credential at all.
        return {"WWW-Authenticate": 'Bearer realm="pulseplan"'}
    return {"WWW-Authenticate": 'Bearer realm="pulseplan", error="invalid_token"'}
