"""Notion validation (``GET /v1/users/me``) and revocation (``POST /v1/oauth/revoke``),
providers.md §4.1 and §4.4.

Validation uses ``/v1/users/me`` with the bearer token rather than ``/v1/oauth/introspect``
(client Basic auth): it proves the token works on the API the app will call, and it reveals the
owner's email. Notion answers errors as ``{"object": "error", "status", "code", "message"}``:

* 401 ``unauthorized``: the token is dead;
* 403 ``restricted_resource`` / 404 ``object_not_found``: the token works but may not see
  this (capabilities, sharing), so it is reported valid with a detail;
* 429 ``rate_limited`` (``Retry-After``), 529 ``service_overload``, 5xx: transient, raised.
"""

from __future__ import annotations

import httpx

from pulseplan import ProviderContext
from pulseplan import ProviderUnavailable
from pulseplan import Revocation
from pulseplan import Validation
from pulseplan import json_object
from pulseplan.standard import classify
from pulseplan_notion.tokens import owner_email
from pulseplan_notion.version import headers
from pulseplan_notion.version import standard

#: Codes that say "this token may not see that", not "this token is dead".
NOT_DEAD = frozenset({"restricted_resource", "object_not_found"})
#: Revocation answers meaning the token was already unusable: nothing left to revoke.
ALREADY_INVALID = frozenset({"invalid_grant", "invalid_token", "unauthorized"})


async def validate(provider: ProviderContext, *, access_token: str) -> Validation:
    """Ask ``/v1/users/me`` whether the token works.

    :raises ProviderUnavailable: rate limited, overloaded, 5xx, network.
    :raises ProviderError: any other unexpected answer, classified.
    """
    url = provider.settings.userinfo_url
    if not url:
        return Validation(valid=False, detail="no Notion identity endpoint configured")
    request = provider.http.build_request(
        "GET", url, headers={"Authorization": f"Bearer {access_token}", **headers(provider)}
    )
    response = await provider.standard.send(request, operation="validation")
    if response.is_success:
        return Validation(valid=True, email=_bot_owner_email(response))
    error = classify(response, provider=provider.name, operation="validation")
    if isinstance(error, ProviderUnavailable):
        raise error
    if response.status_code == 401:
        return Validation(valid=False, detail=f"Notion rejected the access token ({error.error})")
    if error.error in NOT_DEAD or response.status_code in (403, 404):
        return Validation(
            valid=True,
            detail=f"Notion accepted the token but refused /v1/users/me ({error.error}): a "
            "capability or sharing limit, not a dead token",
        )
    raise error


async def revoke(
    provider: ProviderContext, *, access_token: str | None, refresh_token: str | None
) -> Revocation:
    """``POST /v1/oauth/revoke`` ``{"token": <access token>}`` with Basic auth.

    Notion documents the *access* token here (revoking it ends the connection), unlike RFC 7009
    clients that prefer the refresh token; the refresh token is used only when no access token
    is stored.

    :raises ProviderUnavailable: transient failure (the host retries briefly).
    :raises ProviderError: Notion refused for another reason (credentials, request).
    """
    url = provider.settings.revoke_url
    if not url:
        return Revocation(
            revoked=False, supported=False, detail="no Notion revocation endpoint configured"
        )
    token = access_token or refresh_token
    if not token:
        return Revocation(revoked=False, detail="no token to revoke")
    client = standard(provider)
    response = await client.send(
        client.client_request(url, {"token": token}), operation="revocation"
    )
    if response.is_success:
        return Revocation(revoked=True)
    error = classify(response, provider=provider.name, operation="revocation")
    if isinstance(error, ProviderUnavailable):
        raise error
    if error.error in ALREADY_INVALID:
        return Revocation(revoked=True, detail="Notion reports the token already invalid")
    raise error


def _bot_owner_email(response: httpx.Response) -> str | None:
    """The email of the user who owns the bot (``bot.owner.user.person.email``)."""
    body = json_object(response)
    bot = body.get("bot") if body is not None else None
    return owner_email(bot.get("owner")) if isinstance(bot, dict) else None
