"""What a city node keeps of its province's answers (``[settlement] province_cache_s``).

Handler-level: :class:`ProvinceAnswers` with a fake province that counts what it is asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pytest

from yidi.catalogue.v1 import catalogue_pb2
from yidi.catalogue.v1 import catalogue_service_pb2 as catalogue_api
from yidi.registry.v1 import institution_registry_service_pb2 as registry_api
from yidi_core.errors import DomainError
from yidi_services.settlement.treatment.province_cache import ProvinceAnswers

DAY = date(2026, 12, 7)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Catalogue:
    """A province's catalogue: ``entries`` in force under ``versions``; remembers each question."""

    def __init__(self, entries: set[str], versions: tuple[str, str] = ("overlay-1", "base-1")) -> None:
        self.entries, self.versions = entries, versions
        self.asked: list[list[str]] = []

    def __call__(self, codes: Sequence[str]) -> catalogue_api.LookupItemsResponse:
        self.asked.append(list(codes))
        return catalogue_api.LookupItemsResponse(
            items=[catalogue_pb2.CatalogueItem(code=code) for code in codes if code in self.entries],
            missing_codes=[code for code in codes if code not in self.entries],
            overlay_version_id=self.versions[0],
            base_version_id=self.versions[1],
        )


def test_catalogue_entries_are_asked_once_per_code_and_answered_as_the_province_would() -> None:
    province, kept = Catalogue({"A", "B"}), ProvinceAnswers(30, Clock())
    first = kept.lookup_items("330000", ["A", "X"], DAY, province)
    second = kept.lookup_items("330000", ["B", "A", "X"], DAY, province)

    assert province.asked == [["A", "X"], ["B"]]
    assert second == province(["B", "A", "X"])
    assert first == province(["A", "X"])


def test_a_new_catalogue_version_replaces_the_kept_entries() -> None:
    province, kept = Catalogue({"A", "B"}), ProvinceAnswers(30, Clock())
    kept.lookup_items("330000", ["A"], DAY, province)
    province.entries, province.versions = {"B"}, ("overlay-2", "base-1")

    answer = kept.lookup_items("330000", ["A", "B"], DAY, province)

    assert province.asked == [["A"], ["B"], ["A", "B"]]
    assert [item.code for item in answer.items] == ["B"] and list(answer.missing_codes) == ["A"]
    assert answer.overlay_version_id == "overlay-2"


def test_kept_answers_expire_and_a_zero_bound_keeps_nothing() -> None:
    clock = Clock()
    province, kept = Catalogue({"A"}), ProvinceAnswers(30, clock)
    kept.lookup_items("330000", ["A"], DAY, province)
    clock.now += 31
    kept.lookup_items("330000", ["A"], DAY, province)
    assert len(province.asked) == 2

    never = Catalogue({"A"})
    for _ in range(2):
        ProvinceAnswers(0, clock).lookup_items("330000", ["A"], DAY, never)
    assert len(never.asked) == 2


def test_an_institution_check_is_kept_but_a_refusal_is_asked_again() -> None:
    clock = Clock()
    kept = ProvinceAnswers(30, clock)
    request = registry_api.CheckInstitutionRequest(fixmedins_code="H33040000001", med_type="21")
    asked: list[registry_api.CheckInstitutionRequest] = []

    def open_institution(
        question: registry_api.CheckInstitutionRequest,
    ) -> registry_api.CheckInstitutionResponse:
        asked.append(question)
        return registry_api.CheckInstitutionResponse()

    def suspended(question: registry_api.CheckInstitutionRequest) -> registry_api.CheckInstitutionResponse:
        asked.append(question)
        raise DomainError("INSTITUTION_SUSPENDED", "suspended")

    other = registry_api.CheckInstitutionRequest(fixmedins_code="H33040000002", med_type="21")
    for _ in range(2):
        with pytest.raises(DomainError):
            kept.check_institution(other, suspended)
    kept.check_institution(request, open_institution)
    kept.check_institution(request, open_institution)
    assert len(asked) == 3

    clock.now += 31
    kept.check_institution(request, open_institution)
    assert len(asked) == 4
