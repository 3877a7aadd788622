"""Retry scheduling for connections whose refresh failed transiently."""

from __future__ import annotations

import random
from datetime import datetime
from datetime import timedelta


def next_attempt(
    now: datetime,
    failures: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
) -> datetime:
    """Exponential backoff with full jitter, never sooner than the provider's ``Retry-After``.

    Jitter spreads the retries of many connections that failed together (a provider outage) so
    they do not hit the provider again in one burst when it comes back.
    """
    # The exponent is clamped: thousands of failures must not overflow a float.
    ceiling = min(cap, base * 2.0 ** min(max(failures - 1, 0), 32))
    delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return now + timedelta(seconds=delay)
