"""When a region's filing rules change: the open filings they govern are checked again, and an operator decides.

SetFilingRules stores the rules and, in the same transaction, checks every open filing the
new rules govern (pending or approved, made under other rules, valid on or after the day they
take effect) as a new application would be checked (:func:`~yidi_services.filing.applications.rule_failures`).
A filing that would no longer pass gets a pending recheck naming each failed check; one that
still passes gets none. The filing stands as it was until an operator of its insured region
decides: keep it, cancel it, or ask for the materials the new rules need. A recheck still
pending when newer rules arrive is superseded (the filing is checked against those instead),
and one whose filing was cancelled, changed, rejected or expired meanwhile reads as closed,
as an expired filing reads as expired: nothing has to sweep them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, func, not_, or_, select, tuple_, update
from sqlalchemy.orm import Session

from yidi_core.codes import check_region
from yidi_core.errors import DomainError, invalid
from yidi_runtime import identity
from yidi_runtime.logs import get_logger
from yidi_runtime.paging import decode_token, encode_token, page_size
from yidi_runtime.regions import below, ensure_within
from yidi_runtime.wire import as_utc
from yidi_services.filing import decisions, rules
from yidi_services.filing.applications import rule_failures
from yidi_services.filing.designation_levels import RegistryAnswers
from yidi_services.filing.filings import (
    OPEN_STATES,
    Filing,
    in_states,
    load_row,
    materials_document,
    read,
    reads_as,
)
from yidi_services.filing.models import FilingRow, RecheckRow
from yidi_services.filing.rules import FilingRules

_REASON_MAX = 500


class RecheckState(StrEnum):
    """Where a recheck stands (see FilingRecheckState in filing_service.proto); ``closed`` is only read."""

    PENDING = "pending"
    KEPT = "kept"
    CANCELLED = "cancelled"
    MATERIALS_REQUIRED = "materials_required"
    SUPERSEDED = "superseded"
    CLOSED = "closed"


_DECIDED_AS = {
    "keep": RecheckState.KEPT,
    "cancel": RecheckState.CANCELLED,
    "require_materials": RecheckState.MATERIALS_REQUIRED,
}


@dataclass(frozen=True)
class Failure:
    """One failed check: its stable reason, the filing's field and why."""

    reason: str
    field: str
    message: str


@dataclass(frozen=True)
class Recheck:
    """A filing's recheck as read on a given day."""

    filing: Filing
    old_rules_version: str
    new_rules_version: str
    failures: tuple[Failure, ...]
    state: RecheckState
    create_time: datetime
    decision_reason: str
    decided_by: str
    decide_time: datetime | None


def _failure_documents(errors: list[DomainError]) -> list[dict[str, str]]:
    """Each failed check as stored: every check's refusal names the field it failed on."""
    return [
        {"reason": error.reason_code, "field": violation.field, "message": violation.description}
        for error in errors
        for violation in error.violations
    ]


def _open_below(stored: FilingRules, today: date) -> ColumnElement[bool]:
    """Open filings below the rules' region that are still valid when the rules take effect."""
    assert stored.effective_date is not None
    return and_(
        below(FilingRow.insuplc_admdvs, stored.insuplc_admdvs),
        in_states(OPEN_STATES, today),
        or_(FilingRow.end_date.is_(None), FilingRow.end_date >= stored.effective_date),
    )


def designated_codes(session: Session, given: FilingRules, today: date) -> list[str]:
    """The institutions the filings to recheck may designate (their levels are asked before writing)."""
    lists = session.scalars(select(FilingRow.designated_institutions).where(_open_below(given, today)))
    return sorted({code for codes in lists for code in codes})


def recheck_open_filings(
    session: Session, stored: FilingRules, answers: RegistryAnswers, now: datetime, today: date
) -> None:
    """Check the open filings ``stored`` governs against it; a pending recheck for each that fails."""
    assert stored.effective_date is not None
    day = max(stored.effective_date, today)
    governs: dict[str, bool] = {}
    created = 0
    for row in session.scalars(
        select(FilingRow)
        .where(_open_below(stored, today), FilingRow.rules_version != stored.label)
        .order_by(FilingRow.filing_id)
    ).all():
        if row.insuplc_admdvs not in governs:  # a region below with rules of its own is not governed
            governs[row.insuplc_admdvs] = (
                rules.in_force(session, row.insuplc_admdvs, day).label == stored.label
            )
        if not governs[row.insuplc_admdvs]:
            continue
        session.execute(
            update(RecheckRow)
            .where(RecheckRow.filing_id == row.filing_id, RecheckRow.state == RecheckState.PENDING.value)
            .values(state=RecheckState.SUPERSEDED.value)
        )
        failures = rule_failures(row, stored, answers, today)
        if failures:
            session.add(
                RecheckRow(
                    filing_id=row.filing_id,
                    new_rules_version=stored.label,
                    insuplc_admdvs=row.insuplc_admdvs,
                    old_rules_version=row.rules_version,
                    failures=_failure_documents(failures),
                    state=RecheckState.PENDING.value,
                    create_time=now,
                    decision_reason="",
                    decided_by="",
                    decide_time=None,
                )
            )
            created += 1
    session.flush()
    get_logger().info("filing rules rechecked", rules_version=stored.label, rechecks=created)


def _state(row: RecheckRow, filing_row: FilingRow, today: date) -> RecheckState:
    state = RecheckState(row.state)
    if state is RecheckState.PENDING and reads_as(filing_row, today) not in OPEN_STATES:
        return RecheckState.CLOSED
    return state


def _read(session: Session, pairs: list[tuple[RecheckRow, FilingRow]], today: date) -> list[Recheck]:
    filings = read(session, [filing_row for _, filing_row in pairs], today)
    return [
        Recheck(
            filing=filing,
            old_rules_version=row.old_rules_version,
            new_rules_version=row.new_rules_version,
            failures=tuple(Failure(**failure) for failure in row.failures),
            state=_state(row, filing_row, today),
            create_time=as_utc(row.create_time),
            decision_reason=row.decision_reason,
            decided_by=row.decided_by,
            decide_time=as_utc(row.decide_time) if row.decide_time else None,
        )
        for (row, filing_row), filing in zip(pairs, filings, strict=True)
    ]


def _in_state(state: RecheckState, today: date) -> ColumnElement[bool]:
    stored_pending = RecheckRow.state == RecheckState.PENDING.value
    if state is RecheckState.PENDING:
        return and_(stored_pending, in_states(OPEN_STATES, today))
    if state is RecheckState.CLOSED:
        return and_(stored_pending, not_(in_states(OPEN_STATES, today)))
    return RecheckRow.state == state.value


@dataclass(frozen=True)
class RecheckQuery:
    """ListFilingRechecks as plain values; ``state`` is a state name or '' for all."""

    insuplc_admdvs: str
    state: str
    page_size: int
    page_token: str


def list_rechecks(session: Session, query: RecheckQuery, today: date) -> tuple[list[Recheck], str]:
    """A page of the region's rechecks (and the regions' below it), oldest filing first."""
    region = check_region(query.insuplc_admdvs, "insuplc_admdvs")
    limit = page_size(query.page_size)
    key = {"insuplc_admdvs": region, "state": query.state}
    statement = (
        select(RecheckRow, FilingRow)
        .join(FilingRow, FilingRow.filing_id == RecheckRow.filing_id)
        .where(below(RecheckRow.insuplc_admdvs, region))
        .order_by(RecheckRow.filing_id, RecheckRow.new_rules_version)
        .limit(limit + 1)
    )
    if query.state:
        try:
            state = RecheckState(query.state)
        except ValueError:
            raise invalid("INVALID_ARGUMENT", "state", f"{query.state!r} is not a recheck state") from None
        statement = statement.where(_in_state(state, today))
    after = decode_token(query.page_token, key, 2)
    if after is not None:
        statement = statement.where(tuple_(RecheckRow.filing_id, RecheckRow.new_rules_version) > tuple(after))
    pairs = [(recheck, filing) for recheck, filing in session.execute(statement)]
    page = pairs[:limit]
    token = ""
    if len(pairs) > limit:
        last = page[-1][0]
        token = encode_token([last.filing_id, last.new_rules_version], key)
    return _read(session, page, today), token


@dataclass(frozen=True)
class Decision:
    """DecideFilingRecheck as plain values; ``decision`` is keep, cancel, require_materials or ''."""

    filing_id: str
    decision: str
    reason: str


def _checked(decision: Decision) -> RecheckState:
    if not decision.filing_id.strip():
        raise invalid("INVALID_ARGUMENT", "filing_id", "is required")
    state = _DECIDED_AS.get(decision.decision)
    if state is None:
        raise invalid("INVALID_ARGUMENT", "decision", "must be KEEP, CANCEL or REQUIRE_MATERIALS")
    if len(decision.reason) > _REASON_MAX:
        raise invalid("INVALID_ARGUMENT", "reason", f"must be at most {_REASON_MAX} characters")
    if state is RecheckState.CANCELLED and not decision.reason.strip():
        raise invalid("INVALID_ARGUMENT", "reason", "is required to cancel a filing")
    return state


def _not_waiting(filing_id: str, state: RecheckState) -> DomainError:
    return DomainError(
        "RECHECK_STATE",
        f"filing {filing_id}'s recheck is {state.value}; nothing waits for a decision",
        metadata={"filing_id": filing_id, "state": state.value},
    )


def _require_materials(session: Session, filing_row: FilingRow, recheck: RecheckRow, today: date) -> None:
    """Mark the filing's materials to be completed, within the region's working days for it (else its review days)."""
    if not any(failure["reason"] == "MATERIALS_REQUIRED" for failure in recheck.failures):
        raise invalid(
            "INVALID_ARGUMENT", "decision", "REQUIRE_MATERIALS needs a recheck that failed on materials"
        )
    region_rules = rules.in_force(session, filing_row.insuplc_admdvs, today)
    days = region_rules.complete_later_working_days or region_rules.review_deadline_working_days
    materials = read(session, [filing_row], today)[0].materials
    filing_row.materials = materials_document(
        replace(materials, to_complete_later=True, complete_by=region_rules.calendar.add(today, days))
    )


def decide(session: Session, node_region: str, decision: Decision, now: datetime, today: date) -> Recheck:
    """Decide the filing's pending recheck once: keep, cancel (as CancelFiling) or require materials."""
    outcome = _checked(decision)
    filing_row = load_row(session, decision.filing_id, lock=True)
    ensure_within(node_region, filing_row.insuplc_admdvs, f"filing {filing_row.filing_id}")
    rows = session.scalars(
        select(RecheckRow)
        .where(RecheckRow.filing_id == filing_row.filing_id)
        .order_by(RecheckRow.create_time)
    ).all()
    if not rows:
        raise DomainError(
            "NOT_FOUND",
            f"filing {filing_row.filing_id} has no recheck",
            metadata={"filing_id": filing_row.filing_id},
        )
    recheck = next((row for row in rows if row.state == RecheckState.PENDING.value), rows[-1])
    state = _state(recheck, filing_row, today)
    if state is not RecheckState.PENDING:
        raise _not_waiting(filing_row.filing_id, state)
    reason = decision.reason.strip()
    if outcome is RecheckState.CANCELLED:
        decisions.cancel(session, node_region, filing_row.filing_id, reason, now, today)
    elif outcome is RecheckState.MATERIALS_REQUIRED:
        _require_materials(session, filing_row, recheck, today)
    recheck.state = outcome.value
    recheck.decision_reason = reason
    recheck.decided_by = identity.acting().subject
    recheck.decide_time = now
    session.flush()
    return _read(session, [(recheck, filing_row)], today)[0]


def pending_counts(session: Session, today: date) -> list[tuple[str, int]]:
    """Each insured region's rechecks waiting for a decision (for the metrics gauge)."""
    rows = session.execute(
        select(RecheckRow.insuplc_admdvs, func.count())
        .join(FilingRow, FilingRow.filing_id == RecheckRow.filing_id)
        .where(_in_state(RecheckState.PENDING, today))
        .group_by(RecheckRow.insuplc_admdvs)
    )
    return [(region, count) for region, count in rows]
