"""A bounded, thread-safe LRU of derived keys with single-flight derivation.

Derived per-user keys are cached as ready ``AESGCM`` objects so a warm encrypt or decrypt is one
dictionary lookup plus the AES call. Single flight matters for the seed-compatible path: PBKDF2
costs ~10 ms, and callers may run it in worker threads (``asyncio.to_thread``), so two
concurrent reads of one user's row must not both pay for it. The counter lets tests and the
benchmark assert how many derivations actually ran.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from collections.abc import Hashable
from typing import Generic
from typing import TypeVar

V = TypeVar("V")

DEFAULT_SIZE = 4096


class KeyCache(Generic[V]):
    """LRU mapping ``key -> derived value``, holding at most ``size`` entries.

    :param size: bound on entries; the least recently used entry is dropped beyond it.
    """

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("cache size must be at least 1")
        self.size = size
        self.derivations = 0
        self._data: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self._flights: dict[Hashable, threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"KeyCache(size={self.size}, entries={len(self._data)})"

    def get(self, key: Hashable, derive: Callable[[], V]) -> V:
        """The cached value for ``key``, running ``derive()`` at most once per miss.

        Concurrent callers missing the same key wait for the one derivation in flight.
        """
        with self._lock:
            value = self._lookup(key)
            if value is not None:
                return value
            flight = self._flights.setdefault(key, threading.Lock())
        with flight:
            with self._lock:
                value = self._lookup(key)
                if value is not None:
                    return value
            try:
                value = derive()
            except BaseException:
                with self._lock:
                    self._flights.pop(key, None)
                raise
            # Store before retiring the flight, under one lock: a caller arriving in between
            # must find the value, not start a second derivation.
            with self._lock:
                self.derivations += 1
                self._data[key] = value
                while len(self._data) > self.size:
                    self._data.popitem(last=False)
                self._flights.pop(key, None)
            return value

    def clear(self) -> None:
        """Forget every derived value (the derivation counter keeps counting)."""
        with self._lock:
            self._data.clear()

    def _lookup(self, key: Hashable) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value
