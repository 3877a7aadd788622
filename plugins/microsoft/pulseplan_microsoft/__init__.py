"""Microsoft identity platform (Entra ID, personal Microsoft accounts; Outlook via Graph)
provider for PulsePlan.

The standard OAuth 2.0 flow plus Microsoft's quirks (providers.md §2):

* endpoints under ``MICROSOFT_AUTHORITY`` and ``MICROSOFT_TENANT_ID`` (both validated);
* ``offline_access`` always requested, whatever ``MICROSOFT_SCOPES`` says, because without it
  there is no refresh token;
* refresh tokens rotate on every use; the hook returns the new one and the host stores it;
* Graph scopes stored in their short form; the email from the ID token, else Graph ``/me``
  (``mail``, then ``userPrincipalName``); the home tenant kept in metadata;
* validation through Graph ``/me``;
* no revocation endpoint: the host deletes the tokens locally and the user is told where to
  remove the app's access (``revokeSignInSessions`` would sign the user out of every app);
* AADSTS error codes classified (:mod:`pulseplan_microsoft.errors`).
"""

from __future__ import annotations

from typing import Any

from loguru import logger

from pulseplan import ProviderContext
from pulseplan import ProviderError
from pulseplan import ProviderSpec
from pulseplan import ProviderUnavailable
from pulseplan import Revocation
from pulseplan import TokenSet
from pulseplan import Validation
from pulseplan import hookimpl
from pulseplan_microsoft import wire
from pulseplan_microsoft.spec import AUTHORIZE_PARAMS
from pulseplan_microsoft.spec import SPEC
from pulseplan_microsoft.spec import short_scopes
from pulseplan_microsoft.spec import with_offline_access

__all__ = ["SPEC"]

#: The tenant that personal Microsoft accounts (Outlook.com, Hotmail, Live) sign in to.
PERSONAL_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
PERSONAL_APPS_PAGE = "https://account.live.com/consent/Manage"
WORK_APPS_PAGE = "https://myapps.microsoft.com"


@hookimpl
def describe_provider() -> ProviderSpec:
    """Microsoft's endpoint templates, default scopes and settings."""
    return SPEC


@hookimpl
def authorization_url(
    provider: ProviderContext,
    state: str,
    redirect_uri: str,
    scopes: tuple[str, ...],
    code_verifier: str | None,
) -> str:
    """The consent URL, with ``offline_access`` added when the configured scopes lack it."""
    return provider.standard.authorization_url(
        state=state,
        redirect_uri=redirect_uri,
        scopes=with_offline_access(scopes),
        code_verifier=code_verifier,
        extra_params=dict(AUTHORIZE_PARAMS),
    )


def _token_set(
    data: dict[str, Any], provider: ProviderContext, requested: tuple[str, ...]
) -> TokenSet:
    tokens = provider.standard.token_set(data, requested=requested)
    tokens.scopes = short_scopes(tokens.scopes)
    return tokens


@hookimpl
async def authorize(
    provider: ProviderContext, code: str, redirect_uri: str, code_verifier: str | None
) -> TokenSet:
    """Exchange the code at the tenant's token endpoint and identify the account."""
    fields = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if code_verifier is not None:
        fields["code_verifier"] = code_verifier
    data = await wire.token_call(provider, fields, operation="authorization_code grant")
    # requested=(): when no ``scope`` comes back the host falls back to the flow's own scopes.
    tokens = _token_set(data, provider, ())
    claims = wire.id_token_claims(provider, data.get("id_token"))
    tenant = claims.get("tid")
    if isinstance(tenant, str) and tenant:
        tokens.metadata["tenant_id"] = tenant
    tokens.email = wire.email_of(claims, "email")
    if tokens.email is None:
        try:
            me = await wire.graph_me(provider, tokens.access_token)
        except ProviderError as exc:
            # The code is spent: a failed identity lookup must not throw the new grant away.
            logger.warning("microsoft identity lookup failed ({}); email unknown", exc.error)
            me = {}
        tokens.email = wire.email_of(me, "mail", "userPrincipalName") or wire.email_of(
            claims, "preferred_username"
        )
    return tokens


@hookimpl
async def refresh(
    provider: ProviderContext, refresh_token: str, scopes: tuple[str, ...]
) -> TokenSet:
    """Refresh; Microsoft rotates the refresh token every time, and the host stores the new
    one before handing out the access token."""
    fields = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    data = await wire.token_call(provider, fields, operation="refresh_token grant")
    return _token_set(data, provider, scopes)


@hookimpl
async def validate(provider: ProviderContext, access_token: str) -> Validation:
    """Call Graph ``/me``: 2xx valid, 401 invalid; throttling and outages raise."""
    try:
        me = await wire.graph_me(provider, access_token)
    except ProviderUnavailable:
        raise
    except ProviderError as exc:
        if exc.status == 401:
            return Validation(
                valid=False, detail=f"Microsoft Graph rejected the token ({exc.error})"
            )
        raise
    return Validation(valid=True, email=wire.email_of(me, "mail", "userPrincipalName"))


def revocation_detail(metadata: dict[str, Any]) -> str:
    """What the user is told on disconnect: local deletion, and where to remove the app."""
    tenant = metadata.get("tenant_id")
    personal = f"{PERSONAL_APPS_PAGE} (personal Microsoft account)"
    work = f"{WORK_APPS_PAGE}, Manage your application, Revoke permissions (work or school account)"
    where = personal if tenant == PERSONAL_TENANT else work if tenant else f"{personal} or {work}"
    return (
        "Microsoft has no token revocation endpoint: the tokens were deleted locally; an access "
        "token already issued stays valid until it expires (at most 90 minutes). To remove "
        f"this app's access to the account, use {where}."
    )


@hookimpl
def revoke(metadata: dict[str, Any]) -> Revocation:
    """Nothing to call at Microsoft: report local deletion and how the user can finish it."""
    return Revocation(revoked=False, supported=False, detail=revocation_detail(metadata))
