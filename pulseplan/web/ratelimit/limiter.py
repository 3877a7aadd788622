"""The rate limiter: subjects, decisions, failure modes and counters, over any backend."""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import Counter
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass

from loguru import logger

from pulseplan.observability import metrics
from pulseplan.web.ratelimit.backends import Backend
from pulseplan.web.ratelimit.backends import BackendUnavailable
from pulseplan.web.ratelimit.backends import MemoryBackend
from pulseplan.web.ratelimit.policy import GroupPolicy
from pulseplan.web.ratelimit.policy import Limit

#: Outcomes counted in :attr:`RateLimiter.stats`, keyed ``(group, outcome)``.
OUTCOMES = ("allowed", "rejected", "failed_open", "failed_closed")


class RateLimiterUnavailable(Exception):
    """The backend is down and the group fails closed; the request must be refused (503)."""

    def __init__(self, group: str, retry_after: int = 2) -> None:
        super().__init__(f"rate limiter backend unavailable for group {group}")
        self.group = group
        self.retry_after = retry_after


@dataclass(frozen=True)
class Decision:
    """The limiter's answer for one request.

    :param remaining: requests the subject may still make in the current window.
    :param reset_after: seconds until the oldest counted request leaves the window, i.e.
        until ``remaining`` grows again (0 when nothing is counted).
    :param backend: ``"redis"``, ``"memory"``, or ``"memory-fallback"`` while Redis is down.
    """

    group: str
    limit: Limit
    allowed: bool
    remaining: int
    reset_after: float
    backend: str

    @property
    def retry_after(self) -> int:
        """Whole seconds to wait before a retry can succeed (at least 1)."""
        return max(1, math.ceil(self.reset_after))

    def headers(self) -> dict[str, str]:
        """``X-RateLimit-*`` (``Reset`` in seconds from now), plus ``Retry-After`` on refusal."""
        headers = {
            "X-RateLimit-Limit": str(self.limit.count),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_after)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


def subject_key(secret: bytes) -> Callable[[str], str]:
    """A keyed hash for subjects: Redis keys never hold a raw user id, agent id or IP, and
    without the secret the hash of an IPv4 address cannot be reversed by trying all 2^32."""
    key = hmac.new(secret, b"pulseplan:ratelimit:subject", hashlib.sha256).digest()

    def digest(subject: str) -> str:
        return hmac.new(key, subject.encode(), hashlib.sha256).hexdigest()[:32]

    return digest


class RateLimiter:
    """Sliding-window log limiter, one window per (group, subject).

    :param policies: group name -> :class:`GroupPolicy`.
    :param backend: where windows live; an exact in-process :class:`MemoryBackend` by default.
    :param secret: key of the subject hash (derived from ``SECRET_KEY``); every worker sharing
        a backend must use the same one.
    :param prefix: key prefix, e.g. ``pulseplan:rl:``; keys are ``{prefix}{group}:{hash}``.
    :param clock: wall-clock seconds (shared by every worker: windows live in Redis).
    :param log_interval: at most one "backend unavailable" log line per group per this many
        seconds (per group, so a closed group's refusals are never hidden behind an open one's).

    :attr:`stats` counts every decision by ``(group, outcome)``, outcomes in :data:`OUTCOMES`;
    refusals and backend failures also go to :mod:`pulseplan.observability.metrics`
    (``pulseplan_ratelimit_rejections``, ``pulseplan_ratelimit_backend_errors``).
    """

    def __init__(
        self,
        policies: Mapping[str, GroupPolicy],
        backend: Backend | None = None,
        *,
        secret: bytes,
        prefix: str = "pulseplan:rl:",
        clock: Callable[[], float] = time.time,
        log_interval: float = 60.0,
    ) -> None:
        self.policies = dict(policies)
        self.backend: Backend = backend if backend is not None else MemoryBackend()
        #: Used by groups that fail open while :attr:`backend` is unavailable.
        self.fallback = MemoryBackend()
        self.prefix = prefix
        self.clock = clock
        self.log_interval = log_interval
        self.stats: Counter[tuple[str, str]] = Counter()
        self._digest = subject_key(secret)
        self._last_log: dict[str, float] = {}
        self._unlogged: Counter[str] = Counter()

    def key(self, group: str, subject: str) -> str:
        """The backend key of ``subject`` in ``group`` (the subject is hashed)."""
        return f"{self.prefix}{group}:{self._digest(subject)}"

    async def hit(self, group: str, subject: str) -> Decision:
        """Count one request of ``subject`` in ``group`` if it is within the limit.

        :raises RateLimiterUnavailable: the backend is down and the group fails closed.
        :raises KeyError: unknown group.
        """
        return await self._check(group, subject, record=True)

    async def peek(self, group: str, subject: str) -> Decision:
        """Whether one more request would be allowed, counting nothing (the failed-auth gate).

        :raises RateLimiterUnavailable: the backend is down and the group fails closed.
        """
        return await self._check(group, subject, record=False)

    async def _check(self, group: str, subject: str, *, record: bool) -> Decision:
        policy = self.policies[group]
        now_ms = int(self.clock() * 1000)
        key = self.key(group, subject)
        backend_name = self.backend.name
        try:
            window = await self.backend.hit(key, policy.limit, now_ms, record=record)
        except BackendUnavailable as exc:
            self._degraded(policy, str(exc))
            if policy.failure_mode == "closed":
                raise RateLimiterUnavailable(group) from None
            window = self.fallback.hit_now(key, policy.limit, now_ms, record=record)
            backend_name = "memory-fallback"
        reset_ms = window.oldest_ms + policy.limit.window_ms - now_ms if window.count else 0
        decision = Decision(
            group=group,
            limit=policy.limit,
            allowed=window.allowed,
            remaining=max(0, policy.limit.count - window.count),
            reset_after=max(0, reset_ms) / 1000,
            backend=backend_name,
        )
        if record or not decision.allowed:
            self.stats[(group, "allowed" if decision.allowed else "rejected")] += 1
        if not decision.allowed:
            metrics.ratelimit_rejected(group)
        return decision

    def _degraded(self, policy: GroupPolicy, reason: str) -> None:
        outcome = "failed_open" if policy.failure_mode == "open" else "failed_closed"
        self.stats[(policy.name, outcome)] += 1
        metrics.ratelimit_backend_error(policy.name)
        # One line per interval, not one per request: an outage must not flood the logs.
        now = time.monotonic()
        last = self._last_log.get(policy.name)
        if last is not None and now - last < self.log_interval:
            self._unlogged[policy.name] += 1
            return
        unlogged = self._unlogged.pop(policy.name, 0)
        effect = (
            "limits apply per process until it returns"
            if policy.failure_mode == "open"
            else "requests are refused with 503 until it returns"
        )
        logger.warning(
            "rate limiter backend {} unavailable ({}): group {} fails {}, {}{}",
            self.backend.name,
            reason,
            policy.name,
            policy.failure_mode,
            effect,
            f" ({unlogged} more failures since the last report)" if unlogged else "",
        )
        self._last_log[policy.name] = now

    async def aclose(self) -> None:
        await self.backend.aclose()
        await self.fallback.aclose()
