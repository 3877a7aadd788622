"""The standard OAuth 2.0 lifecycle, registered ``trylast`` so that it answers for every
provider whose plugin does not implement a hook itself.

A provider plugin that needs the standard behaviour plus a tweak calls ``provider.standard``
inside its own implementation instead of relying on this fallback.
"""

from __future__ import annotations

from pulseplan.hookspecs import hookimpl
from pulseplan.provider import ProviderContext
from pulseplan.provider import Revocation
from pulseplan.provider import TokenSet
from pulseplan.provider import Validation


@hookimpl(trylast=True)
def authorization_url(
    provider: ProviderContext,
    state: str,
    redirect_uri: str,
    scopes: tuple[str, ...],
    code_verifier: str | None,
) -> str:
    return provider.standard.authorization_url(
        state=state, redirect_uri=redirect_uri, scopes=scopes, code_verifier=code_verifier
    )


@hookimpl(trylast=True)
async def authorize(
    provider: ProviderContext, code: str, redirect_uri: str, code_verifier: str | None
) -> TokenSet:
    return await provider.standard.exchange_code(
        code=code,
        redirect_uri=redirect_uri,
        code_verifier=code_verifier,
        requested=provider.settings.scopes,
    )


@hookimpl(trylast=True)
async def refresh(
    provider: ProviderContext, refresh_token: str, scopes: tuple[str, ...]
) -> TokenSet:
    return await provider.standard.refresh(refresh_token=refresh_token, scopes=scopes)


@hookimpl(trylast=True)
async def validate(provider: ProviderContext, access_token: str) -> Validation:
    return await provider.standard.validate(access_token=access_token)


@hookimpl(trylast=True)
async def revoke(
    provider: ProviderContext, access_token: str | None, refresh_token: str | None
) -> Revocation:
    return await provider.standard.revoke(access_token=access_token, refresh_token=refresh_token)
