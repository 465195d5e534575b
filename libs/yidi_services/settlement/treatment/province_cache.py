"""What the treatment province answered on the settlement path, kept for a short bound.

A city node asks its province, on every settlement, whether the institution may settle
this care (CheckInstitution) and what the catalogue in force says of the bill's codes
(LookupItems): two remote calls and two handlers at the province per settlement, for
answers that change a few times a year. A city node keeps them for ``[settlement]
province_cache_s`` seconds (default 30; 0 keeps nothing), so a catalogue version taking
effect, or another change to the institution, reaches that city's settlements at most that
much later (docs/operations.md). Suspension notices do not wait for it: they reach the city's
own registry through the registry outbox, and the city reads those on every settlement
(``TreatmentPeers.ensure_not_suspended_here``). Refusals are never kept: a suspended institution is
refused again by the province itself, and one resumed settles at once. When the province
is the node itself nothing is kept: its own registry and catalogue see every change at once.

The catalogue is kept per region, day and code, so bills that share codes share entries
and only the codes not yet seen are asked for. Entries are kept with the versions that
answered them; an answer from other versions (one took effect) replaces what was kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

from yidi.catalogue.v1 import catalogue_pb2
from yidi.catalogue.v1 import catalogue_service_pb2 as catalogue_api
from yidi.registry.v1 import institution_registry_service_pb2 as registry_api
from yidi_runtime.ttl_cache import Monotonic, TtlCache


@dataclass
class _CatalogueDay:
    """The entries of one region's catalogue in force on one day, as far as they were asked for."""

    versions: tuple[str, str]
    entries: dict[str, catalogue_pb2.CatalogueItem | None] = field(default_factory=dict)
    """Code → its entry, or None for a code the catalogue does not hold."""

    def take(self, answer: catalogue_api.LookupItemsResponse, codes: Sequence[str]) -> None:
        found = {item.code: item for item in answer.items}
        self.entries.update((code, found.get(code)) for code in codes)

    def answer(self, codes: Sequence[str]) -> catalogue_api.LookupItemsResponse:
        """The province's answer for ``codes`` as it would give it: entries in request order, then the missing."""
        entries = [self.entries[code] for code in codes]
        return catalogue_api.LookupItemsResponse(
            items=[entry for entry in entries if entry is not None],
            missing_codes=[code for code, entry in zip(codes, entries, strict=True) if entry is None],
            overlay_version_id=self.versions[0],
            base_version_id=self.versions[1],
        )


def _check_key(request: registry_api.CheckInstitutionRequest) -> tuple[str, str, str, bytes, str]:
    """What an institution check's answer depends on (not the moment asked)."""
    return (
        request.fixmedins_code,
        request.med_type,
        request.chronic_disease,
        request.service_date.SerializeToString(deterministic=True),
        request.insuplc_admdvs,
    )


def _versions(answer: catalogue_api.LookupItemsResponse) -> tuple[str, str]:
    return answer.overlay_version_id, answer.base_version_id


class ProvinceAnswers:
    """The province's institution checks and catalogue entries, each kept for ``ttl_s`` seconds."""

    def __init__(self, ttl_s: float, clock: Monotonic = time.monotonic) -> None:
        self._checks: TtlCache[registry_api.CheckInstitutionResponse] = TtlCache(ttl_s, clock=clock)
        self._days: TtlCache[_CatalogueDay] = TtlCache(ttl_s, max_entries=1_000, clock=clock)

    def kept_check(
        self, request: registry_api.CheckInstitutionRequest
    ) -> registry_api.CheckInstitutionResponse | None:
        """The kept answer for the same institution, care, day and insured place, if any."""
        return self._checks.get(_check_key(request)) if self._checks.enabled else None

    def check_institution(
        self,
        request: registry_api.CheckInstitutionRequest,
        ask: Callable[[registry_api.CheckInstitutionRequest], registry_api.CheckInstitutionResponse],
    ) -> registry_api.CheckInstitutionResponse:
        """The kept answer for the same institution, care, day and insured place, else the province's."""
        kept = self.kept_check(request)
        if kept is not None:
            return kept
        answer = ask(request)
        self._checks.put(_check_key(request), answer)
        return answer

    def lookup_items(
        self,
        admdvs: str,
        codes: Sequence[str],
        day: date,
        ask: Callable[[Sequence[str]], catalogue_api.LookupItemsResponse],
    ) -> catalogue_api.LookupItemsResponse:
        """The entries for ``codes``: the kept ones, and the province's answer for the others."""
        if not self._days.enabled:
            return ask(codes)
        kept = self._days.get((admdvs, day))
        wanted = codes if kept is None else [code for code in codes if code not in kept.entries]
        if not wanted:
            assert kept is not None
            return kept.answer(codes)
        answer = ask(wanted)
        if kept is None or _versions(answer) != kept.versions:
            if kept is not None and len(wanted) < len(codes):  # another version took effect: ask it all
                answer, wanted = ask(codes), codes
            kept = _CatalogueDay(_versions(answer))
            kept.take(answer, wanted)
            self._days.put((admdvs, day), kept)
            return kept.answer(codes)
        kept.take(answer, wanted)
        return kept.answer(codes)
