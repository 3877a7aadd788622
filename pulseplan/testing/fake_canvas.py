"""The ``canvas`` profile (providers.md §3): one instance at the fake's base URL, a ``user``
object instead of ``scope``, a refresh token that survives refreshes, ``invalid_request`` /
"refresh_token not found" for dead refresh tokens, ``DELETE /login/oauth2/token`` revocation,
and API 401s that carry ``WWW-Authenticate`` only when the token is bad."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from typing import ClassVar

from pulseplan.testing.fake_http import Reply
from pulseplan.testing.fake_profile_base import Profile
from pulseplan.testing.fake_profile_base import TokenContext
from pulseplan.testing.fake_state import Account
from pulseplan.testing.fake_state import Reason
from pulseplan.testing.fake_state import TokenRecord

REFRESH_NOT_FOUND = "refresh_token not found"
# Canvas::OAuth::RequestError messages (lib/canvas/oauth/request_error.rb).
ERRORS: dict[Reason, tuple[int, str, str | None]] = {
    Reason.CLIENT_UNKNOWN: (401, "invalid_client", "unknown client"),
    Reason.CLIENT_SECRET: (401, "invalid_client", "invalid client"),
    Reason.CLIENT_AUTH_MISSING: (401, "invalid_client", "unknown client"),
    Reason.CODE_UNKNOWN: (400, "invalid_grant", "authorization_code not found"),
    Reason.CODE_EXPIRED: (400, "invalid_grant", "authorization_code not found"),
    Reason.CODE_REUSED: (400, "invalid_grant", "authorization_code not found"),
    Reason.WRONG_CLIENT: (400, "invalid_grant", "incorrect client"),
    Reason.REDIRECT_MISMATCH: (
        400,
        "invalid_request",
        "redirect_uri does not match client settings",
    ),
    Reason.PKCE_MISSING: (400, "invalid_grant", None),
    Reason.PKCE_MISMATCH: (400, "invalid_grant", None),
    Reason.REFRESH_UNKNOWN: (400, "invalid_request", REFRESH_NOT_FOUND),
    Reason.REFRESH_REVOKED: (400, "invalid_request", REFRESH_NOT_FOUND),
    Reason.REFRESH_REUSED: (400, "invalid_request", REFRESH_NOT_FOUND),
    Reason.REFRESH_EXPIRED: (400, "invalid_request", REFRESH_NOT_FOUND),
    Reason.UNSUPPORTED_GRANT: (
        400,
        "unsupported_grant_type",
        "The grant_type you requested is not currently supported",
    ),
}
#: What Canvas's request throttle sends (doc/api/throttling.md): a plain-text 403.
RATE_LIMIT_TEXT = "403 Forbidden (Rate Limit Exceeded)\n"


def canvas_user_id(account: Account) -> int:
    return int(account.user_id) % 1_000_000 + 1 if account.user_id.isdigit() else 42


class CanvasProfile(Profile):
    """A Canvas LMS instance (developer key = client)."""

    name: ClassVar[str] = "canvas"
    routes: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("GET", "/login/oauth2/auth", "authorize"),
        ("POST", "/login/oauth2/token", "token"),
        ("DELETE", "/login/oauth2/token", "revoke"),
        ("GET", "/api/v1/users/self", "userinfo"),
        ("GET", "/api/v1/users/self/profile", "profile"),
    )
    url_keys: ClassVar[dict[str, str]] = {**Profile.url_keys, "profile": "profile_url"}
    # Canvas takes params[:client_secret].presence || basic_pass.
    allow_multiple_client_auth: ClassVar[bool] = True
    body_formats: ClassVar[frozenset[str]] = frozenset({"form", "json"})
    require_pkce: ClassVar[bool] = False
    reject_unexpected_verifier: ClassVar[bool] = False
    rotation = "none"
    revoke_style = "canvas_delete"
    # regenerate_access_token: the previous access token stops working on refresh.
    refresh_kills_old_access: ClassVar[bool] = True
    bearer_query_param: ClassVar[str | None] = "access_token"

    def env_extra(self, tenant: str) -> dict[str, str]:
        return {"CANVAS_BASE_URL": self.base_url}

    def authorize_problem(self, params: Mapping[str, str]) -> tuple[str, str] | None:
        prompt = params.get("prompt")
        if prompt is not None and prompt != "none":
            return "unsupported_prompt_type", "prompt must be none or absent"
        return None

    def scope_echo(self, scopes: tuple[str, ...]) -> str | None:
        return None  # Canvas::OAuth::Token#as_json has no scope field

    def id_token(self, ctx: TokenContext) -> str | None:
        return None

    def token_response(self, ctx: TokenContext) -> dict[str, Any]:
        account = ctx.grant.account
        user_id = canvas_user_id(account)
        data: dict[str, Any] = {
            "access_token": ctx.access.token,
            "token_type": "Bearer",
            "user": {
                "id": user_id,
                "name": account.name,
                "global_id": str(10_000_000_000_000 + user_id),
                "effective_locale": "en",
            },
            "canvas_region": "us-east-1",
        }
        if ctx.refresh is not None:
            data["refresh_token"] = ctx.refresh
        if ctx.expires_in is not None:
            data["expires_in"] = ctx.expires_in
        return data

    def error(self, reason: Reason, detail: str | None = None) -> Reply:
        status, error, description = ERRORS.get(reason, (400, "invalid_request", None))
        return self.oauth_error(status, error, detail or description)

    def oauth_error(self, status: int, error: str, description: str | None, **extra: Any) -> Reply:
        body: dict[str, Any] = {"error": error, **extra}
        if description:
            body["error_description"] = description
        return Reply.json(status, body)

    def server_error(self, status: int) -> Reply:
        # Rails answers an exception with its HTML error page, not JSON.
        page = "<html><body><h1>We're sorry, but something went wrong.</h1></body></html>"
        return Reply.text(status, page, content_type="text/html; charset=utf-8")

    def unauthorized(self, missing: bool) -> Reply:
        if missing:
            return Reply.json(
                401,
                {
                    "status": "unauthenticated",
                    "errors": [{"message": "user authorization required"}],
                },
            )
        return Reply.json(
            401,
            {"errors": [{"message": "Invalid access token."}]},
            {"WWW-Authenticate": 'Bearer realm="canvas-lms"'},
        )

    def identity(self, endpoint: str, record: TokenRecord) -> Reply:
        account = record.grant.account
        first, _, last = account.name.partition(" ")
        data: dict[str, Any] = {
            "id": canvas_user_id(account),
            "name": account.name,
            "short_name": account.name,
            "sortable_name": f"{last}, {first}" if last else first,
            "avatar_url": None,
            "locale": None,
            "effective_locale": "en",
        }
        if endpoint == "profile":
            data.update(primary_email=account.email, login_id=account.email, title=None, bio=None)
        return Reply.json(200, data)

    def not_an_oauth_request(self) -> Reply:
        message = "can't delete OAuth access token when not using an OAuth access token"
        return Reply.json(400, {"message": message})
