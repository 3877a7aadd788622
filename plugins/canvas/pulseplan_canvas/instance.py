"""Which Canvas instance PulsePlan talks to, and the guard that keeps it that way.

Every Canvas instance has its own host (``https://school.instructure.com``). The seed accepted
any ``canvas_url`` a client sent and called it with the user's token: a server-side request
forgery hole that also leaked tokens to arbitrary hosts (seed-system.md §8.5 item 24). Here the
instance comes only from operator configuration (``CANVAS_BASE_URL``), is validated once at
start-up, and is recorded in each connection's ``metadata["base_url"]``. Before any provider
call for an existing connection, the stored instance must be the configured one; a row naming
another instance (tampered, or left over from an earlier configuration) is refused without
contacting anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pulseplan import ProviderContext
from pulseplan import ProviderMisconfigured
from pulseplan.provider_config import check_url

#: Key of the instance URL in a connection's metadata.
BASE_URL_KEY = "base_url"
#: ``error`` code reported when a connection names another instance.
INSTANCE_MISMATCH = "canvas_instance_mismatch"
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


def instance_problem(provider: ProviderContext, metadata: Mapping[str, Any]) -> str | None:
    """Why this connection must not be used with the configured instance, or ``None``.

    A row without ``base_url`` (stored through ``POST /tokens/connections/canvas`` or imported
    from the seed) belongs to the configured instance: every request goes there anyway, and the
    next refresh records it.
    """
    stored = metadata.get(BASE_URL_KEY)
    if stored is None:
        return None
    if same_instance(stored, configured_base_url(provider)):
        return None
    return "the connection belongs to another Canvas instance than CANVAS_BASE_URL"
