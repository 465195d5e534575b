"""The in-process cache of the LookupItems hot path: catalogue rows by (version, code).

Versions never change once imported, so an entry — found or known missing — never goes
stale; the only reason to drop one is memory, hence a bounded least-recently-used order.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping

from yidi_services.catalogue.items import CatalogueRow

DEFAULT_MAX_ENTRIES = 200_000


class VersionItemCache:
    """Thread-safe, bounded: rows (or None for a code the version lacks) keyed by version and code."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._entries: OrderedDict[tuple[int, str], CatalogueRow | None] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def get_many(
        self, version_pk: int, codes: Iterable[str]
    ) -> tuple[dict[str, CatalogueRow | None], list[str]]:
        """The cached answers, and the codes still to be read from the database."""
        known: dict[str, CatalogueRow | None] = {}
        unknown: list[str] = []
        with self._lock:
            for code in codes:
                key = (version_pk, code)
                if key in self._entries:
                    self._entries.move_to_end(key)
                    known[code] = self._entries[key]
                else:
                    unknown.append(code)
        return known, unknown

    def put_many(self, version_pk: int, answers: Mapping[str, CatalogueRow | None]) -> None:
        """Remember answers read from the database, evicting the least recently used beyond the bound."""
        with self._lock:
            for code, row in answers.items():
                self._entries[(version_pk, code)] = row
                self._entries.move_to_end((version_pk, code))
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
