"""Provider profiles: how the fake words things on the wire.

:class:`Profile` is the plain RFC 6749 / 7636 / 7009 / 9700 provider (the ``standard``
profile); the Google, Microsoft, Canvas and Notion profiles subclass it and override paths,
client-authentication rules, token-response shapes, error bodies and identity endpoints, as
recorded in ``providers.md``. A profile holds no state: the ledger does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from typing import ClassVar
from typing import Literal

from pulseplan.testing.fake_http import Reply
from pulseplan.testing.fake_state import ClientApp
from pulseplan.testing.fake_state import Grant
from pulseplan.testing.fake_state import Reason
from pulseplan.testing.fake_state import Rotation
from pulseplan.testing.fake_state import TokenRecord

ClientAuthMethod = Literal["client_secret_post", "client_secret_basic", "none"]
RevokeStyle = Literal["rfc7009", "canvas_delete", "notion_json"]

#: RFC 6749 §5.2 status and ``error`` for each refusal reason.
RFC_ERRORS: dict[Reason, tuple[int, str]] = {
    Reason.CLIENT_UNKNOWN: (401, "invalid_client"),
    Reason.CLIENT_SECRET: (401, "invalid_client"),
    Reason.CLIENT_AUTH_MISSING: (401, "invalid_client"),
    Reason.CLIENT_AUTH_METHOD: (401, "invalid_client"),
    Reason.INVALID_SCOPE: (400, "invalid_scope"),
    Reason.UNSUPPORTED_GRANT: (400, "unsupported_grant_type"),
    Reason.INVALID_REQUEST: (400, "invalid_request"),
    Reason.BODY_FORMAT: (400, "invalid_request"),
    Reason.MISSING_VERSION: (400, "invalid_request"),
}


def rfc_error(reason: Reason) -> tuple[int, str]:
    """Status and RFC ``error`` for a reason; every code/token problem is ``invalid_grant``."""
    return RFC_ERRORS.get(reason, (400, "invalid_grant"))


def route_regex(template: str) -> str:
    """A path template as a regex: ``/{tenant}/oauth2/v2.0/token`` -> tenant group."""
    return re.escape(template).replace(re.escape("{tenant}"), "(?P<tenant>[^/]+)")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_jwt(claims: Mapping[str, Any], key: str | None) -> str:
    """An HS256 JWT keyed with the client secret (OIDC Core §10.1), or ``alg: none`` for a
    public client. Written out by hand so PyJWT's short-key warnings never fire in a thread."""
    header = {"alg": "HS256" if key else "none", "typ": "JWT"}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    if not key:
        return signing_input + "."
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


@dataclass(frozen=True)
class TokenContext:
    """What a profile needs to word a successful token response."""

    grant: Grant
    access: TokenRecord
    refresh: str | None
    scopes: tuple[str, ...]
    client: ClientApp
    expires_in: int | None
    now: float
    code_exchange: bool


class Profile:
    """The ``standard`` profile: a strict RFC 6749 provider following RFC 9700."""

    name: ClassVar[str] = "standard"
    #: (HTTP method, path template, endpoint name). ``{tenant}`` matches one path segment.
    routes: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("GET", "/authorize", "authorize"),
        ("POST", "/token", "token"),
        ("POST", "/revoke", "revoke"),
        ("GET", "/userinfo", "userinfo"),
    )
    #: endpoint name -> key in :attr:`FakeProvider.endpoints`.
    url_keys: ClassVar[dict[str, str]] = {
        "authorize": "authorize_url",
        "token": "token_url",
        "revoke": "revoke_url",
        "userinfo": "userinfo_url",
    }
    client_auth_methods: ClassVar[frozenset[str]] = frozenset(
        {"client_secret_post", "client_secret_basic", "none"}
    )
    #: Canvas reads body credentials first and ignores a Basic header; RFC 6749 forbids both.
    allow_multiple_client_auth: ClassVar[bool] = False
    body_formats: ClassVar[frozenset[str]] = frozenset({"form"})
    pkce_supported: ClassVar[bool] = True
    require_pkce: ClassVar[bool] = True
    reject_unexpected_verifier: ClassVar[bool] = True
    rotation: ClassVar[Rotation] = "strict"
    version_header: ClassVar[str | None] = None
    revoke_style: ClassVar[RevokeStyle | None] = "rfc7009"
    revoke_requires_client_auth: ClassVar[bool] = True
    #: What revoking an *access* token ends: the token, its grant, or all the account's grants.
    revoke_access_scope: ClassVar[Literal["token", "grant", "account"]] = "token"
    revoke_unknown_ok: ClassVar[bool] = True
    refresh_kills_old_access: ClassVar[bool] = False
    reports_expiry: ClassVar[bool] = True
    bearer_query_param: ClassVar[str | None] = None
    default_tenant: ClassVar[str] = ""

    def __init__(self, base_url: str):
        self.base_url = base_url

    # ------------------------------------------------------------------ routing

    def match(self, method: str, path: str) -> tuple[str | None, str]:
        """``(endpoint, tenant)``; endpoint ``None`` for an unknown path, ``"405"`` for a known
        path with the wrong method."""
        known_path = False
        for route_method, template, endpoint in self.routes:
            found = re.fullmatch(route_regex(template), path)
            if found is None:
                continue
            known_path = True
            if method == route_method or (method == "HEAD" and route_method == "GET"):
                return endpoint, found.groupdict().get("tenant") or ""
        return ("405" if known_path else None), ""

    def path_for(self, endpoint: str, tenant: str) -> str | None:
        for _, template, name in self.routes:
            if name == endpoint:
                return template.replace("{tenant}", tenant)
        return None

    def endpoints(self, tenant: str) -> dict[str, str | None]:
        urls: dict[str, str | None] = {key: None for key in self.url_keys.values()}
        for endpoint, key in self.url_keys.items():
            path = self.path_for(endpoint, tenant)
            urls[key] = None if path is None else self.base_url + path
        urls["base_url"] = self.base_url
        return urls

    def env_extra(self, tenant: str) -> dict[str, str]:
        """Provider settings beyond the endpoint overrides (``CANVAS_BASE_URL``...)."""
        return {}

    # ------------------------------------------------------------------ authorization

    def authorize_problem(self, params: Mapping[str, str]) -> tuple[str, str] | None:
        """A profile-specific reason to refuse the authorization request, as (error, text)."""
        return None

    def offline(self, params: Mapping[str, str], scopes: tuple[str, ...], repeat: bool) -> bool:
        """Whether this consent yields a refresh token (Google: access_type, Microsoft:
        offline_access). ``repeat``: the account already has a live grant for the client."""
        return True

    def page_error(self, reason: str) -> Reply:
        """An authorization error that must not redirect (unknown client, bad redirect URI)."""
        return Reply.json(400, {"error": "invalid_request", "error_description": reason})

    # ------------------------------------------------------------------ token endpoint

    def scope_echo(self, scopes: tuple[str, ...]) -> str | None:
        return " ".join(scopes)

    def normalize_scope(self, scope: str) -> str:
        """The consented form of a scope as echoed in token responses."""
        return scope

    def id_token(self, ctx: TokenContext) -> str | None:
        if "openid" not in ctx.scopes:
            return None
        account = ctx.grant.account
        claims: dict[str, Any] = {
            "iss": self.base_url,
            "sub": account.user_id,
            "aud": ctx.client.client_id,
            "iat": int(ctx.now),
            "exp": int(ctx.now) + 3600,
        }
        if "email" in ctx.scopes:
            claims.update(email=account.email, email_verified=True)
        if ctx.grant.nonce:
            claims["nonce"] = ctx.grant.nonce
        return hs256_jwt(claims, ctx.client.client_secret)

    def token_response(self, ctx: TokenContext) -> dict[str, Any]:
        data: dict[str, Any] = {"access_token": ctx.access.token, "token_type": "Bearer"}
        if ctx.expires_in is not None:
            data["expires_in"] = ctx.expires_in
        if ctx.refresh is not None:
            data["refresh_token"] = ctx.refresh
        scope = self.scope_echo(ctx.scopes)
        if scope is not None:
            data["scope"] = scope
        id_token = self.id_token(ctx)
        if id_token is not None:
            data["id_token"] = id_token
        return data

    def describe(self, reason: Reason) -> str:
        return reason.value.replace("_", " ")

    def error(self, reason: Reason, detail: str | None = None) -> Reply:
        status, error = rfc_error(reason)
        return self.oauth_error(status, error, detail or self.describe(reason))

    def oauth_error(self, status: int, error: str, description: str | None, **extra: Any) -> Reply:
        body: dict[str, Any] = {"error": error}
        if description:
            body["error_description"] = description
        body.update(extra)
        headers = {"WWW-Authenticate": 'Basic realm="fake"'} if status == 401 else {}
        return Reply.json(status, body, headers)

    def server_error(self, status: int) -> Reply:
        return self.oauth_error(status, "server_error", "The server is temporarily broken.")

    def rate_limited(self, retry_after: int) -> Reply:
        reply = self.oauth_error(429, "temporarily_unavailable", "Too many requests.")
        reply.headers["Retry-After"] = str(retry_after)
        return reply

    # ------------------------------------------------------------------ resource endpoints

    def unauthorized(self, missing: bool) -> Reply:
        """401 for a missing, unknown, expired or revoked bearer token (RFC 6750 §3)."""
        if missing:
            return Reply.json(401, {"error": "invalid_request"}, {"WWW-Authenticate": "Bearer"})
        return Reply.json(
            401,
            {"error": "invalid_token", "error_description": "The access token is invalid."},
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )

    def identity(self, endpoint: str, record: TokenRecord) -> Reply:
        account = record.grant.account
        return Reply.json(
            200,
            {
                "sub": account.user_id,
                "email": account.email,
                "email_verified": True,
                "name": account.name,
            },
        )

    def revoke_unknown(self) -> Reply:
        """RFC 7009 §2.2: an invalid token is answered with 200."""
        return Reply.json(200, {})

    def revoked(self) -> Reply:
        return Reply.json(200, {})
