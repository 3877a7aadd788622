"""Which seed row becomes the connection, and whether an earlier import already wrote it.

**Several rows, one connection.** At the seed's HEAD a user has one ``oauth_tokens`` row per
service (Google calendar, gmail, contacts...), each its own grant; PulsePlan keeps one connection
per (user, provider). The row kept is the seed's own notion of the live one: active rows first,
then the newest ``updated_at`` (``created_at`` when there is none), then one with a refresh
token, then the highest id so reruns choose the same row. Its scopes are the connection's
scopes. They are *not* unioned with the other rows' scopes: the seed requested each service's
scopes separately and without ``include_granted_scopes``, so the kept token cannot do what the
other rows' tokens could, and claiming their scopes would make callers fail later with a 403.
The superseded services are listed in the report; those users reconnect once in PulsePlan,
which asks for every scope in one grant.

**Idempotency.** Every connection written by an import records where it came from in its
``metadata["seed_import"]`` (table, row id, that row's ``updated_at``). A rerun compares:

- the same row at the same ``updated_at`` -> ``unchanged`` (nothing is written);
- a newer seed row (the seed kept running, or the other seed table has a newer row) ->
  ``updated``;
- anything else -> ``kept``: a connection made in PulsePlan itself (no marker) always wins over
  the seed, as does an earlier import of a newer row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import Literal

from pulseplan.seedimport.convert import Converted
from pulseplan.storage.models import Connection

MARKER = "seed_import"
_OLDEST = datetime.min.replace(tzinfo=UTC)

Action = Literal["create", "update", "unchanged", "kept"]


def _rank(item: Converted) -> tuple[bool, datetime, bool, str]:
    row = item.row
    return (row.is_active, row.stamp or _OLDEST, item.refresh_token is not None, row.id)


def pick(group: Sequence[Converted]) -> tuple[Converted, list[Converted]]:
    """``(kept, superseded)`` for the rows of one (user, provider)."""
    ordered = sorted(group, key=_rank, reverse=True)
    return ordered[0], ordered[1:]


def stamp_text(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def marker(table: str, kept: Converted, superseded: Sequence[Converted]) -> dict[str, Any]:
    """What the imported connection's ``metadata["seed_import"]`` records (no secrets)."""
    value: dict[str, Any] = {
        "table": table,
        "row_id": kept.row.id,
        "updated_at": stamp_text(kept.row.stamp),
    }
    if kept.row.service_type:
        value["service"] = kept.row.service_type
    if superseded:
        value["superseded"] = [
            {"row_id": item.row.id, "service": item.row.service_type} for item in superseded
        ]
    return value


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def decide(existing: Connection | None, table: str, kept: Converted) -> Action:
    """What to do with the (user, provider) connection given what PulsePlan holds."""
    if existing is None:
        return "create"
    previous = existing.metadata.get(MARKER)
    if not isinstance(previous, dict):
        return "kept"  # connected in PulsePlan itself: never overwritten by the seed
    ours = kept.row.stamp
    theirs = _parse(previous.get("updated_at"))
    if (
        previous.get("table") == table
        and previous.get("row_id") == kept.row.id
        and previous.get("updated_at") == stamp_text(ours)
    ):
        return "unchanged"
    if ours is not None and (theirs is None or ours > theirs):
        return "update"
    return "kept"
