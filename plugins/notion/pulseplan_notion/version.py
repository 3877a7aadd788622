"""The ``Notion-Version`` header: required on every Notion request, the OAuth endpoints
included (providers.md §4.1), pinned here and overridable with ``NOTION_VERSION``.

The host sends :attr:`ProviderSpec.request_headers` on every token, revocation and identity
request, but that mapping is fixed when the plugin describes itself, before settings exist. When
the operator pins another version, the hooks use a :class:`~pulseplan.standard.StandardOAuth2`
built around a copy of the spec carrying that version instead of ``provider.standard``.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date

from pulseplan import ProviderContext
from pulseplan.standard import StandardOAuth2

HEADER = "Notion-Version"
#: The version the reference pages list for the OAuth endpoints and the JS SDK's default.
DEFAULT_VERSION = "2025-09-03"
SETTING = "notion_version"
VERSION_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}")


def validate_version(value: str, production: bool) -> str:
    """A ``NOTION_VERSION`` value: a date such as ``2025-09-03``.

    :raises ValueError: not a valid ``YYYY-MM-DD`` date.
    """
    value = value.strip()
    if not VERSION_SHAPE.fullmatch(value):
        raise ValueError("must be a Notion API version date such as 2025-09-03")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a Notion API version date such as 2025-09-03") from None
    return value


def version(provider: ProviderContext) -> str:
    """The configured version (the pinned default when the setting is absent)."""
    return provider.settings.extra.get(SETTING) or DEFAULT_VERSION


def headers(provider: ProviderContext) -> dict[str, str]:
    """Headers for a Notion API call made by the plugin itself."""
    return {HEADER: version(provider), "Accept": "application/json"}


def standard(provider: ProviderContext) -> StandardOAuth2:
    """The host's standard client, sending the configured ``Notion-Version``."""
    wanted = version(provider)
    if provider.spec.request_headers.get(HEADER) == wanted:
        return provider.standard
    spec = dataclasses.replace(
        provider.spec, request_headers={**provider.spec.request_headers, HEADER: wanted}
    )
    return StandardOAuth2(spec, provider.settings, provider.http)
