"""Rate limiting: a sliding-window log per subject and route group, in-process or in Redis.

Wire it with :func:`init_app` (does nothing unless ``ENABLE_RATE_LIMITING`` is on, which it
is by default in production). Groups, defaults and failure modes: :mod:`.policy`; the request
pipeline: :mod:`.http`; backends: :mod:`.backends` and :mod:`.redis_backend`.
"""

from __future__ import annotations

from pulseplan.web.ratelimit.backends import Backend
from pulseplan.web.ratelimit.backends import BackendUnavailable
from pulseplan.web.ratelimit.backends import MemoryBackend
from pulseplan.web.ratelimit.backends import Window
from pulseplan.web.ratelimit.client_ip import TrustedProxies
from pulseplan.web.ratelimit.http import build_limiter
from pulseplan.web.ratelimit.http import client_address
from pulseplan.web.ratelimit.http import current_limiter
from pulseplan.web.ratelimit.http import exempt
from pulseplan.web.ratelimit.http import init_app
from pulseplan.web.ratelimit.http import limit_group
from pulseplan.web.ratelimit.limiter import Decision
from pulseplan.web.ratelimit.limiter import RateLimiter
from pulseplan.web.ratelimit.limiter import RateLimiterUnavailable
from pulseplan.web.ratelimit.policy import GROUPS
from pulseplan.web.ratelimit.policy import GroupPolicy
from pulseplan.web.ratelimit.policy import Limit
from pulseplan.web.ratelimit.redis_backend import RedisBackend

__all__ = [
    "GROUPS",
    "Backend",
    "BackendUnavailable",
    "Decision",
    "GroupPolicy",
    "Limit",
    "MemoryBackend",
    "RateLimiter",
    "RateLimiterUnavailable",
    "RedisBackend",
    "TrustedProxies",
    "Window",
    "build_limiter",
    "client_address",
    "current_limiter",
    "exempt",
    "init_app",
    "limit_group",
]
