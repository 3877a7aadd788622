"""The ``microsoft`` profile (providers.md §2): tenant paths, ``offline_access``, rotating
refresh tokens whose predecessors keep working, AADSTS error bodies and Graph ``/v1.0/me``.
There is no revocation endpoint."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import ClassVar

from pulseplan.testing.fake_http import Reply
from pulseplan.testing.fake_profile_base import Profile
from pulseplan.testing.fake_profile_base import TokenContext
from pulseplan.testing.fake_profile_base import hs256_jwt
from pulseplan.testing.fake_state import Reason
from pulseplan.testing.fake_state import TokenRecord

OIDC_SCOPES = frozenset({"openid", "profile", "email"})
GRAPH = "https://graph.microsoft.com/"
# (AADSTS number, error, text) per refusal; texts from reference-error-codes.md.
AADSTS: dict[Reason, tuple[int, str, str]] = {
    Reason.CLIENT_UNKNOWN: (
        700016,
        "unauthorized_client",
        "Application with the given identifier was not found in the directory.",
    ),
    Reason.CLIENT_SECRET: (
        7000215,
        "invalid_client",
        "Invalid client secret provided. Ensure the secret being sent in the request is the "
        "client secret value, not the client secret ID.",
    ),
    Reason.CLIENT_AUTH_MISSING: (
        7000218,
        "invalid_client",
        "The request body must contain the following parameter: 'client_assertion' or "
        "'client_secret'.",
    ),
    Reason.CODE_UNKNOWN: (9002313, "invalid_grant", "Invalid request. Request is malformed."),
    Reason.CODE_EXPIRED: (
        70008,
        "invalid_grant",
        "The provided authorization code or refresh token has expired due to inactivity.",
    ),
    Reason.CODE_REUSED: (
        54005,
        "invalid_grant",
        "OAuth2 Authorization code was already redeemed, please retry with a new valid code.",
    ),
    Reason.WRONG_CLIENT: (70000, "invalid_grant", "Provided grant is invalid or malformed."),
    Reason.REDIRECT_MISMATCH: (
        500112,
        "invalid_grant",
        "The reply address does not match the reply address provided when requesting "
        "Authorization code.",
    ),
    Reason.TENANT_MISMATCH: (
        700005,
        "invalid_grant",
        "Provided Authorization Code is intended to use against other tenant, so rejected.",
    ),
    Reason.PKCE_MISSING: (
        50148,
        "invalid_grant",
        "The code_verifier does not match the code_challenge supplied in the authorization "
        "request for PKCE.",
    ),
    Reason.PKCE_MISMATCH: (
        501481,
        "invalid_grant",
        "The Code_Verifier does not match the code_challenge supplied in the authorization "
        "request.",
    ),
    Reason.REFRESH_UNKNOWN: (9002313, "invalid_grant", "Invalid request. Request is malformed."),
    Reason.REFRESH_REVOKED: (
        50173,
        "invalid_grant",
        "The provided grant has expired due to it being revoked, a fresh auth token is needed.",
    ),
    Reason.REFRESH_EXPIRED: (
        700082,
        "invalid_grant",
        "The refresh token has expired due to inactivity.",
    ),
    Reason.INVALID_SCOPE: (70011, "invalid_scope", "The provided value for 'scope' is not valid."),
    Reason.UNSUPPORTED_GRANT: (
        70003,
        "unsupported_grant_type",
        "The app requested an unsupported grant type.",
    ),
}
MALFORMED = (900144, "invalid_request", "The request body is missing a required parameter.")
AADSTS[Reason.REFRESH_REUSED] = AADSTS[Reason.REFRESH_REVOKED]


class MicrosoftProfile(Profile):
    """The Microsoft identity platform v2.0 endpoints plus Microsoft Graph identity calls."""

    name: ClassVar[str] = "microsoft"
    routes: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("GET", "/{tenant}/oauth2/v2.0/authorize", "authorize"),
        ("POST", "/{tenant}/oauth2/v2.0/token", "token"),
        ("GET", "/v1.0/me", "userinfo"),
        ("GET", "/oidc/userinfo", "oidc_userinfo"),
    )
    url_keys: ClassVar[dict[str, str]] = {
        **Profile.url_keys,
        "oidc_userinfo": "oidc_userinfo_url",
    }
    require_pkce: ClassVar[bool] = False
    reject_unexpected_verifier: ClassVar[bool] = False
    # "Refresh tokens replace themselves... doesn't revoke old refresh tokens when used."
    rotation = "rotate"
    revoke_style = None
    default_tenant: ClassVar[str] = "common"

    def env_extra(self, tenant: str) -> dict[str, str]:
        return {"MICROSOFT_TENANT_ID": tenant}

    def authorize_problem(self, params: Mapping[str, str]) -> tuple[str, str] | None:
        if params.get("response_mode", "query") != "query":
            return "invalid_request", "the fake answers with response_mode=query only"
        return None

    def offline(self, params: Mapping[str, str], scopes: tuple[str, ...], repeat: bool) -> bool:
        return "offline_access" in scopes

    def scope_echo(self, scopes: tuple[str, ...]) -> str | None:
        echoed = [
            s if s in OIDC_SCOPES or "://" in s else GRAPH + s
            for s in scopes
            if s != "offline_access"
        ]
        return " ".join(echoed)

    def normalize_scope(self, scope: str) -> str:
        return scope.removeprefix(GRAPH)

    def token_response(self, ctx: TokenContext) -> dict[str, Any]:
        data = super().token_response(ctx)
        if ctx.expires_in is not None:
            data["ext_expires_in"] = ctx.expires_in
        return data

    def id_token(self, ctx: TokenContext) -> str | None:
        if "openid" not in ctx.scopes:
            return None
        account, tid = ctx.grant.account, ctx.grant.account.uuid("tenant")
        claims: dict[str, Any] = {
            "ver": "2.0",
            "iss": f"{self.base_url}/{tid}/v2.0",
            "sub": account.uuid(f"pairwise:{ctx.client.client_id}"),
            "aud": ctx.client.client_id,
            "oid": account.uuid("oid"),
            "tid": tid,
            "preferred_username": account.email,
            "iat": int(ctx.now),
            "exp": int(ctx.now) + 3600,
        }
        if "profile" in ctx.scopes:
            claims["name"] = account.name
        if "email" in ctx.scopes:
            claims["email"] = account.email
        if ctx.grant.nonce:
            claims["nonce"] = ctx.grant.nonce
        return hs256_jwt(claims, ctx.client.client_secret)

    def error(self, reason: Reason, detail: str | None = None) -> Reply:
        code, error, text = AADSTS.get(reason, MALFORMED)
        return self.aadsts(code, error, text, status=401 if error == "invalid_client" else 400)

    def aadsts(self, code: int, error: str, text: str, *, status: int = 400) -> Reply:
        """An Entra ID error body: ``error``, ``error_description`` starting ``AADSTS{n}:``,
        ``error_codes`` and the trace fields MSAL reads."""
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        description = (
            f"AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {now}"
        )
        body = {
            "error": error,
            "error_description": description,
            "error_codes": [code],
            "timestamp": now,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"{self.base_url}/error?code={code}",
        }
        return Reply.json(status, body)

    def page_error(self, reason: str) -> Reply:
        code = 50011 if "redirect" in reason else 700016
        return self.aadsts(code, "invalid_request", reason)

    def server_error(self, status: int) -> Reply:
        return self.aadsts(50033, "server_error", "A transient error has occurred.", status=status)

    def rate_limited(self, retry_after: int) -> Reply:
        reply = self.aadsts(
            90024, "temporarily_unavailable", "A transient error has occurred.", status=429
        )
        reply.headers["Retry-After"] = str(retry_after)
        return reply

    def unauthorized(self, missing: bool) -> Reply:
        message = "Access token is empty." if missing else "Access token has expired."
        body = {
            "error": {
                "code": "InvalidAuthenticationToken",
                "message": message,
                "innerError": {
                    "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": str(uuid.uuid4()),
                },
            }
        }
        return Reply.json(401, body, {"WWW-Authenticate": 'Bearer realm=""'})

    def identity(self, endpoint: str, record: TokenRecord) -> Reply:
        account = record.grant.account
        given, _, family = account.name.partition(" ")
        if endpoint == "oidc_userinfo":
            return Reply.json(
                200,
                {
                    "sub": account.uuid(f"pairwise:{record.grant.client_id}"),
                    "name": account.name,
                    "given_name": given,
                    "family_name": family,
                    "email": account.email,
                },
            )
        return Reply.json(
            200,
            {
                "@odata.context": f"{GRAPH}v1.0/$metadata#users/$entity",
                "businessPhones": [],
                "displayName": account.name,
                "givenName": given,
                "surname": family,
                "jobTitle": None,
                "mail": account.email,
                "mobilePhone": None,
                "officeLocation": None,
                "preferredLanguage": None,
                "userPrincipalName": account.email,
                "id": account.uuid("oid"),
            },
        )


#: Defaults for ``fail_next(..., "aadsts", code=N)``: code -> (error, text). The ``error``
#: values of the transient codes are not documented [U]; pass ``error=`` to test another.
AADSTS_FAULTS: dict[int, tuple[str, str]] = {
    70008: ("invalid_grant", "The refresh token has expired due to inactivity."),
    700082: ("invalid_grant", "The refresh token has expired due to inactivity."),
    50173: AADSTS[Reason.REFRESH_REVOKED][1:],
    700084: ("invalid_grant", "The refresh token was issued to a single page app (SPA)."),
    70043: ("invalid_grant", "The refresh token has expired due to sign-in frequency checks."),
    70000: ("invalid_grant", "Provided grant is invalid or malformed."),
    54005: AADSTS[Reason.CODE_REUSED][1:],
    50076: ("interaction_required", "You must use multi-factor authentication."),
    50079: ("interaction_required", "The user is required to enroll for multi-factor auth."),
    53003: ("interaction_required", "Access has been blocked by Conditional Access policies."),
    65001: ("consent_required", "The user or administrator has not consented to the app."),
    7000215: AADSTS[Reason.CLIENT_SECRET][1:],
    7000222: ("invalid_client", "The provided client secret keys are expired."),
    700016: AADSTS[Reason.CLIENT_UNKNOWN][1:],
    50011: ("invalid_request", "The redirect URI does not match the redirect URIs configured."),
    50196: ("temporarily_unavailable", "The server encountered a client request loop."),
    90024: ("temporarily_unavailable", "A transient error has occurred. Try again."),
    50033: ("temporarily_unavailable", "A transient error has occurred. Try again."),
}
