"""The types that cross the plugin boundary.

A provider plugin *describes* its provider with a :class:`ProviderSpec` and answers lifecycle
hooks with :class:`TokenSet`, :class:`Validation` and :class:`Revocation`. The host hands each
hook a :class:`ProviderContext`: the resolved settings, an HTTP client with timeouts, and the
standard OAuth 2.0 implementation to delegate to.

Token fields are excluded from ``repr`` so a token never reaches a log line or a traceback by
way of these objects.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

if TYPE_CHECKING:
    import httpx

    from pulseplan.standard import StandardOAuth2

ClientAuth = Literal["client_secret_post", "client_secret_basic", "none"]
BodyFormat = Literal["form", "json"]


@dataclass(frozen=True)
class SettingSpec:
    """A setting a provider needs beyond client id, secret and scopes.

    :param name: key in :attr:`ProviderSettings.extra` and in endpoint templates (``{name}``).
    :param env: the environment variable the host reads it from (``CANVAS_BASE_URL``).
    :param description: one line for ``pulseplan check`` and ``.env.example``.
    :param required: the provider counts as not configured without it.
    :param default: used when the variable is unset.
    :param secret: never printed by ``pulseplan check`` or ``providers``.
    :param validate: returns the normalised value or raises ``ValueError`` with a clear message;
        receives the value and whether the host runs in production.
    """

    name: str
    env: str
    description: str = ""
    required: bool = False
    default: str | None = None
    secret: bool = False
    validate: Callable[[str, bool], str] | None = None


@dataclass(frozen=True)
class ProviderSpec:
    """What a plugin tells the host about its provider (``describe_provider`` hook).

    Endpoint URLs may contain ``{setting}`` placeholders filled from :class:`SettingSpec`
    values (``"{base_url}/login/oauth2/auth"``); ``NAME_AUTHORIZE_URL``-style environment
    overrides replace them entirely.
    """

    name: str
    display_name: str
    authorize_url: str
    token_url: str
    revoke_url: str | None = None
    userinfo_url: str | None = None
    default_scopes: tuple[str, ...] = ()
    scope_separator: str = " "
    client_auth: ClientAuth = "client_secret_post"
    token_request_format: BodyFormat = "form"
    pkce: bool = True
    supports_refresh: bool = True
    supports_revoke: bool = True
    supports_validate: bool = True
    extra_authorize_params: Mapping[str, str] = field(default_factory=dict)
    #: Headers sent on every token, revocation and identity request (Notion-Version).
    request_headers: Mapping[str, str] = field(default_factory=dict)
    settings: tuple[SettingSpec, ...] = ()
    docs_url: str | None = None


@dataclass(frozen=True)
class ProviderSettings:
    """A provider's configuration as the host resolved it from the environment."""

    name: str
    client_id: str | None
    client_secret: str | None = field(repr=False)
    scopes: tuple[str, ...]
    authorize_url: str
    token_url: str
    revoke_url: str | None
    userinfo_url: str | None
    extra: Mapping[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def configured(self) -> bool:
        """True when the provider has credentials and every required setting is valid."""
        return not self.problems


@dataclass(frozen=True)
class ProviderContext:
    """Everything a lifecycle hook may use. Plugins never read env vars or storage themselves.

    :param spec: the provider's own description.
    :param settings: resolved settings (client credentials, endpoints, extra settings).
    :param http: a shared ``httpx.AsyncClient`` with the host's timeouts.
    :param standard: the host's RFC 6749/7636/7009 implementation bound to this provider.
    :param production: whether the host runs with ``PULSEPLAN_ENV=production``.
    """

    spec: ProviderSpec
    settings: ProviderSettings
    http: httpx.AsyncClient
    standard: StandardOAuth2
    production: bool = False

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class TokenSet:
    """Tokens and account facts a provider returned from a code exchange or a refresh.

    :param access_token: the bearer token.
    :param refresh_token: ``None`` when the response had none; the host then keeps the old one.
    :param expires_at: timezone-aware expiry, ``None`` when the provider gives none (Notion).
    :param scopes: granted scopes when the provider reported them, else ``None``.
    :param email: the account's email address when known.
    :param metadata: provider facts to keep with the connection (no secrets).
    """

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None
    scopes: tuple[str, ...] | None = None
    email: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Validation:
    """Result of asking the provider whether an access token still works.

    :param valid: the provider accepted the token.
    :param email: the account email if the check revealed it.
    :param scopes: granted scopes if the check revealed them.
    :param detail: a short reason when not valid.
    """

    valid: bool
    email: str | None = None
    scopes: tuple[str, ...] | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Revocation:
    """Result of revoking a grant at the provider.

    :param revoked: the provider confirmed the revocation.
    :param supported: ``False`` when the provider has no revocation endpoint (Microsoft).
    :param detail: a short human explanation for the API response.
    """

    revoked: bool
    supported: bool = True
    detail: str | None = None


EventName = Literal[
    "connected",
    "refreshed",
    "refresh_failed",
    "needs_reauth",
    "disconnected",
    "revocation_failed",
]


@dataclass(frozen=True)
class ConnectionEvent:
    """Something happened to a connection. Carries identifiers, never tokens.

    :param name: what happened.
    :param user_id: the connection's user.
    :param provider: the provider name.
    :param connection_id: the row id, when one exists.
    :param occurred_at: when it happened (UTC).
    :param detail: a short machine-readable reason (``invalid_grant``) for failures.
    :param request_id: the request that caused it, when there was one.
    """

    name: EventName
    user_id: str
    provider: str
    occurred_at: datetime
    connection_id: str | None = None
    detail: str | None = None
    request_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.name,
            "user_id": self.user_id,
            "provider": self.provider,
            "connection_id": self.connection_id,
            "occurred_at": self.occurred_at.isoformat(),
            "detail": self.detail,
            "request_id": self.request_id,
        }
