"""One row of a seed backend's token table, with the seed's column quirks smoothed out.

The seed wrote two tables over its life (seed-system.md §3.1):

- the Python backend's ``oauth_tokens``: ``scopes text[]`` (or a ``scope`` text column in some
  deployments), timestamps written as *naive* UTC strings, and at HEAD ``is_active``,
  ``service_type`` (one row per Google/Microsoft service), ``provider_url`` (the Canvas instance)
  and ``last_refreshed``;
- the Node.js backend's ``calendar_connections``: no ``updated_at``, no ``is_active``.

A SQLite copy of either (tests, small installs) holds text everywhere: JSON, Postgres array
literals or space-separated scope lists, ``0``/``1`` or ``t``/``f`` booleans, ISO strings with or
without an offset. :func:`normalize` turns any of them into a :class:`SeedRow` or raises
:class:`RowProblem` with a reason that never quotes a token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from typing import Any

#: Columns read when present; anything else in the table is ignored.
KNOWN_COLUMNS = (
    "id",
    "user_id",
    "provider",
    "access_token",
    "refresh_token",
    "expires_at",
    "scopes",
    "scope",
    "email",
    "created_at",
    "updated_at",
    "is_active",
    "service_type",
    "provider_url",
)
REQUIRED_COLUMNS = ("id", "user_id", "provider", "access_token")
# Epoch values above this are milliseconds (JavaScript's Date.now()), not seconds.
_MILLIS_THRESHOLD = 100_000_000_000
_SAFE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_TRUE = frozenset({"t", "true", "1", "yes", "y", "on"})
_FALSE = frozenset({"f", "false", "0", "no", "n", "off"})


class RowProblem(Exception):
    """A seed row that cannot be imported. The message names the column, never its value."""


@dataclass(frozen=True)
class SeedRow:
    """A normalized seed row. Token fields hold what the seed stored (ciphertext, or plaintext
    for the seed's early rows) and stay out of ``repr``."""

    id: str
    user_id: str | None
    provider: str | None
    access_token: str | None = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None
    scopes: tuple[str, ...]
    email: str | None
    created_at: datetime | None
    updated_at: datetime | None
    is_active: bool = True
    service_type: str | None = None
    provider_url: str | None = None

    @property
    def stamp(self) -> datetime | None:
        """When the seed last wrote the row (``updated_at``, else ``created_at``)."""
        return self.updated_at or self.created_at


def display_id(value: object, position: int) -> str:
    """The row id as printed in reports: the seed's id when it looks like one (a UUID or a
    number), otherwise the row's position, so a garbage id never echoes arbitrary text."""
    text = "" if value is None else str(value)
    return text if _SAFE_ID.fullmatch(text) else f"#{position}"


def parse_time(value: object, column: str) -> datetime | None:
    """A timezone-aware UTC datetime. Naive values are UTC: the seed wrote ``utcnow()``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if abs(value) > _MILLIS_THRESHOLD else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise RowProblem(f"{column} is not a valid timestamp") from None
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise RowProblem(f"{column} is not an ISO 8601 timestamp") from None
    else:
        raise RowProblem(f"{column} is not a timestamp")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _pg_array(text: str) -> list[str]:
    """Items of a one-dimensional Postgres array literal such as ``{a,"b c"}``."""
    items = re.findall(r'"((?:[^"\\]|\\.)*)"|([^,{}"]+)', text[1:-1])
    return [quoted.replace('\\"', '"').replace("\\\\", "\\") or bare for quoted, bare in items]


def parse_scopes(value: object) -> tuple[str, ...]:
    """Scopes from a Postgres array, a JSON array, an array literal or a space/comma list."""
    if value is None:
        return ()
    items: list[Any]
    if isinstance(value, list | tuple):
        items = list(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                loaded = json.loads(text)
            except ValueError:
                raise RowProblem("scopes is not a valid JSON array") from None
            if not isinstance(loaded, list):
                raise RowProblem("scopes is not a list")
            items = loaded
        elif text.startswith("{") and text.endswith("}"):
            items = _pg_array(text)
        else:
            items = re.split(r"[\s,]+", text)
    else:
        raise RowProblem("scopes is not a list")
    scopes: list[str] = []
    for item in items:
        if item is None:
            continue
        scope = str(item).strip()
        if scope and scope.upper() != "NULL" and scope not in scopes:
            scopes.append(scope)
    return tuple(scopes)


def parse_bool(value: object, column: str, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise RowProblem(f"{column} is not a boolean")


def _text(value: object, column: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise RowProblem(f"{column} is not UTF-8 text") from None
    return str(value)


def normalize(raw: Mapping[str, Any], position: int) -> SeedRow:
    """A :class:`SeedRow` from one source row (missing columns read as NULL).

    :param position: the row's 1-based position in the read, shown when its id is unusable.
    :raises RowProblem: a column holds something the seed never wrote (unparsable timestamp,
        scopes or boolean).
    """
    scopes = raw.get("scopes")
    if scopes is None:
        scopes = raw.get("scope")
    email = _text(raw.get("email"), "email")
    return SeedRow(
        id=display_id(raw.get("id"), position),
        user_id=_text(raw.get("user_id"), "user_id"),
        provider=_text(raw.get("provider"), "provider"),
        access_token=_text(raw.get("access_token"), "access_token"),
        refresh_token=_text(raw.get("refresh_token"), "refresh_token"),
        expires_at=parse_time(raw.get("expires_at"), "expires_at"),
        scopes=parse_scopes(scopes),
        email=(email.strip() or None) if email is not None else None,
        created_at=parse_time(raw.get("created_at"), "created_at"),
        updated_at=parse_time(raw.get("updated_at"), "updated_at"),
        is_active=parse_bool(raw.get("is_active"), "is_active", True),
        service_type=_text(raw.get("service_type"), "service_type"),
        provider_url=_text(raw.get("provider_url"), "provider_url"),
    )
