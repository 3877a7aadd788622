"""The ``notion`` profile (providers.md §4): HTTP Basic client auth, JSON bodies, a required
``Notion-Version`` header, no ``expires_in`` and no ``scope``, workspace and owner fields,
strictly rotating refresh tokens, and ``{"object": "error", "code": ...}`` error bodies."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from typing import ClassVar

from pulseplan.testing.fake_http import Reply
from pulseplan.testing.fake_profile_base import Profile
from pulseplan.testing.fake_profile_base import TokenContext
from pulseplan.testing.fake_state import Account
from pulseplan.testing.fake_state import Grant
from pulseplan.testing.fake_state import Reason
from pulseplan.testing.fake_state import TokenRecord

ERRORS: dict[Reason, tuple[int, str, str]] = {
    Reason.CLIENT_UNKNOWN: (401, "invalid_client", "Invalid client."),
    Reason.CLIENT_SECRET: (401, "invalid_client", "Invalid client."),
    Reason.CLIENT_AUTH_MISSING: (401, "invalid_client", "Missing client credentials."),
    Reason.CLIENT_AUTH_METHOD: (401, "invalid_client", "Use HTTP Basic client credentials."),
    Reason.CODE_UNKNOWN: (400, "invalid_grant", "Invalid code."),
    Reason.CODE_EXPIRED: (400, "invalid_grant", "Invalid code: this code has expired."),
    Reason.CODE_REUSED: (400, "invalid_grant", "Invalid code: this code has been revoked."),
    Reason.WRONG_CLIENT: (400, "invalid_grant", "Invalid grant: issued to another client."),
    Reason.REDIRECT_MISMATCH: (400, "invalid_grant", "Invalid redirect_uri."),
    Reason.REFRESH_UNKNOWN: (400, "invalid_grant", "Invalid refresh token."),
    Reason.REFRESH_REVOKED: (400, "invalid_grant", "Invalid refresh token."),
    Reason.REFRESH_REUSED: (400, "invalid_grant", "Invalid refresh token."),
    Reason.REFRESH_EXPIRED: (400, "invalid_grant", "Invalid refresh token."),
    Reason.UNSUPPORTED_GRANT: (400, "unsupported_grant_type", "Unsupported grant type."),
    Reason.INVALID_SCOPE: (400, "invalid_scope", "Invalid scope."),
    Reason.BODY_FORMAT: (400, "invalid_json", "Error parsing JSON body."),
    Reason.MISSING_VERSION: (
        400,
        "missing_version",
        "Notion-Version header failed validation: Notion-Version header should be defined.",
    ),
}
#: HTTP status -> Notion ``code`` for server faults (reference/status-codes).
SERVER_CODES = {
    500: "internal_server_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
    529: "service_overload",
}
#: Default status of each ``code`` for ``fail_next(..., "notion_error", code=...)``.
CODE_STATUS = {
    "invalid_grant": 400,
    "invalid_request": 400,
    "validation_error": 400,
    "missing_version": 400,
    "unauthorized": 401,
    "invalid_client": 401,
    "restricted_resource": 403,
    "object_not_found": 404,
    "conflict_error": 409,
    "rate_limited": 429,
    **{code: status for status, code in SERVER_CODES.items()},
}


def notion_error(status: int, code: str, message: str) -> Reply:
    body = {
        "object": "error",
        "status": status,
        "code": code,
        "message": message,
        "request_id": str(uuid.uuid4()),
    }
    return Reply.json(status, body)


def owner(account: Account) -> dict[str, Any]:
    return {
        "type": "user",
        "user": {
            "object": "user",
            "id": account.uuid("notion-user"),
            "name": account.name,
            "avatar_url": None,
            "type": "person",
            "person": {"email": account.email},
        },
    }


class NotionProfile(Profile):
    """Notion public connections (api.notion.com/v1/oauth/*)."""

    name: ClassVar[str] = "notion"
    routes: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("GET", "/v1/oauth/authorize", "authorize"),
        ("POST", "/v1/oauth/token", "token"),
        ("POST", "/v1/oauth/revoke", "revoke"),
        ("POST", "/v1/oauth/introspect", "introspect"),
        ("GET", "/v1/users/me", "userinfo"),
    )
    url_keys: ClassVar[dict[str, str]] = {**Profile.url_keys, "introspect": "introspect_url"}
    client_auth_methods: ClassVar[frozenset[str]] = frozenset({"client_secret_basic"})
    body_formats: ClassVar[frozenset[str]] = frozenset({"json"})
    pkce_supported: ClassVar[bool] = False
    require_pkce: ClassVar[bool] = False
    reject_unexpected_verifier: ClassVar[bool] = False
    rotation = "strict"
    version_header: ClassVar[str | None] = "notion-version"
    revoke_style = "notion_json"
    revoke_access_scope = "grant"
    reports_expiry: ClassVar[bool] = False

    def authorize_problem(self, params: Mapping[str, str]) -> tuple[str, str] | None:
        if params.get("owner") != "user":
            return "invalid_request", "owner must be user"
        return None

    def scope_echo(self, scopes: tuple[str, ...]) -> str | None:
        return None

    def id_token(self, ctx: TokenContext) -> str | None:
        return None

    def bot_id(self, grant: Grant) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake:bot:{grant.grant_id}"))

    def token_response(self, ctx: TokenContext) -> dict[str, Any]:
        account = ctx.grant.account
        return {
            "access_token": ctx.access.token,
            "token_type": "bearer",
            "refresh_token": ctx.refresh,  # null when not rotated: typed string | null
            "bot_id": self.bot_id(ctx.grant),
            "workspace_id": account.uuid(f"workspace:{account.workspace}"),
            "workspace_name": account.workspace,
            "workspace_icon": None,
            "owner": owner(account),
            "duplicated_template_id": None,
            "request_id": str(uuid.uuid4()),
        }

    def error(self, reason: Reason, detail: str | None = None) -> Reply:
        status, code, message = ERRORS.get(reason, (400, "invalid_request", "Invalid request."))
        return notion_error(status, code, message)

    def oauth_error(self, status: int, error: str, description: str | None, **extra: Any) -> Reply:
        return notion_error(status, error, description or error)

    def server_error(self, status: int) -> Reply:
        code = SERVER_CODES.get(status, "internal_server_error")
        return notion_error(status, code, "Unexpected error occurred.")

    def rate_limited(self, retry_after: int) -> Reply:
        reply = notion_error(429, "rate_limited", "You have been rate limited.")
        reply.headers["Retry-After"] = str(retry_after)
        return reply

    def unauthorized(self, missing: bool) -> Reply:
        return notion_error(401, "unauthorized", "API token is invalid.")

    def identity(self, endpoint: str, record: TokenRecord) -> Reply:
        grant = record.grant
        body = {
            "object": "user",
            "id": self.bot_id(grant),
            "name": "Fake Connection",
            "avatar_url": None,
            "type": "bot",
            "bot": {"owner": owner(grant.account), "workspace_name": grant.account.workspace},
            "request_id": str(uuid.uuid4()),
        }
        return Reply.json(200, body)

    def introspect(self, record: TokenRecord | None) -> Reply:
        if record is None:
            return Reply.json(200, {"active": False, "request_id": str(uuid.uuid4())})
        body = {
            "active": True,
            "scope": "read_content update_content insert_content read_user_with_email",
            "iat": int(record.issued_at),
            "request_id": str(uuid.uuid4()),
        }
        return Reply.json(200, body)

    def revoked(self) -> Reply:
        return Reply.json(200, {"request_id": str(uuid.uuid4())})

    def revoke_unknown(self) -> Reply:
        return self.revoked()
