"""Insured-place filing rules as data (参保地备案规则): what each region allows and requires.

Rules are versioned by effective date and looked up for a region and a day; a city without
rules of its own uses its province's, and a region with none at all uses
:data:`NATIONAL_MINIMUM` (manual review in 3 working days, commitments accepted, six months
of temporary validity), so an application is never refused for lack of configuration.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from yidi_core.codes import check_region
from yidi_core.errors import DomainError, combine, invalid
from yidi_runtime.regions import ancestors, ensure_within
from yidi_runtime.working_days import WorkingCalendar
from yidi_services.filing.models import RulesRow

MIN_TEMPORARY_MONTHS = 6
_MAX_DEADLINE_DAYS = 60
_MAX_MONTHS = 120
_MAX_DESIGNATIONS = 10
_LEVELS = frozenset({"1", "2", "3"})


@dataclass(frozen=True)
class FilingRules:
    """One insured region's rules from ``effective_date`` on (see ``FilingRules`` in filing.proto)."""

    insuplc_admdvs: str
    auto_approve: bool = False
    review_deadline_working_days: int = 3
    holidays: tuple[date, ...] = ()
    working_weekends: tuple[date, ...] = ()
    commitment_accepted: bool = True
    referral_proof_waived: bool = False
    incomplete_materials_accepted: bool = False
    complete_later_working_days: int = 0
    temporary_validity_months: int = MIN_TEMPORARY_MONTHS
    long_term_min_months: int = 0
    outpatient_designations_required: int = 0
    outpatient_designation_levels: tuple[str, ...] = ()
    effective_date: date | None = None
    version: int = 0

    @property
    def label(self) -> str:
        """The version filings and rechecks name: ``<region>/<n>``, the region's n-th rules stored."""
        return f"{self.insuplc_admdvs}/{self.version}" if self.version else NATIONAL_MINIMUM_LABEL

    @property
    def calendar(self) -> WorkingCalendar:
        """The region's working days."""
        return WorkingCalendar(frozenset(self.holidays), frozenset(self.working_weekends))


NATIONAL_MINIMUM_LABEL = "national-minimum"
NATIONAL_MINIMUM = FilingRules(insuplc_admdvs="000000")
"""What applies where no region has set rules: the national floor, nothing waived."""


def _bounded(errors: list[DomainError], field: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        errors.append(invalid("INVALID_ARGUMENT", f"rules.{field}", f"must be {low} to {high}, got {value}"))


def validated(rules: FilingRules, node_region: str, today: date) -> FilingRules:
    """The rules as they will be stored (effective today unless dated), or every bad field at once."""
    errors: list[DomainError] = []
    check_region(rules.insuplc_admdvs, "rules.insuplc_admdvs")
    _bounded(
        errors, "review_deadline_working_days", rules.review_deadline_working_days, 1, _MAX_DEADLINE_DAYS
    )
    _bounded(
        errors,
        "temporary_validity_months",
        rules.temporary_validity_months,
        MIN_TEMPORARY_MONTHS,
        _MAX_MONTHS,
    )
    _bounded(errors, "long_term_min_months", rules.long_term_min_months, 0, _MAX_MONTHS)
    _bounded(
        errors,
        "outpatient_designations_required",
        rules.outpatient_designations_required,
        0,
        _MAX_DESIGNATIONS,
    )
    low = 1 if rules.incomplete_materials_accepted else 0
    _bounded(
        errors, "complete_later_working_days", rules.complete_later_working_days, low, _MAX_DEADLINE_DAYS
    )
    for index, level in enumerate(rules.outpatient_designation_levels):
        if level not in _LEVELS:
            errors.append(
                invalid(
                    "INVALID_ARGUMENT",
                    f"rules.outpatient_designation_levels[{index}]",
                    f"must be 1, 2 or 3, got {level[:10]!r}",
                )
            )
    for index, day in enumerate(rules.working_weekends):
        if day.weekday() < 5:
            errors.append(
                invalid("INVALID_ARGUMENT", f"rules.working_weekends[{index}]", f"{day} is not a weekend day")
            )
    error = combine(errors)
    if error is not None:
        raise error
    ensure_within(node_region, rules.insuplc_admdvs, "the rules' region")
    return replace(
        rules,
        insuplc_admdvs=rules.insuplc_admdvs.strip(),
        holidays=tuple(sorted(set(rules.holidays))),
        working_weekends=tuple(sorted(set(rules.working_weekends))),
        effective_date=rules.effective_date or today,
    )


def _document(rules: FilingRules) -> dict[str, Any]:
    document = asdict(rules)
    document["holidays"] = [day.isoformat() for day in rules.holidays]
    document["working_weekends"] = [day.isoformat() for day in rules.working_weekends]
    del document["insuplc_admdvs"], document["effective_date"], document["version"]
    return document


def _rules(row: RulesRow) -> FilingRules:
    document = dict(row.document)
    document["holidays"] = tuple(date.fromisoformat(day) for day in document["holidays"])
    document["working_weekends"] = tuple(date.fromisoformat(day) for day in document["working_weekends"])
    document["outpatient_designation_levels"] = tuple(document["outpatient_designation_levels"])
    return FilingRules(
        insuplc_admdvs=row.insuplc_admdvs, effective_date=row.effective_date, version=row.version, **document
    )


def save(session: Session, rules: FilingRules) -> FilingRules:
    """Store validated rules as the region's next version, replacing any with the same effective date."""
    assert rules.effective_date is not None
    latest = session.scalar(
        select(func.max(RulesRow.version)).where(RulesRow.insuplc_admdvs == rules.insuplc_admdvs)
    )
    rules = replace(rules, version=(latest or 0) + 1)
    session.execute(
        delete(RulesRow).where(
            RulesRow.insuplc_admdvs == rules.insuplc_admdvs, RulesRow.effective_date == rules.effective_date
        )
    )
    session.add(
        RulesRow(
            insuplc_admdvs=rules.insuplc_admdvs,
            effective_date=rules.effective_date,
            document=_document(rules),
            version=rules.version,
        )
    )
    session.flush()
    return rules


def configured(session: Session, region: str, day: date) -> FilingRules | None:
    """The rules in force for ``region`` on ``day``, its own or the nearest region's above it."""
    chain = ancestors(region)
    rows = session.scalars(
        select(RulesRow).where(RulesRow.insuplc_admdvs.in_(chain), RulesRow.effective_date <= day)
    ).all()
    for admdvs in chain:
        own = [row for row in rows if row.insuplc_admdvs == admdvs]
        if own:
            return _rules(max(own, key=lambda row: row.effective_date))
    return None


def in_force(session: Session, region: str, day: date) -> FilingRules:
    """The rules applications in ``region`` are decided by on ``day`` (the national minimum if none)."""
    return configured(session, region, day) or replace(NATIONAL_MINIMUM, insuplc_admdvs=region)


def get(session: Session, region: str, day: date) -> FilingRules:
    """GetFilingRules: the configured rules, NOT_FOUND when neither the region nor a region above has any."""
    found = configured(session, check_region(region, "insuplc_admdvs"), day)
    if found is None:
        raise DomainError(
            "NOT_FOUND",
            f"no filing rules are configured for region {region} or above it; the national minimum applies",
            metadata={"insuplc_admdvs": region},
        )
    return found
