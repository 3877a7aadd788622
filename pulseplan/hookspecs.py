"""The plugin contract: every hook a PulsePlan plugin can implement.

There are two kinds of plugin:

* a **provider plugin** implements :func:`describe_provider` and any lifecycle hook
  (:func:`authorization_url`, :func:`authorize`, :func:`refresh`, :func:`validate`,
  :func:`revoke`) whose standard OAuth 2.0 behaviour it needs to change. The host calls a
  lifecycle hook for *one* provider at a time; hooks it does not implement fall back to the
  host's standard implementation (``provider.standard``).
* a **cross-cutting plugin** (audit, webhooks, metrics) implements :func:`connection_event`
  and may wrap lifecycle hooks with ``@hookimpl(wrapper=True)``; it sees every provider's calls.

Lifecycle hooks may be ``async def`` or plain functions: the host awaits what they return. A
wrapper receives the implementation's result (a coroutine for async implementations) from its
``yield`` and must return it, or an awaitable that resolves to the same type
(see :func:`pulseplan.plugins.maybe_await`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import pluggy

from pulseplan.provider import ConnectionEvent
from pulseplan.provider import ProviderContext
from pulseplan.provider import ProviderSpec
from pulseplan.provider import Revocation
from pulseplan.provider import TokenSet
from pulseplan.provider import Validation

PROJECT = "pulseplan"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: Hooks the host dispatches to one provider at a time.
LIFECYCLE_HOOKS = ("authorization_url", "authorize", "refresh", "validate", "revoke")


@hookspec
def describe_provider() -> ProviderSpec:
    """Describe the provider this plugin implements.

    Implemented once by each provider plugin; the spec's ``name`` must equal the plugin's
    entry-point name. Return a :class:`~pulseplan.provider.ProviderSpec` with endpoints, default
    scopes, scope separator, client-authentication method, PKCE support and the extra settings
    the provider needs.
    """


@hookspec(firstresult=True)
def authorization_url(
    provider: ProviderContext,
    state: str,
    redirect_uri: str,
    scopes: tuple[str, ...],
    code_verifier: str | None,
    needs_refresh_token: bool,
) -> str | Awaitable[str]:
    """Build the URL that sends the user to the provider's consent page.

    :param provider: the provider context (settings, HTTP client, standard implementation).
    :param state: the opaque single-use state value to round-trip.
    :param redirect_uri: the exact callback URL registered with the provider.
    :param scopes: scopes to request.
    :param code_verifier: the PKCE verifier when the provider supports PKCE, else ``None``;
        send only its S256 challenge.
    :param needs_refresh_token: the user has no refresh token stored, so the provider must
        issue one (Google: ``prompt=consent``).
    :return: the full authorization URL.
    """


@hookspec(firstresult=True)
def authorize(
    provider: ProviderContext,
    code: str,
    redirect_uri: str,
    code_verifier: str | None,
) -> TokenSet | Awaitable[TokenSet]:
    """Exchange an authorization code for tokens (RFC 6749 §4.1.3) and identify the account.

    :param provider: the provider context.
    :param code: the authorization code from the callback.
    :param redirect_uri: the same redirect URI used in the authorization request.
    :param code_verifier: the PKCE verifier of this flow, or ``None``.
    :return: the tokens, the granted scopes, the account email and provider metadata.
    :raises ReconnectRequired: the code was rejected (``invalid_grant``).
    :raises ProviderMisconfigured: the client credentials were rejected.
    :raises ProviderUnavailable: a transient failure.
    """


@hookspec(firstresult=True)
def refresh(
    provider: ProviderContext,
    refresh_token: str,
    scopes: tuple[str, ...],
    metadata: dict[str, Any],
) -> TokenSet | Awaitable[TokenSet]:
    """Use a refresh token to get a new access token (RFC 6749 §6).

    :param provider: the provider context.
    :param refresh_token: the stored refresh token.
    :param scopes: the connection's granted scopes.
    :param metadata: the connection's provider metadata.
    :return: the new tokens; ``refresh_token`` is ``None`` when the provider did not rotate it.
    :raises ReconnectRequired: the grant is dead (``invalid_grant`` and provider equivalents).
    :raises ProviderMisconfigured: the client credentials were rejected.
    :raises ProviderUnavailable: a transient failure; ``retry_after`` when the provider said.
    """


@hookspec(firstresult=True)
def validate(
    provider: ProviderContext,
    access_token: str,
    metadata: dict[str, Any],
) -> Validation | Awaitable[Validation]:
    """Ask the provider whether an access token still works.

    :param provider: the provider context.
    :param access_token: the access token to check.
    :param metadata: the connection's provider metadata.
    :return: a :class:`~pulseplan.provider.Validation`.
    :raises ProviderUnavailable: the provider could not answer.
    """


@hookspec(firstresult=True)
def revoke(
    provider: ProviderContext,
    access_token: str | None,
    refresh_token: str | None,
    metadata: dict[str, Any],
) -> Revocation | Awaitable[Revocation]:
    """Revoke the grant at the provider (RFC 7009 or the provider's equivalent).

    :param provider: the provider context.
    :param access_token: the access token, if one is stored.
    :param refresh_token: the refresh token, if one is stored (preferred: it ends the grant).
    :param metadata: the connection's provider metadata.
    :return: a :class:`~pulseplan.provider.Revocation`; ``supported=False`` when the provider
        has no revocation endpoint.
    :raises ProviderUnavailable: a transient failure; the host retries briefly.
    """


@hookspec
def connection_event(event: ConnectionEvent) -> Awaitable[None] | None:
    """React to something that happened to a connection (audit, webhooks, metrics).

    Called for every plugin that implements it. Exceptions are logged and swallowed so that one
    failing observer never breaks a token operation.

    :param event: what happened; identifiers only, never tokens.
    """
