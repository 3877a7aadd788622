"""The storage interface of the limiter and its embedded default, an exact in-process log.

Both backends implement the same sliding-window **log**: a subject's key holds the times (ms) of
its counted requests; a request at ``now`` first forgets times ``<= now - window``, is allowed
when fewer than ``limit`` remain, and only then is its own time recorded. Rejected requests are
not recorded, so a client that keeps hammering a closed door is let in again as soon as its
oldest counted request leaves the window (it cannot lock itself out for ever).
"""

from __future__ import annotations

from collections import OrderedDict
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from pulseplan.web.ratelimit.policy import Limit


class BackendUnavailable(Exception):
    """The backend could not answer (Redis down or slow). The message is an error type name."""


@dataclass(frozen=True)
class Window:
    """A subject's window after one call.

    :param allowed: the request is within the limit (for a peek: one more would be).
    :param count: counted requests in the window, including this one when it was recorded.
    :param oldest_ms: time of the oldest counted request (``now`` when there is none); a slot
        frees when it leaves the window.
    """

    allowed: bool
    count: int
    oldest_ms: int


class Backend(Protocol):
    """Where windows live. ``hit`` must be atomic per key (the limiter is exact only if it is)."""

    name: str

    async def hit(self, key: str, limit: Limit, now_ms: int, *, record: bool = True) -> Window:
        """Trim the window of ``key`` at ``now_ms`` and, if allowed and ``record``, count one.

        :raises BackendUnavailable: the backend did not answer.
        """
        ...

    async def aclose(self) -> None:
        """Release connections (no-op for the in-process backend)."""
        ...


class MemoryBackend:
    """Exact sliding-window log in this process; the embedded default and the fallback of
    groups that fail ``open``.

    Memory is bounded: a key holds at most ``limit.count`` times, keys whose newest time has
    left their window are dropped as later calls pass by (idle subjects cost nothing), and past
    ``max_entries`` stored times in total the least recently counted keys are evicted (each
    eviction is counted in :attr:`evicted`; an evicted subject starts afresh, which only
    matters under a flood of distinct subjects). 1,000,000 entries is roughly 60 MB.

    Not thread-safe; one instance per event loop. ``hit`` never awaits, so concurrent
    coroutines cannot interleave inside it: that is what makes it exact.
    """

    name = "memory"

    def __init__(self, *, max_entries: int = 1_000_000) -> None:
        self.max_entries = max_entries
        self.evicted = 0
        # One LRU map per window length: keys sharing a window expire in the order they were
        # last counted, so idle keys are always at the front.
        self._maps: dict[int, OrderedDict[str, deque[int]]] = {}
        self._entries = 0

    def __len__(self) -> int:
        """Number of subjects currently held."""
        return sum(len(m) for m in self._maps.values())

    @property
    def entries(self) -> int:
        """Request times currently held, across all subjects."""
        return self._entries

    async def hit(self, key: str, limit: Limit, now_ms: int, *, record: bool = True) -> Window:
        return self.hit_now(key, limit, now_ms, record=record)

    def hit_now(self, key: str, limit: Limit, now_ms: int, *, record: bool = True) -> Window:
        """Synchronous :meth:`hit`."""
        window = limit.window_ms
        logs = self._maps.setdefault(window, OrderedDict())
        self._drop_idle(logs, now_ms - window)
        log = logs.get(key)
        if log is None:
            log = deque()
        cutoff = now_ms - window
        while log and log[0] <= cutoff:
            log.popleft()
            self._entries -= 1
        allowed = len(log) < limit.count
        if allowed and record:
            log.append(now_ms)
            self._entries += 1
            logs[key] = log
            logs.move_to_end(key)
            self._evict(logs)
        elif not log:
            logs.pop(key, None)
        return Window(allowed, len(log), log[0] if log else now_ms)

    def _drop_idle(self, logs: OrderedDict[str, deque[int]], cutoff: int) -> None:
        # Amortised O(1): each key is dropped once; stops at the first key still in use.
        while logs:
            key, log = next(iter(logs.items()))
            if log and log[-1] > cutoff:
                return
            del logs[key]
            self._entries -= len(log)

    def _evict(self, logs: OrderedDict[str, deque[int]]) -> None:
        while self._entries > self.max_entries:
            victim = next((m for m in self._maps.values() if m), logs)
            _, log = victim.popitem(last=False)
            self._entries -= len(log)
            self.evicted += 1

    async def aclose(self) -> None:
        self._maps.clear()
        self._entries = 0
