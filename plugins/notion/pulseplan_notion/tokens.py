"""Notion code exchange and refresh (providers.md §4.2, §4.3).

Both go to ``POST /v1/oauth/token`` as JSON with HTTP Basic client authentication (the spec's
``token_request_format="json"``) and the ``Notion-Version`` header. The response::

    {"access_token": "...", "token_type": "bearer", "refresh_token": "..." | null,
     "bot_id": "...", "workspace_id": "...", "workspace_name": "...", "workspace_icon": null,
     "owner": {"type": "user", "user": {"id": "...", "person": {"email": "..."}}},
     "duplicated_template_id": null, "request_id": "..."}

* no ``expires_in``: :attr:`TokenSet.expires_at` stays ``None`` and the host never refreshes
  proactively (a refresh happens only when forced);
* every refresh returns a new pair and the old refresh token dies: the new one is passed on
  and the host stores it before handing out the access token; a ``null`` one keeps the old;
* no ``scope``: the host keeps the scopes of the flow (none, for Notion).
"""

from __future__ import annotations

from typing import Any

from pulseplan import ProviderContext
from pulseplan import TokenSet
from pulseplan_notion.version import standard

#: Top-level response fields kept verbatim in the connection's metadata.
KEPT_FIELDS = (
    "bot_id",
    "workspace_id",
    "workspace_name",
    "workspace_icon",
    "duplicated_template_id",
)


def token_metadata(data: dict[str, Any]) -> dict[str, Any]:
    """Workspace, bot and owner facts from a token response. Never a token."""
    metadata: dict[str, Any] = {}
    for key in KEPT_FIELDS:
        if key in data and (data[key] is None or isinstance(data[key], str)):
            metadata[key] = data[key]
    owner = data.get("owner")
    if isinstance(owner, dict) and isinstance(owner.get("type"), str):
        metadata["owner_type"] = owner["type"]
        user = owner.get("user")
        if isinstance(user, dict):
            if isinstance(user.get("id"), str):
                metadata["owner_user_id"] = user["id"]
            if isinstance(user.get("name"), str):
                metadata["owner_user_name"] = user["name"]
    return metadata


def owner_email(owner: object) -> str | None:
    """``owner.user.person.email`` of a user-owned token (workspace-owned ones have none)."""
    if not isinstance(owner, dict):
        return None
    user = owner.get("user")
    person = user.get("person") if isinstance(user, dict) else None
    email = person.get("email") if isinstance(person, dict) else None
    return email if isinstance(email, str) and email else None


def token_set(provider: ProviderContext, data: dict[str, Any]) -> TokenSet:
    tokens = standard(provider).token_set(data)
    tokens.metadata = token_metadata(data)
    tokens.email = owner_email(data.get("owner"))
    return tokens


async def exchange_code(provider: ProviderContext, *, code: str, redirect_uri: str) -> TokenSet:
    """Exchange an authorization code. Notion has no PKCE, so no verifier is ever sent."""
    data = await standard(provider).token_request(
        "authorization_code", code=code, redirect_uri=redirect_uri
    )
    return token_set(provider, data)


async def refresh(provider: ProviderContext, *, refresh_token: str) -> TokenSet:
    """Refresh; Notion rotates, so the response's refresh token replaces the stored one."""
    data = await standard(provider).token_request("refresh_token", refresh_token=refresh_token)
    return token_set(provider, data)
