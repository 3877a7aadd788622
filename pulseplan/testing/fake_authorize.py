"""The authorization endpoint and its consent step.

Errors about the client or the redirect URI are shown on the provider's page and never
redirected (RFC 6749 §4.1.2.1); every other outcome is a 302 back to ``redirect_uri`` with
``code`` or ``error`` and the ``state`` echoed exactly.

Who consents, and to what, is decided in this order: a ``fake_session`` cookie set by
``FakeProvider.consent`` (a decision made for that one request), then the queue filled by
``deny_next``/``next_consent``, then manual mode (the request waits as a
:class:`PendingConsent` for ``approve``/``deny``), then auto-approval as the default account.
"""

from __future__ import annotations

import re
import secrets
from http.cookies import CookieError
from http.cookies import SimpleCookie
from urllib.parse import urlencode
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from pulseplan.testing.fake_core import ConsentDecision
from pulseplan.testing.fake_core import Core
from pulseplan.testing.fake_core import PendingConsent
from pulseplan.testing.fake_core import Trace
from pulseplan.testing.fake_http import Reply
from pulseplan.testing.fake_http import Request

SESSION_COOKIE = "fake_session"
#: RFC 7636 §4.2: 43-128 unreserved characters (an S256 challenge is always 43).
CHALLENGE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def callback_url(redirect_uri: str, **params: str | None) -> str:
    """``redirect_uri`` with ``params`` appended to its query (RFC 6749 §4.1.2)."""
    parts = urlsplit(redirect_uri)
    extra = urlencode([(k, v) for k, v in params.items() if v is not None])
    query = f"{parts.query}&{extra}" if parts.query and extra else (parts.query or extra)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def absolute_uri(value: str) -> bool:
    parts = urlsplit(value)
    return bool(parts.scheme and parts.netloc) and not parts.fragment


def split_scopes(value: str | None) -> tuple[str, ...]:
    return tuple(s for s in (value or "").split(" ") if s)


def session_ticket(request: Request) -> str | None:
    raw = request.header("cookie")
    if not raw:
        return None
    try:
        cookie = SimpleCookie(raw)
    except CookieError:
        return None
    morsel = cookie.get(SESSION_COOKIE)
    return morsel.value if morsel is not None else None


def authorize(core: Core, request: Request, tenant: str, trace: Trace) -> Reply:
    """Serve ``GET`` on the authorization endpoint."""
    profile = core.profile
    params = {k: v[0] for k, v in request.query.items() if v}
    client_id = params.get("client_id", "")
    trace.client_id = client_id or None
    with core.lock:
        client = core.clients.get(client_id)
    if client is None:
        trace.error = "client_unknown"
        return profile.page_error("unknown client_id")
    redirect_uri = params.get("redirect_uri", "")
    if not absolute_uri(redirect_uri):
        trace.error = "redirect_uri"
        return profile.page_error("redirect_uri is missing or not an absolute URI")
    if client.redirect_uris is not None and redirect_uri not in client.redirect_uris:
        trace.error = "redirect_uri"
        return profile.page_error("redirect_uri is not registered for this client")
    state = params.get("state")

    def refuse(error: str, description: str | None = None) -> Reply:
        trace.error = error
        return Reply.redirect(
            callback_url(redirect_uri, error=error, error_description=description, state=state)
        )

    if params.get("response_type") != "code":
        return refuse("unsupported_response_type")
    problem = profile.authorize_problem(params)
    if problem is not None:
        return refuse(*problem)
    challenge = params.get("code_challenge") if profile.pkce_supported else None
    if challenge is not None:
        if params.get("code_challenge_method", "plain") != "S256":
            return refuse("invalid_request", "code_challenge_method must be S256")
        if not CHALLENGE.fullmatch(challenge):
            return refuse("invalid_request", "malformed code_challenge")
    elif profile.pkce_supported and core.config.require_pkce:
        return refuse("invalid_request", "code_challenge is required")
    if challenge is not None:
        params["code_challenge"] = challenge

    ticket = session_ticket(request)
    with core.lock:
        decision = core.tickets.pop(ticket, None) if ticket else None
        if decision is None and core.queued:
            decision = core.queued.popleft()
        if decision is None and core.config.consent_mode == "manual":
            pending = PendingConsent(
                pending_id=secrets.token_hex(8),
                client_id=client_id,
                redirect_uri=redirect_uri,
                scopes=split_scopes(params.get("scope")),
                tenant=tenant,
                params=params,
            )
            core.pending[pending.pending_id] = pending
            body = {
                "consent": "pending",
                "pending_id": pending.pending_id,
                "client_id": client_id,
                "scopes": list(pending.scopes),
            }
            return Reply.json(200, body)
    location = decide(core, params, tenant, decision or ConsentDecision())
    if "error=" in urlsplit(location).query and "code=" not in urlsplit(location).query:
        trace.error = "denied"
    return Reply.redirect(location)


def decide(core: Core, params: dict[str, str], tenant: str, decision: ConsentDecision) -> str:
    """Apply a consent decision to a validated authorization request; return the callback."""
    redirect_uri, state = params["redirect_uri"], params.get("state")
    if decision.deny:
        return callback_url(
            redirect_uri, error=decision.error, error_description=decision.description, state=state
        )
    config, profile = core.config, core.profile
    requested = split_scopes(params.get("scope"))
    with core.lock:
        account = decision.account or config.default_account
        if decision.scopes is not None:
            granted = decision.scopes
        else:
            granted = tuple(s for s in requested if s not in config.dropped_scopes)
        repeat = core.ledger.live_grants(params["client_id"], account.user_id) > 0
        code = core.ledger.issue_code(
            config.code_ttl,
            client_id=params["client_id"],
            redirect_uri=redirect_uri,
            scopes=granted,
            account=account,
            offline=profile.offline(params, requested, repeat),
            tenant=tenant,
            challenge=params.get("code_challenge"),
            nonce=params.get("nonce"),
        )
        iss = profile.base_url if config.authorization_response_iss else None
    return callback_url(redirect_uri, code=code, state=state, iss=iss)
