"""Canvas code exchange and refresh: the standard token requests with Canvas's error rules,
the ``user`` object kept as metadata and the email looked up from the user's profile.

Canvas's token response has no ``scope`` and no ``id_token`` (providers.md §3.5)::

    {"access_token": "...", "token_type": "Bearer", "refresh_token": "...", "expires_in": 3600,
     "user": {"id": 42, "name": "Jimi Hendrix", "global_id": "10000000000042"},
     "canvas_region": "us-east-1"}

A confidential client's refresh returns no ``refresh_token`` (the same one is reused forever),
so :attr:`TokenSet.refresh_token` is ``None`` and the host keeps the stored one; a PKCE public
client's refresh rotates it, and the new one is passed on.
"""

from __future__ import annotations

import json
from typing import Any

from loguru import logger

from pulseplan import ProviderContext
from pulseplan import ProviderError
from pulseplan import TokenSet
from pulseplan_canvas.errors import classify
from pulseplan_canvas.errors import reclassify
from pulseplan_canvas.instance import BASE_URL_KEY
from pulseplan_canvas.instance import configured_base_url

PROFILE_PATH = "/api/v1/users/self/profile"


def token_metadata(data: dict[str, Any], base_url: str) -> dict[str, Any]:
    """Facts worth keeping from a token response: the instance, the Canvas user's id and name
    (``user``), and the region. Never a token."""
    metadata: dict[str, Any] = {BASE_URL_KEY: base_url}
    user = data.get("user")
    if isinstance(user, dict):
        if isinstance(user.get("id"), int | str):
            metadata["user_id"] = user["id"]
        if isinstance(user.get("name"), str):
            metadata["user_name"] = user["name"]
        if isinstance(user.get("global_id"), int | str):
            metadata["user_global_id"] = str(user["global_id"])
    if isinstance(data.get("canvas_region"), str):
        metadata["canvas_region"] = data["canvas_region"]
    return metadata


async def token_request(
    provider: ProviderContext, grant_type: str, **params: str | None
) -> dict[str, Any]:
    """The standard token request, with failures re-mapped by Canvas's rules."""
    try:
        return await provider.standard.token_request(grant_type, **params)
    except ProviderError as exc:
        raise reclassify(exc) from None


async def exchange_code(
    provider: ProviderContext, *, code: str, redirect_uri: str, code_verifier: str | None
) -> TokenSet:
    """Exchange an authorization code; identify the user from the response and the profile."""
    base_url = configured_base_url(provider)
    data = await token_request(
        provider,
        "authorization_code",
        code=code,
        redirect_uri=redirect_uri,
        code_verifier=code_verifier,
    )
    tokens = provider.standard.token_set(data)
    tokens.metadata = token_metadata(data, base_url)
    tokens.email = await profile_email(provider, base_url, tokens.access_token)
    return tokens


async def refresh(
    provider: ProviderContext, *, refresh_token: str, scopes: tuple[str, ...]
) -> TokenSet:
    """Refresh; ``refresh_token`` stays ``None`` unless Canvas rotated it (PKCE clients)."""
    base_url = configured_base_url(provider)
    data = await token_request(provider, "refresh_token", refresh_token=refresh_token)
    tokens = provider.standard.token_set(data, requested=scopes)
    tokens.metadata = token_metadata(data, base_url)
    return tokens


async def profile_email(provider: ProviderContext, base_url: str, access_token: str) -> str | None:
    """``primary_email`` (else an email-shaped ``login_id``) from the user's profile.

    The code is already spent, so a failed lookup (a scoped developer key without the profile
    scope answers 401) leaves the email unknown instead of failing the connection.
    """
    request = provider.http.build_request(
        "GET",
        base_url + PROFILE_PATH,
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
    )
    try:
        response = await provider.standard.send(request, operation="profile lookup")
        if not response.is_success:
            raise classify(response, provider=provider.name, operation="profile lookup")
        body = response.json()
    except ProviderError as exc:
        logger.warning("canvas profile lookup failed ({}); email unknown", exc.error)
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        logger.warning("canvas profile lookup returned no JSON; email unknown")
        return None
    if not isinstance(body, dict):
        return None
    for key in ("primary_email", "login_id"):
        value = body.get(key)
        if isinstance(value, str) and "@" in value:
            return value
    return None
