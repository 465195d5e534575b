"""What happens to a filing after the application: review, cancellation, completed materials.

Reviews are the operators' side of the queue; each decision records who made it and when,
so the time from submission to decision can be measured.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime

from sqlalchemy.orm import Session

from yidi_core.errors import DomainError, invalid
from yidi_runtime.regions import ensure_within
from yidi_services.filing import rules
from yidi_services.filing.applications import ensure_changeable, missing_materials
from yidi_services.filing.filings import (
    OPEN_STATES,
    Category,
    Filing,
    Materials,
    State,
    load_row,
    materials_document,
    read,
    reads_as,
)
from yidi_services.filing.models import FilingRow

_REASON_MAX = 500
_REVIEWER_MAX = 100


@dataclass(frozen=True)
class Review:
    """ReviewFiling as plain values; ``decision`` is ``approve``, ``reject`` or '' (unspecified)."""

    filing_id: str
    decision: str
    reason: str
    reviewer: str


def _open_row(session: Session, node_region: str, filing_id: str) -> FilingRow:
    if not filing_id.strip():
        raise invalid("INVALID_ARGUMENT", "filing_id", "is required")
    row = load_row(session, filing_id, lock=True)
    ensure_within(node_region, row.insuplc_admdvs, f"filing {row.filing_id}")
    return row


def review(session: Session, node_region: str, decision: Review, now: datetime, today: date) -> Filing:
    """Approve or reject a filing waiting for review (a rejection needs a reason)."""
    if decision.decision not in ("approve", "reject"):
        raise invalid("INVALID_ARGUMENT", "decision", "must be approve or reject")
    if not decision.reviewer.strip() or len(decision.reviewer) > _REVIEWER_MAX:
        raise invalid("INVALID_ARGUMENT", "reviewer", f"is required, at most {_REVIEWER_MAX} characters")
    if decision.decision == "reject" and not decision.reason.strip():
        raise invalid("INVALID_ARGUMENT", "reason", "is required to reject a filing")
    if len(decision.reason) > _REASON_MAX:
        raise invalid("INVALID_ARGUMENT", "reason", f"must be at most {_REASON_MAX} characters")
    row = _open_row(session, node_region, decision.filing_id)
    state = reads_as(row, today)
    if state is not State.PENDING_REVIEW:
        raise DomainError(
            "FILING_STATE",
            f"filing {row.filing_id} is {state.value}, not waiting for review",
            metadata={"filing_id": row.filing_id, "state": state.value},
        )
    row.state = (State.APPROVED if decision.decision == "approve" else State.REJECTED).value
    row.state_reason = decision.reason.strip()
    row.reviewer = decision.reviewer.strip()
    row.decide_time = now
    session.flush()
    return read(session, [row], today)[0]


def cancel(
    session: Session, node_region: str, filing_id: str, reason: str, now: datetime, today: date
) -> Filing:
    """Cancel a pending or approved filing (long-term ones only after the region's minimum period)."""
    if len(reason) > _REASON_MAX:
        raise invalid("INVALID_ARGUMENT", "reason", f"must be at most {_REASON_MAX} characters")
    row = _open_row(session, node_region, filing_id)
    ensure_changeable(row, rules.in_force(session, row.insuplc_admdvs, today), today, "cancelled")
    row.state = State.CANCELLED.value
    row.state_reason = reason.strip() or "cancelled on request"
    row.decide_time = now
    session.flush()
    return read(session, [row], today)[0]


def complete_materials(
    session: Session, node_region: str, filing_id: str, materials: Materials, today: date
) -> Filing:
    """Complete materials accepted incomplete (容缺受理): the proofs must now satisfy the region."""
    row = _open_row(session, node_region, filing_id)
    current = read(session, [row], today)[0]
    if current.state not in OPEN_STATES or not current.materials.to_complete_later:
        raise DomainError(
            "FILING_STATE",
            f"filing {row.filing_id} has no materials waiting for completion",
            metadata={"filing_id": row.filing_id, "state": current.state.value},
        )
    completed = replace(materials, to_complete_later=False, complete_by=None)
    shortfall = missing_materials(
        Category(row.category), completed, rules.in_force(session, row.insuplc_admdvs, today)
    )
    if shortfall is not None:
        raise shortfall
    row.materials = materials_document(completed)
    session.flush()
    return read(session, [row], today)[0]
