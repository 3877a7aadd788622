"""Key rotation: re-encrypt every stored token under the primary key, in batches, while the
service keeps serving.

Resumable and idempotent: a row already under the primary key is left alone, so a killed run
simply continues where it stopped when started again. Every write is fenced by ``version``; a
row that changed meanwhile (a refresh wrote it, already under the primary key) is re-read and
retried, never overwritten with stale tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from pulseplan.crypto import DecryptionError
from pulseplan.crypto import TokenCipher
from pulseplan.storage.base import Storage
from pulseplan.storage.models import Connection

ATTEMPTS = 3


@dataclass
class RewrapReport:
    scanned: int = 0
    rewrapped: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (connection id, reason)


def _changes(cipher: TokenCipher, row: Connection, legacy_only: bool) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name in ("access_token", "refresh_token"):
        value = getattr(row, name)
        if value is None:
            continue
        if legacy_only and cipher.scheme_of(value) == "hkdf":
            continue
        new = cipher.rewrap(value, user_id=row.user_id, provider=row.provider, field=name)
        if new is not None:
            changes[name] = new
    return changes


async def rewrap_all(
    storage: Storage,
    cipher: TokenCipher,
    *,
    batch_size: int = 200,
    legacy_only: bool = False,
    progress: Callable[[int], None] | None = None,
) -> RewrapReport:
    """Re-encrypt every connection not under the primary key; never raises for one bad row."""
    report = RewrapReport()
    after: str | None = None
    while page := await storage.connections_page(after, batch_size):
        for row in page:
            report.scanned += 1
            await _one(storage, cipher, row, legacy_only, report)
        after = page[-1].id
        if progress is not None:
            progress(len(page))
    return report


async def _one(
    storage: Storage, cipher: TokenCipher, row: Connection, legacy_only: bool, report: RewrapReport
) -> None:
    current: Connection | None = row
    for _ in range(ATTEMPTS):
        if current is None:
            return  # deleted meanwhile
        try:
            changes = _changes(cipher, current, legacy_only)
        except DecryptionError as exc:
            report.failed.append((current.id, type(exc).__name__))
            return
        if not changes:
            report.unchanged += 1
            return
        if await storage.update_connection(current.id, current.version, **changes) is not None:
            report.rewrapped += 1
            return
        current = await storage.get_connection_by_id(row.id)
    report.failed.append((row.id, "kept changing during rotation; run again"))
