"""The ``google`` profile (providers.md §1): offline access and re-consent rules, scope echo
with Google's expanded identity scopes, an ID token, tokeninfo, project-wide revocation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from typing import ClassVar

from pulseplan.testing.fake_http import Reply
from pulseplan.testing.fake_profile_base import Profile
from pulseplan.testing.fake_state import Reason
from pulseplan.testing.fake_state import TokenRecord

#: Google echoes the short identity scopes in their URL form.
SCOPE_ALIASES = {
    "email": "https://www.googleapis.com/auth/userinfo.email",
    "profile": "https://www.googleapis.com/auth/userinfo.profile",
}
DEAD_TOKEN = "Token has been expired or revoked."
DESCRIPTIONS: dict[Reason, str] = {
    Reason.CLIENT_UNKNOWN: "The OAuth client was not found.",
    Reason.CLIENT_SECRET: "Unauthorized",
    Reason.CLIENT_AUTH_MISSING: "Unauthorized",
    Reason.CODE_UNKNOWN: "Malformed auth code.",
    Reason.CODE_EXPIRED: "Bad Request",
    Reason.CODE_REUSED: "Bad Request",
    Reason.WRONG_CLIENT: "Unauthorized",
    Reason.REDIRECT_MISMATCH: "Bad Request",
    Reason.PKCE_MISSING: "Missing code verifier.",
    Reason.PKCE_MISMATCH: "Invalid code verifier.",
    Reason.REFRESH_UNKNOWN: "Bad Request",
    Reason.REFRESH_REVOKED: DEAD_TOKEN,
    Reason.REFRESH_REUSED: DEAD_TOKEN,
    Reason.REFRESH_EXPIRED: DEAD_TOKEN,
}


class GoogleProfile(Profile):
    """Google's OAuth 2.0 web-server flow and OpenID Connect endpoints."""

    name: ClassVar[str] = "google"
    routes: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("GET", "/o/oauth2/v2/auth", "authorize"),
        ("POST", "/token", "token"),
        ("POST", "/revoke", "revoke"),
        ("GET", "/v1/userinfo", "userinfo"),
        ("GET", "/tokeninfo", "tokeninfo"),
        ("POST", "/tokeninfo", "tokeninfo"),
    )
    url_keys: ClassVar[dict[str, str]] = {**Profile.url_keys, "tokeninfo": "tokeninfo_url"}
    client_auth_methods: ClassVar[frozenset[str]] = frozenset(
        {"client_secret_post", "client_secret_basic"}
    )
    require_pkce: ClassVar[bool] = False
    reject_unexpected_verifier: ClassVar[bool] = False
    rotation = "none"
    revoke_requires_client_auth: ClassVar[bool] = False
    # "removes all OAuth 2.0 scopes previously granted to a project" (providers.md §1.1).
    revoke_access_scope = "account"
    revoke_unknown_ok: ClassVar[bool] = False

    def offline(self, params: Mapping[str, str], scopes: tuple[str, ...], repeat: bool) -> bool:
        # A refresh token only with access_type=offline, and on re-consent only with
        # prompt=consent (providers.md §1.2).
        if params.get("access_type") != "offline":
            return False
        return not repeat or "consent" in params.get("prompt", "").split()

    def scope_echo(self, scopes: tuple[str, ...]) -> str | None:
        return " ".join(SCOPE_ALIASES.get(s, s) for s in scopes)

    def normalize_scope(self, scope: str) -> str:
        return next((short for short, url in SCOPE_ALIASES.items() if url == scope), scope)

    def describe(self, reason: Reason) -> str:
        return DESCRIPTIONS.get(reason, super().describe(reason))

    def error(self, reason: Reason, detail: str | None = None) -> Reply:
        if reason is Reason.REDIRECT_MISMATCH:
            return self.oauth_error(400, "redirect_uri_mismatch", self.describe(reason))
        return super().error(reason, detail)

    def server_error(self, status: int) -> Reply:
        return self.oauth_error(status, "internal_failure", "Backend Error")

    def unauthorized(self, missing: bool) -> Reply:
        challenge = 'Bearer realm="https://accounts.google.com/"'
        if not missing:
            challenge += ', error="invalid_token"'
        return Reply.json(
            401,
            {"error": "invalid_request", "error_description": "Invalid Credentials"},
            {"WWW-Authenticate": challenge},
        )

    def identity(self, endpoint: str, record: TokenRecord) -> Reply:
        account = record.grant.account
        data: dict[str, Any] = {"sub": account.user_id}
        if "profile" in record.scopes:
            given, _, family = account.name.partition(" ")
            data.update(name=account.name, given_name=given, family_name=family or given)
        if "email" in record.scopes:
            data.update(email=account.email, email_verified=True)
        return Reply.json(200, data)

    def tokeninfo(self, record: TokenRecord | None, now: float) -> Reply:
        """``GET /tokeninfo?access_token=``: fields are strings, as Google sends them."""
        if record is None:
            return Reply.json(400, {"error": "invalid_token", "error_description": "Invalid Value"})
        grant = record.grant
        data: dict[str, Any] = {
            "azp": grant.client_id,
            "aud": grant.client_id,
            "sub": grant.account.user_id,
            "scope": self.scope_echo(record.scopes),
            "access_type": "offline" if grant.current_refresh else "online",
        }
        if record.expires_at is not None:
            data["exp"] = str(int(record.expires_at))
            data["expires_in"] = str(max(0, int(record.expires_at - now)))
        if "email" in record.scopes:
            data.update(email=grant.account.email, email_verified="true")
        return Reply.json(200, data)

    def revoke_unknown(self) -> Reply:
        return Reply.json(
            400, {"error": "invalid_token", "error_description": "Token expired or revoked"}
        )
