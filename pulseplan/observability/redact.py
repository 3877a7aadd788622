"""Redaction in one place: what counts as a secret, by key name and by the shape of a value.

Logs (messages, extras, exception text), Sentry events and breadcrumbs all go through here, so
adding a token shape once protects every output. Redaction is defence in depth: the code never
logs a token on purpose (DESIGN.md §6.1), and this module catches the mistakes.

* :func:`is_sensitive_key`: a mapping key whose value is always replaced (``authorization``,
  ``access_token``, ``code``, ``state``, ``*_secret``, ``*_key``...).
* :func:`redact_text`: known token shapes inside free text (bearer credentials, JWTs, Google
  ``ya29.``/``1//`` tokens, Notion ``secret_``/``ntn_``, PulsePlan agent secrets ``ppa_``,
  Canvas ``<id>~<token>``, sensitive ``key=value`` pairs, URL userinfo, PEM private keys).
  ``aggressive=True`` also masks long mixed letter-and-digit runs; it is meant for exception
  text from library code, whose shape nobody controls.
* :func:`redact`: both of the above over nested data (dicts, lists, tuples).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from datetime import time
from decimal import Decimal
from enum import Enum
from typing import Any
from urllib.parse import urlsplit
from urllib.parse import urlunsplit
from uuid import UUID

REDACTED = "[REDACTED]"
MAX_DEPTH = 12

#: Keys whose value is always secret, compared after lower-casing and ``-``/space -> ``_``.
SENSITIVE_EXACT = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "assertion",
        "auth",
        "authorization",
        "client_assertion",
        "client_secret",
        "code",
        "code_verifier",
        "cookie",
        "cookies",
        "credential",
        "credentials",
        "dsn",
        "id_token",
        "jwt",
        "key",
        "passwd",
        "password",
        "private_key",
        "proxy_authorization",
        "pwd",
        "refresh_token",
        "secret",
        "session",
        "set_cookie",
        "signature",
        "state",
        "token",
        "x_api_key",
    }
)
#: Substrings that make any key secret (``google_client_secret``, ``x_auth_token``...).
SENSITIVE_PARTS = (
    "token",
    "secret",
    "password",
    "passwd",
    "authorization",
    "cookie",
    "api_key",
    "apikey",
    "credential",
    "private_key",
    "verifier",
    "dsn",
)
#: ``token_url``-style keys hold endpoints, not secrets; ``tokens_total`` and the like count.
NOT_SECRET_SUFFIXES = ("_url", "_uri", "_count", "_type", "_expires_at", "_at")

_SECRET_KEYS = (
    r"access_token|refresh_token|id_token|client_secret|code_verifier|code|state|token"
    r"|password|passwd|secret|api_key|apikey|key|assertion|client_assertion|signature|sig"
)

# Order matters: structured shapes first, so a JWT inside ``Bearer ...`` is one redaction.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # PEM private keys, whole block.
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S
        ),
        REDACTED,
    ),
    # A credential header written out as text: everything up to the end of the value.
    (
        re.compile(
            r"(?i)\b(authorization|proxy-authorization|cookie|set-cookie|x-api-key)"
            r"([\"']?\s*[:=]\s*[\"']?)[^\n\"']+"
        ),
        r"\1\2" + REDACTED,
    ),
    # Bearer credentials anywhere else.
    (re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=\-]{6,}"), r"\1\2" + REDACTED),
    # JWTs (and lone JWT headers): base64url of '{"' is 'eyJ'.
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}(?:\.[A-Za-z0-9_\-]*){0,2}"), REDACTED),
    # Google access tokens, refresh tokens and authorization codes.
    (re.compile(r"\bya29\.[A-Za-z0-9_\-.]+"), REDACTED),
    (re.compile(r"(?<![A-Za-z0-9])1//[A-Za-z0-9_\-.]{10,}"), REDACTED),
    (re.compile(r"(?<![A-Za-z0-9/])4/[A-Za-z0-9_\-]{20,}"), REDACTED),
    # Notion integration / OAuth secrets.
    (re.compile(r"\b(?:secret|ntn)_[A-Za-z0-9]{20,}"), REDACTED),
    # PulsePlan agent secrets.
    (re.compile(r"\bppa_[A-Za-z0-9_\-]{16,}"), REDACTED),
    # Canvas access tokens: '<shard id>~<64 chars>'.
    (re.compile(r"\b\d{1,8}~[A-Za-z0-9]{20,}"), REDACTED),
    # Microsoft refresh tokens ('M.C5..', '0.A..').
    (re.compile(r"\b(?:M\.[A-Z0-9]{2,}|0\.A[A-Za-z0-9_\-]{4,})[A-Za-z0-9_\-.!*$]{40,}"), REDACTED),
    # URL userinfo: scheme://user:password@host and scheme://token@host.
    (
        re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^/\s:@]*):([^/\s@]+)@"),
        r"\1\2:" + REDACTED + "@",
    ),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^/\s:@]+)@"), r"\1" + REDACTED + "@"),
)
# '"access_token": "value"' (a logged JSON body) and 'access_token=value' (a query string,
# form body or free text).
_JSON_PAIR = re.compile(r"(?i)([\"'](" + _SECRET_KEYS + r")[\"']\s*:\s*)([\"'])((?:(?!\3).)*)\3")
_KV_PAIR = re.compile(r"(?i)(^|[?&;,\s\"'(\[{])(" + _SECRET_KEYS + r")=([^&\s#\"',;)\]}]+)")
#: ``code`` and ``state`` are also everyday words; their values count only when they look
#: random (an authorization code or state is long and mixed), not 'code=invalid_request'.
_WEAK_KEYS = frozenset({"code", "state", "key", "sig"})
_WORDY = re.compile(r"[a-z_\-.]{1,40}|\d{1,4}")

# Library exception text: long runs mixing letters and digits look like credentials.
_RUN = re.compile(r"[A-Za-z0-9_\-~+=]{24,}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]{24,64}")


def _normal(key: str) -> str:
    return key.strip().lower().replace("-", "_").replace(" ", "_")


def is_sensitive_key(key: object) -> bool:
    """Whether the value stored under ``key`` must never be shown."""
    if not isinstance(key, str):
        return False
    name = _normal(key)
    if name in SENSITIVE_EXACT:
        return True
    if name.endswith(NOT_SECRET_SUFFIXES):
        return False
    return any(part in name for part in SENSITIVE_PARTS) or name.endswith("_key")


def _mask_run(match: re.Match[str]) -> str:
    run = match.group(0)
    if _UUID.fullmatch(run) or _HEX.fullmatch(run):
        return run  # request ids, connection ids and digests help debugging and are not secret
    has_letter = any(c.isalpha() for c in run)
    has_digit = any(c.isdigit() for c in run)
    return REDACTED if has_letter and has_digit else run


def _pair_value_secret(key: str, value: str) -> bool:
    if value.startswith("[REDACTED"):
        return False  # already done by a shape pattern
    if key.lower() not in _WEAK_KEYS:
        return bool(value)
    return len(value) >= 8 and not _WORDY.fullmatch(value)


def _json_pair(match: re.Match[str]) -> str:
    if not _pair_value_secret(match.group(2), match.group(4)):
        return match.group(0)
    return f"{match.group(1)}{match.group(3)}{REDACTED}{match.group(3)}"


def _kv_pair(match: re.Match[str]) -> str:
    if not _pair_value_secret(match.group(2), match.group(3)):
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}={REDACTED}"


def redact_text(text: str, *, aggressive: bool = False) -> str:
    """``text`` with every recognisable secret replaced by ``[REDACTED]``."""
    if not text:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    text = _JSON_PAIR.sub(_json_pair, text)
    text = _KV_PAIR.sub(_kv_pair, text)
    if aggressive:
        text = _RUN.sub(_mask_run, text)
    return text


def redact(value: Any, *, aggressive: bool = False, _depth: int = 0) -> Any:
    """A copy of ``value`` with sensitive keys and secret-shaped strings redacted.

    Strings, numbers, booleans, ``None``, dates, UUIDs and enums keep their type; mappings,
    lists and tuples are copied; any other object becomes its redacted ``str()`` (a repr can
    hold a token too).
    """
    if value is None or isinstance(value, bool | int | float | date | time | UUID | Decimal | Enum):
        return value  # no room for a secret, and timestamps must stay timestamps (Sentry)
    if isinstance(value, str):
        return redact_text(value, aggressive=aggressive)
    if _depth >= MAX_DEPTH:
        return REDACTED
    if isinstance(value, Mapping):
        return {
            key: REDACTED
            if is_sensitive_key(key) and item is not None
            else redact(item, aggressive=aggressive, _depth=_depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = [redact(item, aggressive=aggressive, _depth=_depth + 1) for item in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, bytes | bytearray):
        return REDACTED
    return redact_text(str(value), aggressive=aggressive)


def strip_url(url: str) -> str:
    """``url`` without userinfo, query string and fragment (what may appear in logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
