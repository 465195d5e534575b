"""Applying for a filing and changing one: validation, materials, validity, decision.

One person, one filing per period, whatever the channel or the node it came through (every
application is answered at the insured place's node): an application overlapping an open
filing of the same person in period and treatment region returns that filing instead of a
second one; one overlapping it in period for another treatment region is refused
FILING_CONFLICT naming the open filing, which the person changes (ChangeFiling: a new
treatment region supersedes it) or cancels first. The person's row is locked while
deciding, so two channels applying at the same moment still end with one filing.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from yidi_core.codes import check_id_number, check_region, institution_region
from yidi_core.errors import DomainError, combine, invalid
from yidi_runtime import identity
from yidi_runtime.config import region_contains
from yidi_runtime.logs import get_logger
from yidi_services.filing import persons, rules
from yidi_services.filing.designation_levels import RegistryAnswers, level_refusal
from yidi_services.filing.filings import (
    OPEN_STATES,
    Applicant,
    Category,
    Channel,
    Filing,
    Materials,
    State,
    applicant_document,
    from_row,
    load_row,
    materials_document,
    new_filing_id,
    reads_as,
)
from yidi_services.filing.models import FilingRow
from yidi_services.filing.persons import Person, PersonRef
from yidi_services.filing.rules import FilingRules

T = TypeVar("T")
AUTO_REVIEWER = "auto"
RELATIONS = frozenset({"spouse", "child", "parent", "other"})
_TEXT_MAX = 64
_PROOF_OF = {
    Category.REFERRAL: "referral_proof_id",
    Category.LONG_TERM_RESIDENT: "residence_proof_id",
    Category.RETIREE_RESETTLED: "residence_proof_id",
    Category.POSTED_EMPLOYEE: "employer_proof_id",
}


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later, clamped to the month's end (31 Aug + 6 months = 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Application:
    """CreateFiling as plain values; enums are names ('' when unspecified)."""

    person: PersonRef
    insuplc_admdvs: str
    treatment_admdvs: str
    category: str
    channel: str
    applicant: Applicant
    start_date: date | None
    end_date: date | None
    materials: Materials
    designated_institutions: tuple[str, ...]
    retroactive: bool


@dataclass(frozen=True)
class Applied:
    """The filing answered, whether it already existed, and the outcome metrics count."""

    filing: Filing
    existing: bool

    @property
    def outcome(self) -> str:
        """``existing``, ``approved`` (instantly) or ``pending_review``."""
        return "existing" if self.existing else self.filing.state.value


def _category(name: str, field: str = "category") -> Category:
    try:
        return Category(name)
    except ValueError:
        raise invalid("INVALID_ARGUMENT", field, "must name one of the six filing categories") from None


def _channel(name: str, field: str = "channel") -> Channel:
    try:
        return Channel(name)
    except ValueError:
        raise invalid(
            "INVALID_ARGUMENT", field, "must name the channel the application came through"
        ) from None


def _applicant_errors(applicant: Applicant) -> list[DomainError]:
    errors: list[DomainError] = []
    if len(applicant.tel) > _TEXT_MAX:
        errors.append(invalid("INVALID_ARGUMENT", "applicant.tel", f"must be at most {_TEXT_MAX} characters"))
    if not applicant.on_behalf:
        return errors
    if not applicant.agent_name.strip() or len(applicant.agent_name) > _TEXT_MAX:
        errors.append(
            invalid("INVALID_ARGUMENT", "applicant.agent_name", "is required when applying on behalf")
        )
    try:
        check_id_number(applicant.agent_certno, "applicant.agent_certno")
    except DomainError as error:
        errors.append(error)
    if applicant.relation not in RELATIONS:
        errors.append(
            invalid(
                "INVALID_ARGUMENT", "applicant.relation", f"must be one of {', '.join(sorted(RELATIONS))}"
            )
        )
    return errors


def _treatment_region(value: str, field: str = "treatment_admdvs") -> str:
    region = check_region(value, field)
    if region == "000000" or not region.endswith("00"):
        raise invalid("INVALID_CODE", field, f"must be a province (PP0000) or a city (PPCC00), got {region}")
    return region


def missing_materials(
    category: Category, materials: Materials, region_rules: FilingRules
) -> DomainError | None:
    """MATERIALS_REQUIRED when the category's proof is missing and nothing the region accepts replaces it."""
    if materials.to_complete_later and not region_rules.incomplete_materials_accepted:
        return invalid(
            "MATERIALS_REQUIRED",
            "materials.to_complete_later",
            f"region {region_rules.insuplc_admdvs} does not accept incomplete materials (容缺受理)",
        )
    proof = _PROOF_OF.get(category)
    if proof is None or getattr(materials, proof).strip() or materials.to_complete_later:
        return None
    if category is Category.REFERRAL and region_rules.referral_proof_waived:
        return None
    if materials.personal_commitment and region_rules.commitment_accepted:
        return None
    instead = " or a personal commitment" if region_rules.commitment_accepted else ""
    return invalid(
        "MATERIALS_REQUIRED",
        f"materials.{proof}",
        f"a {category.value} filing in region {region_rules.insuplc_admdvs} needs this proof{instead}",
    )


def _designation_errors(
    codes: tuple[str, ...],
    treatment: str,
    region_rules: FilingRules,
    answers: RegistryAnswers | None,
    field: str = "designated_institutions",
) -> list[DomainError]:
    """Every reason the chosen institutions may not stand; levels unless ``answers`` is None (kept as they were)."""
    errors: list[DomainError] = []
    for index, code in enumerate(codes):
        try:
            region = institution_region(code, f"{field}[{index}]")
        except DomainError as error:
            errors.append(error)
            continue
        if not region_contains(treatment, region):
            errors.append(
                invalid(
                    "INVALID_ARGUMENT", f"{field}[{index}]", f"lies outside the treatment region {treatment}"
                )
            )
        elif answers is not None:
            refusal = level_refusal(code.strip(), region_rules, answers, f"{field}[{index}]")
            if refusal is not None:
                errors.append(refusal)
    cleaned = tuple(code.strip() for code in codes)
    if len(set(cleaned)) != len(cleaned):
        errors.append(invalid("INVALID_ARGUMENT", field, "must not repeat an institution"))
    limit = region_rules.outpatient_designations_required
    if limit and len(cleaned) > limit:
        errors.append(
            invalid(
                "INVALID_ARGUMENT", field, f"region {region_rules.insuplc_admdvs} allows choosing {limit}"
            )
        )
    return errors


def _designations(
    codes: tuple[str, ...],
    treatment: str,
    region_rules: FilingRules,
    answers: RegistryAnswers | None,
    field: str = "designated_institutions",
) -> tuple[str, ...]:
    """The chosen institutions, checked; their levels too unless ``answers`` is None (kept as they were)."""
    error = combine(_designation_errors(codes, treatment, region_rules, answers, field))
    if error is not None:
        raise error
    return tuple(code.strip() for code in codes)


def _validity(
    category: Category, start: date, end: date | None, region_rules: FilingRules, field: str = "end_date"
) -> date | None:
    """Long-term filings have no end; temporary ones last at least the region's minimum (≥ 6 months)."""
    if category.long_term:
        if end is not None:
            raise invalid("INVALID_ARGUMENT", field, "must be unset: a long-term filing stands until changed")
        return None
    shortest = add_months(start, region_rules.temporary_validity_months) - date.resolution
    if end is None:
        return shortest
    if end < shortest:
        raise invalid(
            "INVALID_ARGUMENT",
            field,
            f"a temporary filing is valid at least {region_rules.temporary_validity_months} months, until {shortest} or later",
        )
    return end


def _start(application: Application, today: date) -> date:
    start = application.start_date or today
    if application.retroactive:
        if application.start_date is None:
            raise invalid(
                "INVALID_ARGUMENT", "start_date", "is required for a retroactive filing: the admission date"
            )
        if start > today:
            raise invalid(
                "INVALID_ARGUMENT", "start_date", "must not be in the future for a retroactive filing"
            )
    elif start < today:
        raise invalid(
            "INVALID_ARGUMENT",
            "start_date",
            "is in the past: set retroactive for a filing made during an inpatient stay (出院结算前补办)",
        )
    return start


def _decision(
    category: Category, channel: Channel, region_rules: FilingRules, today: date
) -> tuple[State, date | None]:
    """Instant approval for self-service in auto-approving regions and for emergency rescue; else the queue."""
    if category is Category.EMERGENCY or (region_rules.auto_approve and channel.self_service):
        return State.APPROVED, None
    return State.PENDING_REVIEW, region_rules.calendar.add(today, region_rules.review_deadline_working_days)


def _open_overlaps(
    session: Session, psn_no: str, start: date, end: date | None, today: date, excluding: str = ""
) -> list[FilingRow]:
    """The person's open filings whose validity meets ``start``..``end`` (None: open-ended)."""
    rows = session.scalars(
        select(FilingRow)
        .where(
            FilingRow.psn_no == psn_no,
            FilingRow.state.in_([state.value for state in OPEN_STATES]),
            FilingRow.filing_id != excluding,
        )
        .order_by(FilingRow.filing_id)
    )
    return [
        row
        for row in rows
        if reads_as(row, today) in OPEN_STATES
        and (row.end_date is None or start <= row.end_date)
        and (end is None or row.start_date <= end)
    ]


def _regions_meet(one: str, other: str) -> bool:
    return region_contains(one, other) or region_contains(other, one)


def _conflict(row: FilingRow, treatment: str) -> DomainError:
    """FILING_CONFLICT: the person's open filing ``row`` covers part of the period for another region."""
    until = row.end_date.isoformat() if row.end_date else "open"
    return DomainError(
        "FILING_CONFLICT",
        f"filing {row.filing_id} for treatment region {row.treatment_admdvs} ({row.start_date} to {until}) "
        f"overlaps this period; change it (ChangeFiling) or cancel it before filing for {treatment}",
        metadata={"filing_id": row.filing_id, "treatment_admdvs": row.treatment_admdvs},
    )


def _person_for(session: Session, ref: PersonRef, insured_region: str) -> Person:
    ref = persons.checked(ref)
    person = persons.find(session, ref, lock=True)
    if person is None or not region_contains(insured_region, person.insuplc_admdvs):
        raise persons.not_found(ref, insured_region)
    return person


def _ensure_contributing(person: Person, *days: date) -> None:
    for day in days:
        if person.interrupted_on(day):
            raise DomainError(
                "CONTRIBUTION_INTERRUPTED",
                f"person {person.psn_no}'s contributions are interrupted on {day}; benefits are suspended",
                metadata={"psn_no": person.psn_no, "date": day.isoformat()},
            )


@dataclass(frozen=True)
class _Draft:
    """A validated filing about to be stored."""

    treatment: str
    category: Category
    channel: Channel
    start: date
    end: date | None
    materials: Materials
    designations: tuple[str, ...]


def _store(
    session: Session,
    person: Person,
    draft: _Draft,
    region_rules: FilingRules,
    applicant: Applicant,
    retroactive: bool,
    now: datetime,
    today: date,
    supersedes: str = "",
) -> Filing:
    state, deadline = _decision(draft.category, draft.channel, region_rules, today)
    materials = draft.materials
    if materials.to_complete_later:
        materials = replace(
            materials, complete_by=region_rules.calendar.add(today, region_rules.complete_later_working_days)
        )
    principal = identity.current.get()
    row = FilingRow(
        entered_by=principal.subject if principal is not None else "",
        filing_id=new_filing_id(person.insuplc_admdvs, now),
        psn_no=person.psn_no,
        insuplc_admdvs=person.insuplc_admdvs,
        treatment_admdvs=draft.treatment,
        category=draft.category.value,
        channel=draft.channel.value,
        applicant=applicant_document(applicant),
        materials=materials_document(materials),
        designated_institutions=list(draft.designations),
        start_date=draft.start,
        end_date=draft.end,
        retroactive=retroactive,
        state=state.value,
        state_reason="",
        review_deadline=deadline,
        supersedes_filing_id=supersedes,
        superseded_by_filing_id="",
        submit_time=now,
        decide_time=now if state is State.APPROVED else None,
        reviewer=AUTO_REVIEWER if state is State.APPROVED else "",
        rules_version=region_rules.label,
    )
    session.add(row)
    session.flush()
    get_logger().info(
        "filing application decided",
        filing_id=row.filing_id,
        psn_no=person.psn_no,
        certno=person.certno,
        psn_name=person.psn_name,
        category=draft.category.value,
        channel=draft.channel.value,
        state=state.value,
    )
    return from_row(row, person.certno, today)


def _attempt(errors: list[DomainError], parse: Callable[[], T]) -> T | None:
    """Run one check, collecting its refusal so the caller reports every bad field at once."""
    try:
        return parse()
    except DomainError as error:
        errors.append(error)
        return None


def apply(
    session: Session,
    application: Application,
    answers: RegistryAnswers,
    now: datetime,
    today: date,
) -> Applied:
    """CreateFiling: the new filing (approved instantly or queued), or the person's existing one.

    ``answers`` are the registry's levels of the designated institutions, asked beforehand.
    FILING_CONFLICT when an open filing overlaps the period for another treatment region.
    """
    insured = check_region(application.insuplc_admdvs, "insuplc_admdvs")
    errors = _applicant_errors(application.applicant)
    treatment = _attempt(errors, lambda: _treatment_region(application.treatment_admdvs))
    category = _attempt(errors, lambda: _category(application.category))
    channel = _attempt(errors, lambda: _channel(application.channel))
    start = _attempt(errors, lambda: _start(application, today))
    error = combine(errors)
    if error is not None:
        raise error
    assert treatment is not None and category is not None and channel is not None and start is not None
    person = _person_for(session, application.person, insured)
    if region_contains(person.insuplc_admdvs, treatment):
        raise invalid(
            "INVALID_ARGUMENT",
            "treatment_admdvs",
            f"lies in the person's own insured region {person.insuplc_admdvs}",
        )
    region_rules = rules.in_force(session, person.insuplc_admdvs, today)
    end = _validity(category, start, application.end_date, region_rules)
    overlapping = _open_overlaps(session, person.psn_no, start, end, today)
    existing = next((row for row in overlapping if _regions_meet(row.treatment_admdvs, treatment)), None)
    if existing is not None:
        return Applied(from_row(existing, person.certno, today), existing=True)
    if overlapping:
        raise _conflict(overlapping[0], treatment)
    _ensure_contributing(person, start, today)
    shortfall = missing_materials(category, application.materials, region_rules)
    if shortfall is not None:
        raise shortfall
    designations = _designations(application.designated_institutions, treatment, region_rules, answers)
    draft = _Draft(treatment, category, channel, start, end, application.materials, designations)
    filing = _store(
        session, person, draft, region_rules, application.applicant, application.retroactive, now, today
    )
    return Applied(filing, existing=False)


@dataclass(frozen=True)
class Change:
    """ChangeFiling as plain values: only what is given changes."""

    filing_id: str
    treatment_admdvs: str
    category: str
    end_date: date | None
    materials: Materials | None
    designated_institutions: tuple[str, ...]
    channel: str


def ensure_changeable(row: FilingRow, region_rules: FilingRules, today: date, action: str) -> None:
    """FILING_STATE unless open; FILING_CHANGE_RESTRICTED inside a long-term filing's minimum period."""
    state = reads_as(row, today)
    if state not in OPEN_STATES:
        raise DomainError(
            "FILING_STATE",
            f"filing {row.filing_id} is {state.value}; only a pending or approved filing can be {action}",
            metadata={"filing_id": row.filing_id, "state": state.value},
        )
    months = region_rules.long_term_min_months
    if state is State.APPROVED and Category(row.category).long_term and months:
        earliest = add_months(row.start_date, months)
        if today < earliest:
            raise DomainError(
                "FILING_CHANGE_RESTRICTED",
                f"region {row.insuplc_admdvs} lets a long-term filing be {action} only after {months} months, "
                f"from {earliest}",
                metadata={"filing_id": row.filing_id, "earliest_date": earliest.isoformat()},
            )


def change(
    session: Session, request: Change, answers: RegistryAnswers, now: datetime, today: date
) -> tuple[Filing, Filing]:
    """ChangeFiling: a new filing supersedes the old one and is decided like an application.

    Newly chosen designated institutions are checked against the registry's ``answers``;
    kept ones were checked when chosen. FILING_CONFLICT when the new validity would overlap
    another open filing of the person.
    """
    old = load_row(session, request.filing_id, lock=True)
    region_rules = rules.in_force(session, old.insuplc_admdvs, today)
    ensure_changeable(old, region_rules, today, "changed")
    person = persons.get(session, PersonRef("filing", psn_no=old.psn_no), lock=True)
    treatment = (
        _treatment_region(request.treatment_admdvs) if request.treatment_admdvs else old.treatment_admdvs
    )
    category = _category(request.category) if request.category else Category(old.category)
    channel = _channel(request.channel) if request.channel else Channel(old.channel)
    start = max(old.start_date, today)
    if request.end_date is not None or category.long_term or old.end_date is None:
        end = _validity(category, start, request.end_date, region_rules)
    else:
        end = old.end_date
    overlapping = _open_overlaps(session, person.psn_no, start, end, today, excluding=old.filing_id)
    if overlapping:
        raise _conflict(overlapping[0], treatment)
    materials = request.materials or from_row(old, person.certno, today).materials
    shortfall = missing_materials(category, materials, region_rules)
    if shortfall is not None:
        raise shortfall
    if request.designated_institutions:
        designations = _designations(request.designated_institutions, treatment, region_rules, answers)
    else:
        designations = _designations(tuple(old.designated_institutions), treatment, region_rules, None)
    draft = _Draft(treatment, category, channel, start, end, materials, designations)
    applicant = from_row(old, person.certno, today).applicant
    new = _store(session, person, draft, region_rules, applicant, old.retroactive, now, today, old.filing_id)
    old.state = State.SUPERSEDED.value
    old.superseded_by_filing_id = new.filing_id
    old.decide_time = now
    session.flush()
    return new, from_row(old, person.certno, today)


def rule_failures(
    row: FilingRow, region_rules: FilingRules, answers: RegistryAnswers, today: date
) -> list[DomainError]:
    """What the application behind ``row`` would be refused under ``region_rules``: each failed check once.

    The checks that depend on the rules, as :func:`apply` runs them: instant approval (an
    instantly approved filing whose region now reviews such applications fails
    REVIEW_REQUIRED), materials, the temporary validity's minimum, and the designated
    institutions (how many, their levels from ``answers``). A registry that could not be
    asked is a failure too (NODE_UNREACHABLE): the level was not checked.
    """
    filing = from_row(row, "", today)
    failures: list[DomainError] = []
    state, _ = _decision(filing.category, filing.channel, region_rules, today)
    if filing.state is State.APPROVED and filing.reviewer == AUTO_REVIEWER and state is not State.APPROVED:
        failures.append(
            invalid(
                "REVIEW_REQUIRED",
                "state",
                f"approved instantly; region {region_rules.insuplc_admdvs} now reviews "
                f"{filing.category.value} applications through {filing.channel.value} by hand",
            )
        )
    shortfall = missing_materials(filing.category, filing.materials, region_rules)
    if shortfall is not None:
        failures.append(shortfall)
    if not filing.category.long_term:
        _attempt(
            failures, lambda: _validity(filing.category, filing.start_date, filing.end_date, region_rules)
        )
    try:
        failures += _designation_errors(
            filing.designated_institutions, filing.treatment_admdvs, region_rules, answers
        )
    except DomainError as unasked:  # the registry's failure, raised by level_refusal
        failures.append(invalid(unasked.reason_code, "designated_institutions", unasked.message))
    return failures
