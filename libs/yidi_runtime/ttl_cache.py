"""A small thread-safe cache whose entries expire: read-through caches of a peer's answers.

A node keeps what a neighbour answered for a short, documented bound instead of asking on
every call (e.g. the registry's answers from the parent, the treatment province's institution
checks and catalogue entries). Entries expire ``ttl_s`` after they were stored; past
``max_entries`` the oldest is evicted first, so memory stays bounded whatever callers ask.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")
Monotonic = Callable[[], float]


class TtlCache(Generic[Value]):
    """At most ``max_entries`` values, each forgotten ``ttl_s`` after it was stored (oldest evicted first)."""

    def __init__(self, ttl_s: float, max_entries: int = 10_000, clock: Monotonic = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Value]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """False when the bound is zero: nothing is ever kept."""
        return self._ttl_s > 0

    def get(self, key: Hashable) -> Value | None:
        """The value stored under ``key`` if it has not expired."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._entries[key]
                return None
            return entry[1]

    def put(self, key: Hashable, value: Value) -> None:
        """Store ``value`` for the next ``ttl_s`` seconds (nothing when the bound is zero)."""
        if not self.enabled:
            return
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (self._clock() + self._ttl_s, value)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
