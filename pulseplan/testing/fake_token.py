"""The token endpoint: body parsing, client authentication, the ``authorization_code`` and
``refresh_token`` grants, and the rotation policy."""

from __future__ import annotations

import base64
import binascii
import json
from urllib.parse import parse_qsl
from urllib.parse import unquote_plus

from pulseplan.testing.fake_core import Core
from pulseplan.testing.fake_core import Trace
from pulseplan.testing.fake_faults import Fault
from pulseplan.testing.fake_faults import fault_reply
from pulseplan.testing.fake_http import Reply
from pulseplan.testing.fake_http import Request
from pulseplan.testing.fake_profile_base import TokenContext
from pulseplan.testing.fake_state import ClientApp
from pulseplan.testing.fake_state import Denied
from pulseplan.testing.fake_state import Grant
from pulseplan.testing.fake_state import Reason
from pulseplan.testing.fake_state import TokenRecord

GRANT_QUEUES = {"authorization_code": "code", "refresh_token": "refresh"}
PKCE_REASONS = frozenset({Reason.PKCE_MISSING, Reason.PKCE_MISMATCH, Reason.PKCE_UNEXPECTED})


def parse_body(core: Core, request: Request, trace: Trace) -> dict[str, str]:
    """Form (RFC 6749 appendix B) or JSON object body -> string fields.

    :raises Denied: wrong format for the profile, undecodable, repeated or non-string fields.
    """
    media = request.media_type
    if media == "application/json":
        body_format = "json"
    elif media in ("application/x-www-form-urlencoded", "") and not (
        media == "" and request.body.lstrip().startswith(b"{")
    ):
        body_format = "form"
    else:
        raise Denied(Reason.BODY_FORMAT, "unsupported content type")
    trace.body_format = body_format
    if body_format not in core.profile.body_formats:
        allowed = " or ".join(sorted(core.profile.body_formats))
        raise Denied(Reason.BODY_FORMAT, f"the body must be {allowed}")
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise Denied(Reason.INVALID_REQUEST, "the body is not UTF-8") from None
    if body_format == "json":
        try:
            data = json.loads(text or "{}")
        except ValueError:
            raise Denied(Reason.BODY_FORMAT, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise Denied(Reason.INVALID_REQUEST, "the body must be a JSON object")
        if any(v is not None and not isinstance(v, str) for v in data.values()):
            raise Denied(Reason.INVALID_REQUEST, "parameters must be strings")
        return {str(k): v for k, v in data.items() if isinstance(v, str)}
    pairs = parse_qsl(text, keep_blank_values=True)
    fields = dict(pairs)
    if len(fields) != len(pairs):
        # RFC 6749 §3.2: parameters MUST NOT be included more than once.
        raise Denied(Reason.INVALID_REQUEST, "a parameter is repeated")
    return {k: v for k, v in fields.items() if v != ""}


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``Authorization: Basic`` -> (client_id, secret), or ``None`` when absent.

    :raises Denied: a Basic header that does not decode.
    """
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Denied(Reason.CLIENT_AUTH_MISSING, "malformed Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise Denied(Reason.CLIENT_AUTH_MISSING, "malformed Basic credentials")
    return client_id, secret


def authenticate(core: Core, request: Request, fields: dict[str, str], trace: Trace) -> ClientApp:
    """Identify and authenticate the client the way the profile allows.

    :raises Denied: missing, mixed, disallowed or wrong credentials.
    """
    profile = core.profile
    basic = basic_credentials(request.header("authorization"))
    body_id, body_secret = fields.get("client_id"), fields.get("client_secret")
    if basic is not None and body_secret is not None and not profile.allow_multiple_client_auth:
        raise Denied(Reason.INVALID_REQUEST, "more than one client authentication method")
    if body_secret is not None:
        # Canvas: params[:client_id].presence || basic_user.
        fallback_id = basic[0] if basic is not None else None
        method, client_id, secret = "client_secret_post", body_id or fallback_id, body_secret
    elif basic is not None:
        method, (client_id, secret) = "client_secret_basic", basic
        if body_id is not None and body_id not in (client_id, unquote_plus(client_id)):
            raise Denied(Reason.INVALID_REQUEST, "client_id differs from the Basic credentials")
    elif body_id is not None:
        method, client_id, secret = "none", body_id, None
    else:
        raise Denied(Reason.CLIENT_AUTH_MISSING)
    trace.client_auth, trace.client_id = method, client_id
    if method not in profile.client_auth_methods:
        raise Denied(Reason.CLIENT_AUTH_METHOD)
    with core.lock:
        client = core.clients.get(client_id or "") or core.clients.get(
            unquote_plus(client_id or "")
        )
    if client is None:
        raise Denied(Reason.CLIENT_UNKNOWN)
    trace.client_id = client.client_id
    if client.client_secret is None:
        if method != "none":
            raise Denied(Reason.CLIENT_SECRET, "public clients send no secret")
        return client
    if method == "none":
        raise Denied(Reason.CLIENT_AUTH_MISSING)
    # RFC 6749 §2.3.1 form-encodes Basic credentials; Authlib and most SDKs do not.
    if not (client.check_secret(secret) or client.check_secret(unquote_plus(secret or ""))):
        raise Denied(Reason.CLIENT_SECRET)
    return client


def token(core: Core, request: Request, tenant: str, trace: Trace) -> Reply:
    """Serve ``POST`` on the token endpoint."""
    profile = core.profile
    try:
        fields = parse_body(core, request, trace)
    except Denied as denied:
        trace.error = denied.reason.value
        return profile.error(denied.reason, denied.detail)
    grant_type = fields.get("grant_type")
    trace.grant_type = grant_type
    queue = GRANT_QUEUES.get(grant_type or "")
    fault = core.faults.pop(*((queue,) if queue else ()), "token")
    omit, hold_after = False, None
    if fault is not None:
        trace.fault = fault.kind
        if fault.kind == "slow" and fault.after:
            hold_after = fault
        elif fault.kind == "slow":
            fault.hold()
        elif fault.kind == "omit_refresh_token":
            omit = True
        else:
            trace.error = fault.kind
            return fault_reply(fault, profile, queue or "token")
    try:
        client = authenticate(core, request, fields, trace)
        if grant_type == "authorization_code":
            reply = Reply.json(200, exchange(core, fields, client, tenant, trace, omit=omit))
        elif grant_type == "refresh_token":
            reply = Reply.json(200, refresh(core, fields, client, omit=omit))
        elif not grant_type:
            raise Denied(Reason.INVALID_REQUEST, "grant_type is required")
        else:
            raise Denied(Reason.UNSUPPORTED_GRANT)
    except Denied as denied:
        trace.error = denied.reason.value
        reply = profile.error(denied.reason, denied.detail)
    if isinstance(hold_after, Fault):
        hold_after.hold()
    return reply


def respond(
    core: Core,
    grant: Grant,
    access: TokenRecord,
    refresh_token: str | None,
    client: ClientApp,
    *,
    code_exchange: bool,
) -> dict[str, object]:
    ctx = TokenContext(
        grant=grant,
        access=access,
        refresh=refresh_token,
        scopes=access.scopes,
        client=client,
        expires_in=core.expires_in() if core.profile.reports_expiry else None,
        now=core.ledger.now(),
        code_exchange=code_exchange,
    )
    return core.profile.token_response(ctx)


def exchange(
    core: Core, fields: dict[str, str], client: ClientApp, tenant: str, trace: Trace, *, omit: bool
) -> dict[str, object]:
    """RFC 6749 §4.1.3 with RFC 7636 §4.6 verification."""
    code = fields.get("code")
    if not code:
        raise Denied(Reason.INVALID_REQUEST, "code is required")
    profile, config, ledger = core.profile, core.config, core.ledger
    with core.lock:
        try:
            record = ledger.redeem(
                code,
                client_id=client.client_id,
                redirect_uri=fields.get("redirect_uri"),
                verifier=fields.get("code_verifier"),
                tenant=tenant,
                pkce_supported=profile.pkce_supported,
                reject_unexpected_verifier=profile.reject_unexpected_verifier,
            )
        except Denied as denied:
            if denied.reason in PKCE_REASONS:
                trace.pkce = False
            raise
        if record.challenge is not None and profile.pkce_supported:
            trace.pkce = True
        grant = ledger.open_grant(record)
        access = ledger.issue(grant, "access", config.access_ttl)
        rotated = None
        if record.offline and not omit:
            rotated = ledger.issue(grant, "refresh", config.refresh_ttl).token
        return respond(core, grant, access, rotated, client, code_exchange=True)


def refresh(
    core: Core, fields: dict[str, str], client: ClientApp, *, omit: bool
) -> dict[str, object]:
    """RFC 6749 §6 under the configured rotation policy (RFC 9700 §4.14.2)."""
    presented = fields.get("refresh_token")
    if not presented:
        raise Denied(Reason.INVALID_REQUEST, "refresh_token is required")
    profile, config, ledger = core.profile, core.config, core.ledger
    requested = tuple(s for s in fields.get("scope", "").split(" ") if s)
    with core.lock:
        rotation = config.rotation
        record = ledger.use_refresh(
            presented, client_id=client.client_id, rotation=rotation, grace=config.grace_seconds
        )
        grant = record.grant
        scopes = grant.scopes
        if requested:
            # RFC 6749 §6: a refresh may narrow the scope, never widen it.
            wanted = {profile.normalize_scope(s) for s in requested}
            if not wanted <= {profile.normalize_scope(s) for s in grant.scopes}:
                raise Denied(Reason.INVALID_SCOPE)
            scopes = tuple(s for s in grant.scopes if profile.normalize_scope(s) in wanted)
        access = ledger.issue(grant, "access", config.access_ttl, scopes)
        if profile.refresh_kills_old_access:
            ledger.revoke_access_of(grant, keep=access.token)
        rotated = None
        if rotation != "none" and not omit:
            rotated = ledger.rotate(grant, config.refresh_ttl).token
        return respond(core, grant, access, rotated, client, code_exchange=False)
