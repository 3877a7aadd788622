"""Canvas validation (``GET /api/v1/users/self``) and revocation
(``DELETE /login/oauth2/token`` with the bearer access token), providers.md §3.1.

Canvas's 401s need care: "If the token is deleted or expires, the application will get a 401
Unauthorized... You can differentiate this 401 Unauthorized from other cases where the user
simply does not have permission... by checking that the ``WWW-Authenticate`` header is set."
A 401 without that header, or a 403, means the token authenticated but may not do this call
(a scoped developer key, a permission), or the request was throttled: not a dead token.
"""

from __future__ import annotations

import httpx

from pulseplan import ProviderContext
from pulseplan import ProviderMisconfigured
from pulseplan import ReconnectRequired
from pulseplan import Revocation
from pulseplan import Validation
from pulseplan import json_object
from pulseplan_canvas.errors import RATE_LIMITED
from pulseplan_canvas.errors import classify
from pulseplan_canvas.tokens import refresh

#: Canvas's answer to a DELETE made with something other than an OAuth token.
NOT_OAUTH = "not using an oauth access token"


def bearer_request(
    provider: ProviderContext, method: str, url: str, access_token: str
) -> httpx.Request:
    return provider.http.build_request(
        method,
        url,
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
    )


def endpoint(url: str | None, provider: ProviderContext, name: str) -> str:
    if not url:
        raise ProviderMisconfigured(
            f"no Canvas {name} endpoint configured", provider=provider.name, error="not_configured"
        )
    return url


def token_rejected(response: httpx.Response) -> bool:
    """A 401 that says the token itself is bad (deleted, expired): ``WWW-Authenticate`` set."""
    return response.status_code == 401 and "www-authenticate" in response.headers


async def validate(provider: ProviderContext, *, access_token: str) -> Validation:
    """Ask ``/api/v1/users/self`` whether the token works.

    :raises ProviderUnavailable: throttled (403 "Rate Limit Exceeded"), 5xx, network.
    :raises ProviderError: any other unexpected answer, classified.
    """
    url = endpoint(provider.settings.userinfo_url, provider, "validation")
    response = await provider.standard.send(
        bearer_request(provider, "GET", url, access_token), operation="validation"
    )
    if response.is_success:
        return Validation(valid=True)
    if token_rejected(response):
        return Validation(valid=False, detail="Canvas rejected the access token (HTTP 401)")
    error = classify(response, provider=provider.name, operation="validation")
    if error.error == RATE_LIMITED or response.status_code not in (401, 403):
        raise error
    return Validation(
        valid=True,
        detail=(
            f"Canvas accepted the token but refused /api/v1/users/self (HTTP "
            f"{response.status_code}): a missing scope or permission, not a dead token"
        ),
    )


async def revoke(
    provider: ProviderContext, *, access_token: str | None, refresh_token: str | None
) -> Revocation:
    """Delete the grant (access and refresh token) at Canvas.

    ``DELETE`` needs a working access token; whether Canvas accepts an expired one is not
    documented (providers.md §7.3). So: try the stored access token; if Canvas rejects it and a
    refresh token is stored, refresh once and delete with the new access token. A refresh
    answering "refresh_token not found" means the grant is already gone.

    :raises ProviderUnavailable: transient failure (the host retries briefly).
    :raises ProviderError: Canvas refused the deletion for another reason.
    """
    if access_token:
        outcome = await delete(provider, access_token)
        if outcome is not None:
            return outcome
    if not refresh_token:
        if access_token:
            return Revocation(
                revoked=False,
                detail="Canvas rejected the stored access token and no refresh token is stored "
                "to renew it; the grant may already be gone",
            )
        return Revocation(revoked=False, detail="no token to revoke")
    try:
        fresh = await refresh(provider, refresh_token=refresh_token, scopes=())
    except ReconnectRequired:
        return Revocation(revoked=True, detail="Canvas no longer knows this grant")
    outcome = await delete(provider, fresh.access_token)
    if outcome is None:
        return Revocation(revoked=False, detail="Canvas rejected a freshly refreshed token")
    return outcome


async def delete(provider: ProviderContext, access_token: str) -> Revocation | None:
    """One ``DELETE /login/oauth2/token``; ``None`` when Canvas rejected the token itself."""
    url = endpoint(provider.settings.revoke_url, provider, "revocation")
    response = await provider.standard.send(
        bearer_request(provider, "DELETE", url, access_token), operation="revocation"
    )
    if response.is_success:
        return Revocation(revoked=True)
    if token_rejected(response):
        return None
    if response.status_code == 400 and NOT_OAUTH in _message(response).lower():
        return Revocation(
            revoked=False,
            detail="the stored token is not an OAuth token (a manually generated access "
            "token?); remove it in Canvas under Account > Settings",
        )
    raise classify(response, provider=provider.name, operation="revocation")


def _message(response: httpx.Response) -> str:
    body = json_object(response)
    message = body.get("message") if body is not None else None
    return message if isinstance(message, str) else ""
