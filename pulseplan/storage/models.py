"""Records the storage layer reads and writes. Token fields hold *ciphertext*: the storage layer
never sees a plaintext token, and the fields stay out of ``repr`` all the same."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import Literal

ConnectionStatus = Literal["active", "needs_reauth", "error"]
STATUSES: tuple[ConnectionStatus, ...] = ("active", "needs_reauth", "error")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Connection:
    """One row of ``calendar_connections``: a user's grant at one provider.

    ``version`` is the write fence: every update names the version it read and fails when
    another writer got there first.
    """

    id: str
    user_id: str
    provider: str
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None
    scopes: tuple[str, ...]
    email: str | None
    status: ConnectionStatus
    status_reason: str | None
    metadata: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    last_refreshed_at: datetime | None = None
    next_refresh_at: datetime | None = None
    refresh_failures: int = 0

    def is_expired(self, now: datetime | None = None) -> bool:
        """Expired against *now* (the seed compared with ``created_at``). No expiry: never."""
        return self.expires_at is not None and self.expires_at <= (now or utcnow())


@dataclass(frozen=True)
class NewConnection:
    """What a code exchange or a direct store writes (ciphertext already)."""

    user_id: str
    provider: str
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None
    scopes: tuple[str, ...]
    email: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


#: Columns an update may change (anything else is immutable or managed by the backend).
UPDATABLE = frozenset(
    {
        "access_token",
        "refresh_token",
        "expires_at",
        "scopes",
        "email",
        "status",
        "status_reason",
        "metadata",
        "last_refreshed_at",
        "next_refresh_at",
        "refresh_failures",
    }
)


@dataclass(frozen=True)
class AuditRecord:
    """Who fetched which user's tokens, and what happened. Never a token."""

    id: str
    occurred_at: datetime
    actor_type: Literal["user", "agent", "system"]
    actor_id: str
    user_id: str
    provider: str | None
    action: str
    outcome: str
    request_id: str | None = None
    detail: str | None = None
