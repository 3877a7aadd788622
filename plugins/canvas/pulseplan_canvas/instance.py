"""Which Canvas instances PulsePlan talks to, and the guard that keeps it that way.

Every Canvas instance has its own host (``https://school.instructure.com``). The seed accepted
any ``canvas_url`` a client sent and called it with the user's token: a server-side request
forgery hole that also leaked tokens to arbitrary hosts (seed-system.md §8.5 item 24). Here the
instances come only from operator configuration: ``CANVAS_BASE_URL`` (where new OAuth flows
go) and the optional ``CANVAS_ALLOWED_BASE_URLS`` (further instances whose existing connections
may be served), each validated once at start-up. Each connection records its instance in
``metadata["base_url"]``. Before any provider call for an existing connection, the stored
instance is looked up among the configured ones and the call is bound to the *configured*
spelling of that instance; a row naming any other instance (tampered, or left over from an
earlier configuration) is refused without contacting anything. The stored string itself is
never used to build a URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from pulseplan import ProviderContext
from pulseplan import ProviderMisconfigured
from pulseplan import StandardOAuth2
from pulseplan.provider_config import check_url

#: Key of the instance URL in a connection's metadata.
BASE_URL_KEY = "base_url"
#: Key of the extra instances (``CANVAS_ALLOWED_BASE_URLS``) in the provider's settings.
ALLOWED_KEY = "allowed_base_urls"
#: ``error`` code reported when a connection names an instance that is not configured.
INSTANCE_MISMATCH = "canvas_instance_mismatch"
#: Why such a connection is refused (no URL in it: the stored value is not trusted).
INSTANCE_REFUSED = (
    "the connection belongs to another Canvas instance than CANVAS_BASE_URL, "
    "and that instance is not listed in CANVAS_ALLOWED_BASE_URLS"
)
#: Separators between ``CANVAS_ALLOWED_BASE_URLS`` entries, as for ``{NAME}_SCOPES``.
SEPARATORS = re.compile(r"[\s,]+")
DEFAULT_PORTS = {"http": 80, "https": 443}
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def _origin(value: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an absolute URL, lower-cased, default port filled in.

    :raises ValueError: not an absolute http(s) URL, or a bad port.
    """
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError("is not an absolute http(s) URL")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def validate_base_url(value: str, production: bool) -> str:
    """Validate and normalise ``CANVAS_BASE_URL`` (a :class:`~pulseplan.SettingSpec` validator).

    Accepted: ``https://host[:port]``, optionally with a trailing slash; plain ``http`` only
    for a loopback host outside production (tests run the fake provider there). Refused:
    credentials, a path (Canvas serves OAuth and the API from the host root, so a path is
    nearly always a pasted course or login URL), a query, a fragment, whitespace.

    :return: ``scheme://host[:port]``, lower-cased, without a default port or trailing slash.
    :raises ValueError: with a message for the operator.
    """
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must not contain whitespace or control characters")
    checked = check_url(value, production=production)
    parts = urlsplit(checked)
    if parts.path not in ("", "/"):
        raise ValueError(
            "must be the instance root such as https://school.instructure.com, without a path"
        )
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValueError("must not contain a query or fragment")
    scheme, host, port = _origin(checked)
    netloc = f"[{host}]" if ":" in host else host
    if port != DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    return f"{scheme}://{netloc}"


def parse_bool(value: str, production: bool) -> str:
    """Normalise a boolean setting to ``"true"``/``"false"``.

    :raises ValueError: not a recognised boolean word.
    """
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return "true"
    if word in FALSE_WORDS:
        return "false"
    raise ValueError("must be true or false")


def configured_base_url(provider: ProviderContext) -> str:
    """The validated instance URL from ``CANVAS_BASE_URL``.

    :raises ProviderMisconfigured: the setting is missing (the host normally refuses to use an
        unconfigured provider before this).
    """
    base = provider.settings.extra.get(BASE_URL_KEY)
    if not base:
        raise ProviderMisconfigured(
            "CANVAS_BASE_URL is not configured", provider=provider.name, error="not_configured"
        )
    return base


def pkce_enabled(provider: ProviderContext) -> bool:
    """Whether ``CANVAS_PKCE`` says the instance supports PKCE S256."""
    return provider.settings.extra.get("pkce") == "true"


def same_instance(stored: object, configured: str) -> bool:
    """Whether a stored instance URL names the configured instance (scheme, host and port)."""
    if not isinstance(stored, str):
        return False
    try:
        return _origin(stored) == _origin(configured)
    except ValueError:
        return False


def validate_allowed_base_urls(value: str, production: bool) -> str:
    """Validate and normalise ``CANVAS_ALLOWED_BASE_URLS`` (a :class:`~pulseplan.SettingSpec`
    validator): instance roots separated by commas and/or whitespace, each checked like
    ``CANVAS_BASE_URL`` by :func:`validate_base_url`.

    :return: the normalised roots in the given order, duplicates dropped, space-joined;
        ``""`` for an empty list.
    :raises ValueError: naming the bad entry by position, e.g. ``entry 2: must use https ...``.
    """
    roots: dict[str, None] = {}  # an ordered set
    entries = [entry for entry in SEPARATORS.split(value) if entry]
    for number, entry in enumerate(entries, start=1):
        try:
            roots.setdefault(validate_base_url(entry, production))
        except ValueError as exc:
            raise ValueError(f"entry {number}: {exc}") from None
    return " ".join(roots)


def allowed_base_urls(provider: ProviderContext) -> tuple[str, ...]:
    """The validated extra instances from ``CANVAS_ALLOWED_BASE_URLS`` (possibly none)."""
    return tuple(provider.settings.extra.get(ALLOWED_KEY, "").split())


def instance_context(
    provider: ProviderContext, metadata: Mapping[str, Any]
) -> ProviderContext | None:
    """The context to serve this connection with, or ``None`` when it must be refused.

    - no ``base_url`` (stored through ``POST /tokens/connections/canvas``, or an older row) or
      ``CANVAS_BASE_URL``'s instance: ``provider`` itself, endpoint overrides included; the
      next refresh records the instance;
    - an instance listed in ``CANVAS_ALLOWED_BASE_URLS``: a context bound to that instance
      (:func:`bound_context`), built from the configured entry, not from the stored string;
    - anything else: ``None``. Instances compare by scheme, host and port.
    """
    stored = metadata.get(BASE_URL_KEY)
    if stored is None or same_instance(stored, configured_base_url(provider)):
        return provider
    for allowed in allowed_base_urls(provider):
        if same_instance(stored, allowed):
            return bound_context(provider, allowed)
    return None


def bound_context(provider: ProviderContext, base_url: str) -> ProviderContext:
    """``provider`` re-pointed at another configured instance ``base_url``.

    The endpoints are re-derived from the spec's ``{base_url}/...`` templates (the host hands
    each hook the plugin's own ``SPEC``), so ``CANVAS_*_URL`` overrides, which name one host,
    apply to ``CANVAS_BASE_URL``'s instance only. Client credentials are shared: every instance
    must accept ``CANVAS_CLIENT_ID`` / ``CANVAS_CLIENT_SECRET`` (an inherited or consortium
    developer key).
    """
    spec = provider.spec
    values = {**provider.settings.extra, BASE_URL_KEY: base_url}

    def fill(template: str | None) -> str | None:
        return template.format(**values) if template else None

    settings = replace(
        provider.settings,
        authorize_url=spec.authorize_url.format(**values),
        token_url=spec.token_url.format(**values),
        revoke_url=fill(spec.revoke_url),
        userinfo_url=fill(spec.userinfo_url),
        extra=values,
    )
    return replace(
        provider, settings=settings, standard=StandardOAuth2(spec, settings, provider.http)
    )
