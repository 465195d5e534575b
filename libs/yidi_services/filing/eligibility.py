"""CheckEligibility: may this person settle directly in that region on that date for that care?

The answer is the person's snapshot with the filing category, or the first reason a window
clerk must act on, in the order they would act: the person is unknown, then their
insurance (contributions, credential), then their filing (pending, expired, missing), then
the outpatient designation. Emergency rescue counts as filed without a record, and a
person treated in their own insured region is a local patient, long-term filers included
(双向享受待遇).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from yidi_core.codes import check_chronic_disease, check_institution, check_region, is_pilot_chronic_disease
from yidi_core.dictionaries import NATIONAL
from yidi_core.errors import DomainError, combine, invalid
from yidi_runtime.config import region_contains
from yidi_services.filing import persons, rules
from yidi_services.filing.filings import Category, Filing, State, from_row
from yidi_services.filing.models import FilingRow
from yidi_services.filing.persons import Person, PersonRef

EMERGENCY_MED_TYPES = frozenset({"13", "24"})
"""急诊 and 急诊转住院: emergency rescue, filed or not."""
OUTPATIENT_MED_TYPES = frozenset({"11", "12", "14"})
"""Outpatient care, where an insured region may require designated institutions."""
CHRONIC_OUTPATIENT = "14"
"""门诊慢特病."""


@dataclass(frozen=True)
class Question:
    """CheckEligibility as plain values."""

    person: PersonRef
    insuplc_admdvs: str
    treatment_admdvs: str
    service_date: date | None
    med_type: str
    emergency: bool
    chronic_disease: str
    fixmedins_code: str


@dataclass(frozen=True)
class Answer:
    """Eligible: the person, and the filing category (None for a local patient) and filing if any."""

    person: Person
    category: Category | None
    filing: Filing | None


def _refusal(reason: str, message: str, person: Person, **metadata: str) -> DomainError:
    return DomainError(reason, message, metadata={"psn_no": person.psn_no, **metadata})


def _validated(question: Question) -> tuple[str, str, date, str]:
    errors: list[DomainError] = []
    checks = [
        lambda: check_region(question.insuplc_admdvs, "insuplc_admdvs"),
        lambda: check_region(question.treatment_admdvs, "treatment_admdvs"),
        lambda: NATIONAL.check("med_type", question.med_type, "med_type"),
        lambda: persons.checked(question.person),
    ]
    if question.med_type.strip() == "14" or question.chronic_disease:
        checks.append(lambda: check_chronic_disease(question.chronic_disease, "chronic_disease"))
    if question.fixmedins_code:
        checks.append(lambda: check_institution(question.fixmedins_code, "fixmedins_code"))
    if question.service_date is None:
        errors.append(invalid("INVALID_ARGUMENT", "service_date", "is required"))
    for check in checks:
        try:
            check()
        except DomainError as error:
            errors.append(error)
    error = combine(errors)
    if error is not None:
        raise error
    assert question.service_date is not None
    return (
        question.insuplc_admdvs.strip(),
        question.treatment_admdvs.strip(),
        question.service_date,
        question.med_type.strip(),
    )


def _ensure_insured(person: Person, day: date) -> None:
    if person.interrupted_on(day):
        raise _refusal(
            "CONTRIBUTION_INTERRUPTED",
            f"person {person.psn_no}'s contributions are interrupted on {day}; benefits are suspended",
            person,
            date=day.isoformat(),
        )
    if not person.credential_activated:
        raise _refusal(
            "CREDENTIAL_NOT_ACTIVATED",
            f"person {person.psn_no}'s social security card or e-voucher is not activated",
            person,
        )


_FILINGS = FilingRow.__table__
_FILINGS_OF = (
    select(_FILINGS)
    .where(
        _FILINGS.c.psn_no == bindparam("psn_no"),
        or_(_FILINGS.c.state == State.APPROVED.value, _FILINGS.c.state == State.PENDING_REVIEW.value),
    )
    .order_by(_FILINGS.c.filing_id.desc())
)
"""Built once: every settlement at the insured place asks for the person's filings."""


def _filings_for(session: Session, person: Person, treatment: str, today: date) -> list[Filing]:
    rows = session.execute(_FILINGS_OF, {"psn_no": person.psn_no})
    return [
        filing
        for filing in (from_row(row, person.certno, today) for row in rows)
        if region_contains(filing.treatment_admdvs, treatment)
    ]


def _filed(filings: list[Filing], person: Person, treatment: str, day: date, emergency: bool) -> Answer:
    stored_approved = [f for f in filings if f.state in (State.APPROVED, State.EXPIRED)]
    covering = next((f for f in stored_approved if f.covers(day)), None)
    if covering is not None:
        return Answer(person, covering.category, covering)
    if emergency:
        return Answer(person, Category.EMERGENCY, None)
    pending = next((f for f in filings if f.state is State.PENDING_REVIEW), None)
    if pending is not None:
        deadline = pending.review_deadline.isoformat() if pending.review_deadline else ""
        raise _refusal(
            "FILING_PENDING_REVIEW",
            f"filing {pending.filing_id} for {pending.treatment_admdvs} waits for review (deadline {deadline})",
            person,
            filing_id=pending.filing_id,
            review_deadline=deadline,
        )
    if stored_approved:
        latest = stored_approved[0]
        until = latest.end_date.isoformat() if latest.end_date else "open"
        raise _refusal(
            "FILING_EXPIRED",
            f"filing {latest.filing_id} is valid {latest.start_date} to {until}, not on {day}",
            person,
            filing_id=latest.filing_id,
        )
    raise _refusal(
        "NOT_FILED",
        f"person {person.psn_no} has no filing for treatment region {treatment} on {day}",
        person,
        treatment_admdvs=treatment,
    )


def check(session: Session, question: Question, today: date) -> Answer:
    """The eligible person with their category and filing, or the first stable refusal reason."""
    insured, treatment, day, med_type = _validated(question)
    ref = persons.checked(question.person)
    person = persons.find(session, ref)
    if person is None or not region_contains(insured, person.insuplc_admdvs):
        raise persons.not_found(ref, insured)
    _ensure_insured(person, day)
    if region_contains(person.insuplc_admdvs, treatment):
        return Answer(person, None, None)
    emergency = question.emergency or med_type in EMERGENCY_MED_TYPES
    answer = _filed(_filings_for(session, person, treatment, today), person, treatment, day, emergency)
    if answer.filing is not None and med_type in OUTPATIENT_MED_TYPES and not _pilot_chronic(question):
        _ensure_designated(session, answer.filing, question.fixmedins_code.strip(), day, person)
    return answer


def _pilot_chronic(question: Question) -> bool:
    """Chronic outpatient care (14) for one of the five nationally piloted diseases: any networked
    institution that offers it may treat the filed patient, whatever institutions the filing designates."""
    return question.med_type.strip() == CHRONIC_OUTPATIENT and is_pilot_chronic_disease(
        question.chronic_disease
    )


def _ensure_designated(session: Session, filing: Filing, institution: str, day: date, person: Person) -> None:
    required = rules.in_force(session, filing.insuplc_admdvs, day).outpatient_designations_required
    if not required:
        return
    if not institution:
        raise invalid(
            "INVALID_ARGUMENT",
            "fixmedins_code",
            f"is required for outpatient care: region {filing.insuplc_admdvs} requires designated institutions",
        )
    if institution not in filing.designated_institutions:
        chosen = ", ".join(filing.designated_institutions) or "none"
        raise _refusal(
            "INSTITUTION_NOT_DESIGNATED",
            f"institution {institution} is not among the outpatient designated institutions of filing "
            f"{filing.filing_id} ({chosen})",
            person,
            filing_id=filing.filing_id,
            fixmedins_code=institution,
        )
