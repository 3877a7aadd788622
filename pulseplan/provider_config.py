"""Resolve a provider's settings from the environment (``{NAME}_CLIENT_ID``, ``{NAME}_SCOPES``,
``{NAME}_AUTHORIZE_URL``... and the provider's own declared settings).

Plugins never read the environment: the host does it here, once, and reports every problem as
one line naming the variable, so ``pulseplan check`` can print them and production refuses to
serve an unconfigured provider.
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Mapping
from urllib.parse import urlsplit

from pulseplan.provider import ProviderSettings
from pulseplan.provider import ProviderSpec

URL_FIELDS = ("authorize_url", "token_url", "revoke_url", "userinfo_url")


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and loopback IP literals."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(value: str, *, production: bool) -> str:
    """Validate an endpoint URL: absolute https, or http on a loopback host outside production.

    :raises ValueError: with a message fit for an operator.
    """
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an absolute http(s) URL")
    if parts.username or parts.password:
        raise ValueError("must not contain credentials")
    if parts.scheme == "http" and (production or not is_loopback_host(parts.hostname)):
        raise ValueError("must use https (plain http is allowed only for loopback in development)")
    return value.rstrip("/") if parts.path in ("", "/") else value


def split_scopes(value: str) -> tuple[str, ...]:
    """Scopes from an env var: separated by commas and/or whitespace."""
    return tuple(s for s in re.split(r"[\s,]+", value) if s)


def template_fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def resolve(
    spec: ProviderSpec, environ: Mapping[str, str], *, production: bool
) -> ProviderSettings:
    """Build :class:`ProviderSettings` for ``spec``; problems are collected, never raised."""
    prefix = spec.name.upper()
    problems: list[str] = []

    def env(suffix: str) -> str | None:
        value = environ.get(f"{prefix}_{suffix}", "").strip()
        return value or None

    client_id, client_secret = env("CLIENT_ID"), env("CLIENT_SECRET")
    if not client_id:
        problems.append(f"{prefix}_CLIENT_ID is not set")
    if spec.client_auth != "none" and not client_secret:
        problems.append(f"{prefix}_CLIENT_SECRET is not set")

    extra: dict[str, str] = {}
    unusable: set[str] = set()  # settings already reported; endpoints built from them are moot
    for setting in spec.settings:
        raw = environ.get(setting.env, "").strip() or setting.default
        if raw is None:
            unusable.add(setting.name)
            if setting.required:
                problems.append(f"{setting.env} is not set ({setting.description or 'required'})")
            continue
        if setting.validate is not None:
            try:
                raw = setting.validate(raw, production)
            except ValueError as exc:
                unusable.add(setting.name)
                problems.append(f"{setting.env}: {exc}")
                continue
        extra[setting.name] = raw

    urls: dict[str, str | None] = {}
    for field in URL_FIELDS:
        override = env(field.upper())
        template: str | None = override or getattr(spec, field)
        if template is None:
            urls[field] = None
            continue
        missing = template_fields(template) - extra.keys()
        if missing:
            urls[field] = None
            if not missing <= unusable:
                problems.append(f"{spec.name} {field} needs unknown setting(s) {sorted(missing)}")
            continue
        url = template.format(**extra)
        try:
            urls[field] = check_url(url, production=production)
        except ValueError as exc:
            source = f"{prefix}_{field.upper()}" if override else f"{spec.name} {field}"
            problems.append(f"{source}: {exc}")
            urls[field] = None

    scopes_env = env("SCOPES")
    scopes = split_scopes(scopes_env) if scopes_env else spec.default_scopes
    return ProviderSettings(
        name=spec.name,
        client_id=client_id,
        client_secret=client_secret,
        scopes=scopes,
        authorize_url=urls["authorize_url"] or "",
        token_url=urls["token_url"] or "",
        revoke_url=urls["revoke_url"],
        userinfo_url=urls["userinfo_url"],
        extra=extra,
        problems=tuple(problems),
    )
