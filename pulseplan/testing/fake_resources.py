"""Bearer-authenticated identity endpoints, Google tokeninfo, Notion introspection, and the
three revocation styles: RFC 7009 form POST, Canvas ``DELETE`` and Notion JSON POST."""

from __future__ import annotations

from pulseplan.testing.fake_canvas import CanvasProfile
from pulseplan.testing.fake_core import Core
from pulseplan.testing.fake_core import Trace
from pulseplan.testing.fake_google import GoogleProfile
from pulseplan.testing.fake_http import Reply
from pulseplan.testing.fake_http import Request
from pulseplan.testing.fake_notion import NotionProfile
from pulseplan.testing.fake_state import Denied
from pulseplan.testing.fake_state import Reason
from pulseplan.testing.fake_token import authenticate
from pulseplan.testing.fake_token import parse_body


def bearer(core: Core, request: Request) -> str | None:
    """The bearer token from ``Authorization`` or, where the profile allows, the query."""
    header = request.header("authorization") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    name = core.profile.bearer_query_param
    return request.param(name) if name else None


def identity(core: Core, request: Request, endpoint: str, trace: Trace) -> Reply:
    """Userinfo-style endpoints: 401 for a missing, unknown, expired or revoked token."""
    token = bearer(core, request)
    if not token:
        trace.error = "missing_token"
        return core.profile.unauthorized(True)
    with core.lock:
        record = core.ledger.access(token)
    if record is None:
        trace.error = "invalid_token"
        return core.profile.unauthorized(False)
    return core.profile.identity(endpoint, record)


def tokeninfo(core: Core, request: Request, trace: Trace) -> Reply:
    profile = core.profile
    assert isinstance(profile, GoogleProfile)
    token = request.param("access_token")
    if token is None and request.method == "POST":
        try:
            token = parse_body(core, request, trace).get("access_token")
        except Denied:
            token = None
    with core.lock:
        record = core.ledger.access(token)
        now = core.ledger.now()
    if record is None:
        trace.error = "invalid_token"
    return profile.tokeninfo(record, now)


def introspect(core: Core, request: Request, trace: Trace) -> Reply:
    profile = core.profile
    assert isinstance(profile, NotionProfile)
    try:
        fields = parse_body(core, request, trace)
        authenticate(core, request, fields, trace)
        token = fields.get("token")
        if not token:
            raise Denied(Reason.INVALID_REQUEST, "token is required")
    except Denied as denied:
        trace.error = denied.reason.value
        return profile.error(denied.reason, denied.detail)
    with core.lock:
        record = core.ledger.access(token)
    return profile.introspect(record)


def revoke(core: Core, request: Request, trace: Trace) -> Reply:
    """Revoke a token; a refresh token always ends its whole grant (RFC 7009 §2.1)."""
    profile = core.profile
    if profile.revoke_style == "canvas_delete":
        return canvas_delete(core, request, trace)
    client = None
    try:
        fields = parse_body(core, request, trace)
        if profile.revoke_requires_client_auth:
            client = authenticate(core, request, fields, trace)
        # Google also takes ?token= on the URL.
        token = fields.get("token") or request.param("token")
        if not token:
            raise Denied(Reason.INVALID_REQUEST, "token is required")
    except Denied as denied:
        trace.error = denied.reason.value
        return profile.error(denied.reason, denied.detail)
    with core.lock:
        ledger = core.ledger
        record = ledger.tokens.get(token)
        if record is None or not ledger.valid(record):
            trace.error = "unknown_token"
            return profile.revoke_unknown()
        if client is not None and record.grant.client_id != client.client_id:
            trace.error = "wrong_client"
            return profile.oauth_error(400, "invalid_request", "token issued to another client")
        scope = "grant" if record.kind == "refresh" else profile.revoke_access_scope
        if scope == "token":
            record.revoked = True
        elif scope == "grant":
            ledger.revoke_grant(record.grant, "revoked")
        else:
            for grant in ledger.grants:
                if (
                    grant.client_id == record.grant.client_id
                    and grant.account.user_id == record.grant.account.user_id
                ):
                    ledger.revoke_grant(grant, "revoked")
    return profile.revoked()


def canvas_delete(core: Core, request: Request, trace: Trace) -> Reply:
    """``DELETE /login/oauth2/token``: destroys the AccessToken record (access + refresh).

    Whether Canvas accepts an *expired* access token here is unverified (providers.md §7.3);
    the fake refuses it with a 401, so a plugin must refresh before revoking.
    """
    profile = core.profile
    token = bearer(core, request)
    if not token:
        trace.error = "missing_token"
        assert isinstance(profile, CanvasProfile)
        return profile.not_an_oauth_request()
    with core.lock:
        record = core.ledger.access(token)
        if record is None:
            trace.error = "invalid_token"
            return profile.unauthorized(False)
        core.ledger.revoke_grant(record.grant, "revoked")
    return Reply.json(200, {})
