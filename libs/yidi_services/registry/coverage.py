"""Coverage per province, city and county, and the counties with no outpatient settlement.

The national goal is at least one institution per county that settles general outpatient
(普通门诊) costs directly. The registry knows the counties its institutions lie in (open
or closed); counties with no institution at all can only be reported when the caller names
them (``expected_counties``), so a gap list is only as complete as that list.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.orm import Session

from yidi_core.codes import check_region
from yidi_core.errors import DomainError, combine, invalid
from yidi_runtime.config import region_contains
from yidi_runtime.regions import region_level, region_prefix
from yidi_services.registry import store
from yidi_services.registry.institutions import ServiceKind


@dataclass
class CoverageRow:
    """Active institutions of one region and how many opened each service."""

    admdvs: str
    region_level: str
    institution_count: int = 0
    inpatient_count: int = 0
    general_outpatient_count: int = 0
    special_drugs_count: int = 0
    chronic_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Coverage:
    """Rows by region code, and the counties without general outpatient settlement."""

    rows: list[CoverageRow]
    counties_without_outpatient: list[str]


def _regions_of(admdvs: str) -> list[str]:
    """The province, city and county rows a region code counts towards (city codes have no county)."""
    chain = [admdvs[:2] + "0000", admdvs[:4] + "00", admdvs]
    return [code for code in dict.fromkeys(chain) if region_level(code) != "national"]


def _expected(region: str, counties: Sequence[str]) -> list[str]:
    errors: list[DomainError] = []
    checked = []
    for index, county in enumerate(counties):
        name = f"expected_counties[{index}]"
        try:
            code = check_region(county, name)
        except DomainError as error:
            errors.append(error)
            continue
        if region_level(code) != "county":
            errors.append(invalid("INVALID_CODE", name, f"must be a county code, got {code}"))
        elif not region_contains(region, code):
            errors.append(invalid("INVALID_ARGUMENT", name, f"lies outside the reported region {region}"))
        else:
            checked.append(code)
    error = combine(errors)
    if error is not None:
        raise error
    return checked


def _add(row: CoverageRow, count: store.ServiceCount) -> None:
    if count.kind is ServiceKind.INPATIENT:
        row.inpatient_count += count.count
    elif count.kind is ServiceKind.GENERAL_OUTPATIENT:
        row.general_outpatient_count += count.count
    elif count.kind is ServiceKind.SPECIAL_DRUGS:
        row.special_drugs_count += count.count
    elif count.kind is ServiceKind.CHRONIC_OUTPATIENT:
        row.chronic_counts[count.chronic_disease] = (
            row.chronic_counts.get(count.chronic_disease, 0) + count.count
        )


def report(session: Session, admdvs: str, as_of: date, expected_counties: Sequence[str]) -> Coverage:
    """Coverage of ``admdvs`` (national 000000, a province, a city or a county) on ``as_of``."""
    region = check_region(admdvs, "admdvs")
    expected = _expected(region, expected_counties)
    every, active, services = store.coverage_counts(session, region_prefix(region), as_of)
    rows: dict[str, CoverageRow] = {}

    def rows_of(code: str) -> list[CoverageRow]:
        return [rows.setdefault(r, CoverageRow(r, region_level(r))) for r in _regions_of(code)]

    for code in [*every, *expected]:
        rows_of(code)
    for code, count in active.items():
        for row in rows_of(code):
            row.institution_count += count
    per_region: dict[str, list[store.ServiceCount]] = defaultdict(list)
    for count in services:
        per_region[count.admdvs].append(count)
    for code, counts in per_region.items():
        for row in rows_of(code):
            for count in counts:
                _add(row, count)
    ordered = [rows[code] for code in sorted(rows) if region_contains(region, code)]
    gaps = [
        row.admdvs for row in ordered if row.region_level == "county" and row.general_outpatient_count == 0
    ]
    return Coverage(ordered, gaps)
