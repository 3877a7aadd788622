"""Google provider for PulsePlan (Calendar, Gmail and any Google API).

The standard OAuth 2.0 flow plus Google's quirks (providers.md §1):

* ``access_type=offline`` and ``include_granted_scopes=true`` on every authorization request,
  ``prompt=consent`` only when the user has no refresh token stored (Google issues one on a
  repeat consent only when forced, and every forced consent counts toward its 100-token cap);
* granted scopes stored as Google reports them (granular consent can narrow them);
* the email from the ID token, else from OpenID userinfo;
* validation through ``tokeninfo`` (needs no scope) with the token in a POST body;
* RFC 7009 revocation with only the ``token`` field; an already-invalid token counts as revoked;
* Google's error vocabulary (:mod:`pulseplan_google.errors`).
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
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
from pulseplan_google import wire
from pulseplan_google.errors import classify
from pulseplan_google.spec import AUTHORIZE_PARAMS
from pulseplan_google.spec import CONSENT_PARAMS
from pulseplan_google.spec import SPEC
from pulseplan_google.spec import tokeninfo_url

__all__ = ["SPEC"]


@hookimpl
def describe_provider() -> ProviderSpec:
    """Google's endpoints, default scopes and settings."""
    return SPEC


@hookimpl
def authorization_url(
    provider: ProviderContext,
    state: str,
    redirect_uri: str,
    scopes: tuple[str, ...],
    code_verifier: str | None,
    needs_refresh_token: bool,
) -> str:
    """The consent URL with offline access, incremental scopes and, only when needed,
    ``prompt=consent``."""
    params = dict(AUTHORIZE_PARAMS)
    if needs_refresh_token:
        params.update(CONSENT_PARAMS)
    return provider.standard.authorization_url(
        state=state,
        redirect_uri=redirect_uri,
        scopes=scopes,
        code_verifier=code_verifier,
        extra_params=params,
    )


def _token_set(
    provider: ProviderContext, data: dict[str, Any], requested: tuple[str, ...]
) -> TokenSet:
    tokens = provider.standard.token_set(data, requested=requested)
    # Time-based access (§1.5): the refresh token itself ends; keep when, not the lifetime.
    lifetime = data.get("refresh_token_expires_in")
    if isinstance(lifetime, int | str) and not isinstance(lifetime, bool):
        try:
            seconds = int(lifetime)
        except ValueError:
            return tokens
        ends = datetime.now(UTC) + timedelta(seconds=max(seconds, 0))
        tokens.metadata["refresh_token_expires_at"] = ends.isoformat()
    return tokens


async def _email_from_userinfo(provider: ProviderContext, access_token: str) -> str | None:
    if not provider.settings.userinfo_url:
        return None
    try:
        info = await provider.standard.userinfo(access_token)
    except ProviderError as exc:
        # The code is spent: a failed identity lookup must not throw the new grant away.
        logger.warning("google identity lookup failed ({}); email unknown", exc.error)
        return None
    email = info.get("email")
    return email if isinstance(email, str) and email else None


@hookimpl
async def authorize(
    provider: ProviderContext, code: str, redirect_uri: str, code_verifier: str | None
) -> TokenSet:
    """Exchange the code; scopes as granted, email from the ID token or userinfo."""
    fields = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if code_verifier is not None:
        fields["code_verifier"] = code_verifier
    data = await wire.token_call(provider, fields, operation="authorization_code grant")
    # requested=(): when Google omits ``scope`` the host falls back to the flow's own scopes.
    tokens = _token_set(provider, data, ())
    if tokens.email is None:
        tokens.email = await _email_from_userinfo(provider, tokens.access_token)
    return tokens


@hookimpl
async def refresh(
    provider: ProviderContext, refresh_token: str, scopes: tuple[str, ...]
) -> TokenSet:
    """Refresh; Google normally sends no new refresh token (the host keeps the old one)."""
    fields = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    data = await wire.token_call(provider, fields, operation="refresh_token grant")
    return _token_set(provider, data, scopes)


@hookimpl
async def validate(provider: ProviderContext, access_token: str) -> Validation:
    """Ask tokeninfo (no scope needed); without a tokeninfo URL, fall back to userinfo."""
    url = tokeninfo_url(provider.settings)
    if url is None:
        return await provider.standard.validate(access_token=access_token)
    response = await wire.tokeninfo(provider, url, access_token)
    if response.is_success:
        info = wire.tokeninfo_result(response)
        client_id = provider.settings.client_id
        audiences = {info.get("aud"), info.get("azp")} - {None}
        if client_id and audiences and client_id not in audiences:
            return Validation(valid=False, detail="the token was issued to another OAuth client")
        email = info.get("email")
        scope = info.get("scope")
        return Validation(
            valid=True,
            email=email if isinstance(email, str) and email else None,
            scopes=tuple(scope.split()) if isinstance(scope, str) else None,
        )
    error = classify(response, operation="tokeninfo")
    if isinstance(error, ProviderUnavailable):
        raise error
    if response.status_code in (400, 401):
        # Google answers 400 invalid_token for an expired, revoked or unknown token.
        return Validation(valid=False, detail=f"Google rejected the token ({error.error})")
    raise error


@hookimpl
async def revoke(
    provider: ProviderContext, access_token: str | None, refresh_token: str | None
) -> Revocation:
    """Revoke the grant, preferring the refresh token. Google's revocation covers every scope
    the account granted to the app's Cloud project, for all of its clients."""
    url = provider.settings.revoke_url
    if not url:
        return Revocation(
            revoked=False,
            supported=False,
            detail="no Google revocation endpoint is configured; tokens deleted locally",
        )
    token = refresh_token or access_token
    if not token:
        return Revocation(revoked=False, detail="no token to revoke")
    response = await wire.revoke(provider, url, token)
    if response.is_success:
        return Revocation(revoked=True, detail="Google revoked this app's access to the account")
    error = classify(response, operation="revocation")
    if isinstance(error, ProviderUnavailable):
        raise error
    # RFC 7009 §2.2 / Google: revoking an unknown or dead token answers 400 invalid_token.
    if error.error in ("invalid_token", "invalid_grant"):
        return Revocation(revoked=True, detail="Google reports the token already invalid")
    raise error
