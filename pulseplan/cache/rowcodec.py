"""The cached form of connection rows: JSON of exactly what the storage layer returned.

Token fields are the stored *ciphertext* strings; nothing here can decrypt (this package does
not import the cipher), so the cache holds no more than the database does.
:func:`holds_ciphertext` is the defence in depth on top: a row whose token fields are not
well-formed ciphertext envelopes is never cached.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

from pulseplan.crypto.envelope import parse
from pulseplan.crypto.errors import MalformedCiphertext
from pulseplan.storage.models import Connection

#: Bumped when the cached form changes; entries of another format read as misses.
FORMAT = 1
TIME_FIELDS = frozenset(
    {"expires_at", "created_at", "updated_at", "last_refreshed_at", "next_refresh_at"}
)
FIELDS = tuple(f.name for f in dataclasses.fields(Connection))


def _plain(row: Connection) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in FIELDS:
        value = getattr(row, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        data[name] = value
    return data


def _row(data: dict[str, Any]) -> Connection:
    values = {name: data[name] for name in FIELDS}
    for name in TIME_FIELDS:
        if values[name] is not None:
            values[name] = datetime.fromisoformat(values[name])
    values["scopes"] = tuple(values["scopes"])
    return Connection(**values)


def dump_row(row: Connection | None) -> str:
    """One ``get_connection`` result (``None`` included: "not connected" is cached too)."""
    return json.dumps({"f": FORMAT, "row": None if row is None else _plain(row)})


def load_row(text: str) -> Connection | None:
    """Inverse of :func:`dump_row`. :raises ValueError: not an entry of this format."""
    data = _envelope(text)
    return None if data["row"] is None else _row(data["row"])


def dump_rows(rows: list[Connection]) -> str:
    """One ``list_connections`` result."""
    return json.dumps({"f": FORMAT, "rows": [_plain(row) for row in rows]})


def load_rows(text: str) -> list[Connection]:
    """Inverse of :func:`dump_rows`. :raises ValueError: not an entry of this format."""
    return [_row(item) for item in _envelope(text)["rows"]]


def _envelope(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError("not a cache entry") from exc
    if not isinstance(data, dict) or data.get("f") != FORMAT:
        raise ValueError("cache entry of another format")
    return data


def holds_ciphertext(row: Connection) -> bool:
    """Both token fields are ciphertext envelopes (or the refresh token is absent)."""
    try:
        parse(row.access_token)
        if row.refresh_token is not None:
            parse(row.refresh_token)
    except MalformedCiphertext:
        return False
    return True
