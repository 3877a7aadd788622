"""Route groups, their limits and what each does when the shared backend (Redis) is down.

A limit is ``count/seconds``: at most ``count`` requests of one subject in any ``seconds``-long
window (a sliding window, not calendar buckets). Defaults, per subject:

=================  ==========  =======================================================  =======
group              default     subject and routes                                       Redis
                                                                                        down
=================  ==========  =======================================================  =======
``tokens``         120/60      user (JWT ``sub``): ``/api/v1/tokens/*``                 open
``oauth_start``    20/60       user: ``/api/v1/oauth/{p}/authorize`` and ``/confirm``   open
``oauth_callback`` 60/60       client IP: ``/api/v1/oauth/{p}/callback``                closed
``agent``          600/60      agent credential: ``/api/v1/agent/*``                    open
``auth_failures``  60/300      client IP: failed authentications on any secured route   open
``default``        300/60      client IP: everything else (providers, docs, 404s)       open
=================  ==========  =======================================================  =======

Health probes, ``/metrics`` and static files are never limited.

Why these failure modes (``open`` = keep serving and enforce the same limit per process with
the in-process limiter; ``closed`` = answer 503 ``rate_limiter_unavailable``):

* ``oauth_callback`` fails closed: it is the one route anyone can call without a credential and
  every call can make an outbound request to a provider; a browser that lands on a 503 simply
  retries the connect flow later.
* ``tokens`` and ``agent`` fail open: fresh tokens are the product, Redis is an optional
  dependency, and the callers are authenticated, so a Redis outage must not become an outage of
  the vault. The per-process fallback still bounds each caller (limit x number of workers).
* ``auth_failures`` fails open for the same reason: its check runs in front of *every* secured
  request, so closing it would turn a Redis outage into a full outage; per-process counting
  still throttles a token-guessing client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from typing import Literal

from pulseplan.settings import Settings

FailureMode = Literal["open", "closed"]

TOKENS: Final = "tokens"
OAUTH_START: Final = "oauth_start"
OAUTH_CALLBACK: Final = "oauth_callback"
AGENT: Final = "agent"
AUTH_FAILURES: Final = "auth_failures"
DEFAULT: Final = "default"

GROUPS: Final = (TOKENS, OAUTH_START, OAUTH_CALLBACK, AGENT, AUTH_FAILURES, DEFAULT)

#: Failure mode of each group when neither RATE_LIMIT_FAILURE_MODE nor the per-group
#: RATE_LIMIT_FAILURE_MODE_<GROUP> is set (reasons in the module docstring).
DEFAULT_FAILURE_MODES: Final[dict[str, FailureMode]] = {
    TOKENS: "open",
    OAUTH_START: "open",
    OAUTH_CALLBACK: "closed",
    AGENT: "open",
    AUTH_FAILURES: "open",
    DEFAULT: "open",
}


@dataclass(frozen=True)
class Limit:
    """At most ``count`` requests in any window of ``seconds``."""

    count: int
    seconds: int

    def __post_init__(self) -> None:
        if self.count < 1 or self.seconds < 1:
            raise ValueError("a rate limit needs count >= 1 and seconds >= 1")

    @classmethod
    def parse(cls, spec: str) -> Limit:
        """``"120/60"`` -> ``Limit(120, 60)``.

        :raises ValueError: not ``count/seconds`` with positive integers.
        """
        count, sep, seconds = spec.strip().partition("/")
        if not sep or not count.isdigit() or not seconds.isdigit():
            raise ValueError(f"rate limit {spec!r} is not count/seconds, e.g. 120/60")
        return cls(int(count), int(seconds))

    @property
    def window_ms(self) -> int:
        return self.seconds * 1000

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds}"


@dataclass(frozen=True)
class GroupPolicy:
    """A route group's limit and its behaviour while the shared backend is unreachable."""

    name: str
    limit: Limit
    failure_mode: FailureMode


def policies_from_settings(settings: Settings) -> dict[str, GroupPolicy]:
    """One :class:`GroupPolicy` per group from ``RATE_LIMIT_<GROUP>`` and the failure modes.

    Precedence of the failure mode: ``RATE_LIMIT_FAILURE_MODE_<GROUP>``, then
    ``RATE_LIMIT_FAILURE_MODE``, then :data:`DEFAULT_FAILURE_MODES`.
    """
    policies = {}
    for group in GROUPS:
        mode: FailureMode = (
            getattr(settings, f"rate_limit_failure_mode_{group}")
            or settings.rate_limit_failure_mode
            or DEFAULT_FAILURE_MODES[group]
        )
        limit = Limit.parse(getattr(settings, f"rate_limit_{group}"))
        policies[group] = GroupPolicy(group, limit, mode)
    return policies
