"""The log context of the current request, in a :class:`contextvars.ContextVar`.

A contextvar rather than Quart's ``g``: asyncio copies the context into every task created while
a request is handled (``EventBus.fire``, a refresh started by a request), so their log lines
carry the request id of the request that caused them, even after the response went out.

Also renders user identities for logs: the plain id, a keyed hash or nothing
(``LOG_USER_IDS=plain|hash|off``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from contextvars import ContextVar
from contextvars import Token
from dataclasses import dataclass
from dataclasses import field
from typing import Literal

UserIds = Literal["plain", "hash", "off"]
#: ``("user", id)`` or ``("agent", id)`` of the current request, or ``None`` (not yet known).
Principal = tuple[Literal["user", "agent"], str]


@dataclass
class RequestLog:
    """What every log line of one request carries."""

    request_id: str
    method: str
    path: str
    provider: str | None = None
    #: ``time.perf_counter()`` when the request started.
    started: float = field(default_factory=time.perf_counter)
    #: Looks the authenticated principal up (set by :mod:`pulseplan.observability.access`).
    resolve_principal: Callable[[], Principal | None] | None = field(default=None, repr=False)
    _principal: Principal | None = field(default=None, repr=False)

    def principal(self) -> Principal | None:
        """The authenticated user or agent, once authentication has happened."""
        if self._principal is None and self.resolve_principal is not None:
            try:
                self._principal = self.resolve_principal()
            except Exception:  # outside the request (a late background task): unknown
                return None
        return self._principal

    def fields(self) -> dict[str, str]:
        """The request's log fields (``request_id``, ``method``, ``path``, user, provider)."""
        values = {"request_id": self.request_id, "method": self.method, "path": self.path}
        if self.provider:
            values["provider"] = self.provider
        principal = self.principal()
        if principal is not None:
            values.update(principal_fields(*principal))
        return values


_CURRENT: ContextVar[RequestLog | None] = ContextVar("pulseplan_request_log", default=None)


def bind(log: RequestLog) -> Token[RequestLog | None]:
    """Make ``log`` the current request's context (and that of tasks it starts)."""
    return _CURRENT.set(log)


def reset(token: Token[RequestLog | None]) -> None:
    _CURRENT.reset(token)


def current() -> RequestLog | None:
    """The current request's log context, or ``None`` outside a request."""
    return _CURRENT.get()


# --------------------------------------------------------------------------- user identities


@dataclass(frozen=True)
class _UserPolicy:
    mode: UserIds = "plain"
    key: bytes = field(default=b"pulseplan:log-user-id", repr=False)


_policy = _UserPolicy()


def set_user_policy(mode: UserIds, secret: str | None) -> None:
    """How user ids appear in logs. ``secret`` keys the hash so that a reader of the logs
    cannot confirm a guessed user id (user ids are not secret, but they are personal data)."""
    global _policy
    key = b"pulseplan:log-user-id"
    if secret:
        key = hmac.new(secret.encode(), key, hashlib.sha256).digest()
    _policy = _UserPolicy(mode, key)


def user_policy() -> UserIds:
    return _policy.mode


def hash_user(user_id: str) -> str:
    """The stable, keyed 64-bit hash of ``user_id`` that logs show in ``hash`` mode."""
    return hmac.new(_policy.key, user_id.encode(), hashlib.sha256).hexdigest()[:16]


def render_user(user_id: str) -> str:
    """``user_id`` as logs may show it: itself, its hash, or ``-``."""
    if _policy.mode == "plain":
        return user_id
    if _policy.mode == "hash":
        return f"h:{hash_user(user_id)}"
    return "-"


def principal_fields(kind: Literal["user", "agent"], ident: str) -> dict[str, str]:
    """Log fields for an authenticated principal.

    Agents are service credentials, not people: their id is always shown.
    """
    if kind == "agent":
        return {"agent_id": ident}
    if _policy.mode == "plain":
        return {"user_id": ident}
    if _policy.mode == "hash":
        return {"user_hash": hash_user(ident)}
    return {}
