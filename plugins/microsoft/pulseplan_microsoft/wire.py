"""Requests to the Microsoft identity platform token endpoint and to Microsoft Graph ``/me``,
and the ID token's claims.

Requests are built and sent by the host's standard client (``client_secret_post``, shared pool,
timeouts); failures are read by :mod:`.errors` so the AADSTS number decides the class.
"""

from __future__ import annotations

from typing import Any

import jwt

from pulseplan import ProviderContext
from pulseplan import ProviderMisconfigured
from pulseplan import json_object
from pulseplan_microsoft.errors import classify
from pulseplan_microsoft.spec import NAME


async def token_call(
    provider: ProviderContext, fields: dict[str, str], *, operation: str
) -> dict[str, Any]:
    """POST ``fields`` to the token endpoint through the host's standard client, failures read
    by :func:`~pulseplan_microsoft.errors.classify`.

    :return: the decoded token response.
    :raises ProviderError: classified failure.
    """
    return await provider.standard.post_token(fields, operation=operation, classifier=classify)


async def graph_me(provider: ProviderContext, access_token: str) -> dict[str, Any]:
    """``GET /v1.0/me`` (``User.Read``). Graph access tokens may be encrypted or not JWTs at all
    (providers.md §2.1), so asking Graph is the only way to check one."""
    url = provider.settings.userinfo_url
    if not url:
        raise ProviderMisconfigured("no Microsoft Graph /me endpoint configured", provider=NAME)
    request = provider.http.build_request(
        "GET",
        url,
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
    )
    response = await provider.standard.send(request, operation="Graph /me")
    if not response.is_success:
        raise classify(response, operation="Graph /me")
    return json_object(response) or {}


def id_token_claims(provider: ProviderContext, id_token: object) -> dict[str, Any]:
    """Claims of an ID token received straight from the token endpoint over TLS (OIDC Core
    §3.1.3.7 allows skipping the signature then); empty unless its audience is this client."""
    if not isinstance(id_token, str):
        return {}
    try:
        claims = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if provider.settings.client_id not in audiences:
        return {}
    return claims


def email_of(info: dict[str, Any], *keys: str) -> str | None:
    """The first of ``keys`` in ``info`` that holds something shaped like an email address."""
    for key in keys:
        value = info.get(key)
        if isinstance(value, str) and "@" in value:
            return value
    return None
