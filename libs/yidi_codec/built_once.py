"""What a conversion built, kept for its key: for inputs that never change once stored.

A policy version never changes once imported, so the core value read from its message, or
the message built from its stored document, can be built on first sight and then reused.
At most ``max_entries`` are kept, the least recently used going first, so memory stays
bounded whatever callers ask. Built values are shared: callers must not change them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")


class BuiltOnce(Generic[Value]):
    """Thread-safe and bounded: values by key, each built by the first caller that asks for it."""

    def __init__(self, max_entries: int) -> None:
        self._entries: OrderedDict[Hashable, Value] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], Value]) -> Value:
        """The value kept for ``key``, else ``build()``, kept from now on."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = build()
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return value
