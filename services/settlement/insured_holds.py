"""Holds: an applied settlement stays provisional until the treatment node confirms it (no 单边账).

The insured node applies a settlement before the treatment node has recorded it. If the
treatment node never records it (it crashed, the answer was lost and the HIS gave up), the
insured place would have paid a settlement nobody else knows: a one-sided settlement. So
an application is a *hold*: the treatment node confirms it through its outbox once its own
record commits, and a hold still unconfirmed when it expires is voided, restoring the
accumulators and account exactly. A confirmation that arrives after the void re-applies
the same changes, because the treatment record is the truth.

Every transition locks the person first (:func:`~.insured_ledger.lock_person`) and then
re-reads the application, so the expiry worker, a confirmation and a revert of one hold
never interleave. Each function runs inside its caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yidi_core.accumulators import AccumulatorChange, AccumulatorKind, reverse_changes
from yidi_core.errors import DomainError, invalid
from yidi_core.money import from_fen
from yidi_runtime.wire import as_utc
from yidi_services.settlement.insured_ledger import Movement, insert_if_absent, lock_person, move
from yidi_services.settlement.insured_models import AccountRow, ApplicationRow, ApplicationState

_REFUSED_FOR_EVER = frozenset({ApplicationState.REVERTED.value, ApplicationState.TOMBSTONE.value})


class AlreadyApplied(Exception):
    """The id was applied by an earlier (or a concurrent, committed) request: answer from the log."""


@dataclass(frozen=True)
class Transition:
    """What a confirmation or revert did: the state after, and the movements it made now (of ``year``)."""

    state: ApplicationState
    movements: tuple[Movement, ...] = ()
    reapplied: bool = False
    year: int = 0


def corrected(request_id: str) -> DomainError:
    """CORRECTED: this application was reverted (or reverted before it arrived) and never takes effect."""
    return DomainError(
        "CORRECTED",
        f"settlement request {request_id} was reverted (冲正) and will never take effect",
        metadata={"request_id": request_id},
    )


def changes_of(row: ApplicationRow) -> tuple[AccumulatorChange, ...]:
    """The accumulator changes the application made, as core values."""
    return tuple(
        AccumulatorChange(AccumulatorKind(kind), key, from_fen(delta)) for kind, key, delta in row.changes
    )


def refuse_taken(row: ApplicationRow) -> None:
    """An apply finding its id taken: CORRECTED after a revert, else the original answer stands."""
    if row.state in _REFUSED_FOR_EVER:
        raise corrected(row.request_id)
    raise AlreadyApplied(row.request_id)


def ensure_not_corrected(session: Session, request_id: str) -> None:
    """CORRECTED, before any other work, for an id that was reverted: a repeat must not look applied."""
    row = session.get(ApplicationRow, request_id)
    if row is not None and row.state in _REFUSED_FOR_EVER:
        raise corrected(request_id)


def _locked(session: Session, row: ApplicationRow) -> tuple[AccountRow, ApplicationRow]:
    """The person's lock, then the application as it stands under it (a revert may just have won)."""
    account = lock_person(session, row.psn_no)
    fresh = session.scalars(
        select(ApplicationRow)
        .where(ApplicationRow.request_id == row.request_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return account, fresh


def _restore(session: Session, account: AccountRow, row: ApplicationRow) -> list[Movement]:
    assert row.year is not None
    return move(session, account, row.year, reverse_changes(changes_of(row)), -row.account_delta_fen)


def record(session: Session, row: ApplicationRow) -> None:
    """Store a new application, or refuse if a concurrent apply or revert took its id first."""
    values = {column.key: getattr(row, column.key) for column in ApplicationRow.__table__.columns}
    if not insert_if_absent(session, ApplicationRow, values):
        taken = session.get(ApplicationRow, row.request_id, populate_existing=True)
        assert taken is not None
        refuse_taken(taken)


def confirm(session: Session, request_id: str, setl_id: str, now: datetime) -> Transition:
    """Make the hold final; re-apply it if it had expired; a no-op once reverted. NOT_FOUND or CORRECTED otherwise.

    A re-application adds back exactly what the hold had changed, even if a cap or the
    balance moved since: the patient already paid what the treatment record says.
    """
    row = session.get(ApplicationRow, request_id)
    if row is None:
        raise DomainError(
            "NOT_FOUND",
            f"no settlement was applied here with request id {request_id}",
            metadata={"request_id": request_id},
        )
    if row.state == ApplicationState.TOMBSTONE.value:
        raise corrected(request_id)
    account, row = _locked(session, row)
    if row.state == ApplicationState.REVERTED.value:
        # Reversed (a refund or correction) before this confirmation arrived: the settlement
        # existed and is undone, so the confirmation has nothing left to do — and must not be
        # refused, or the treatment node's outbox would send it for ever.
        return Transition(ApplicationState.REVERTED, year=row.year or 0)
    if row.setl_id and setl_id != row.setl_id:
        raise invalid(
            "INVALID_ARGUMENT", "setl_id", f"request {request_id} was applied for settlement {row.setl_id}"
        )
    if row.state == ApplicationState.CONFIRMED:
        return Transition(ApplicationState.CONFIRMED)
    reapplied = row.state == ApplicationState.EXPIRED
    movements = ()
    if reapplied:
        assert row.year is not None
        movements = tuple(move(session, account, row.year, changes_of(row), row.account_delta_fen))
        row.voided_at = None
    row.state, row.setl_id, row.confirmed_at = ApplicationState.CONFIRMED.value, setl_id, now
    return Transition(ApplicationState.CONFIRMED, movements, reapplied, row.year or 0)


def revert(session: Session, request_id: str, psn_no: str, now: datetime) -> Transition:
    """Undo the application exactly; one never applied gets a tombstone (refused for ever after).

    The tombstone is inserted first: if an apply of that id is committing at this moment,
    the insert waits for it and finds the application, which is then reverted.
    """
    tombstone = {
        "request_id": request_id,
        "state": ApplicationState.TOMBSTONE.value,
        "psn_no": psn_no,
        "year": None,
        "setl_id": "",
        "policy_version": "",
        "changes": [],
        "account_delta_fen": 0,
        "medfee_sumamt_fen": 0,
        "fund_pay_sumamt_fen": 0,
        "acct_pay_fen": 0,
        "psn_cash_pay_fen": 0,
        "created_at": now,
        "voided_at": now,
    }
    if insert_if_absent(session, ApplicationRow, tombstone):
        return Transition(ApplicationState.TOMBSTONE)
    row = session.get(ApplicationRow, request_id)
    assert row is not None
    if row.state in _REFUSED_FOR_EVER:
        return Transition(ApplicationState(row.state), year=row.year or 0)
    account, row = _locked(session, row)
    movements: tuple[Movement, ...] = ()
    if row.state in (ApplicationState.HELD, ApplicationState.CONFIRMED):
        movements = tuple(_restore(session, account, row))
        row.voided_at = now
    row.state = ApplicationState.REVERTED.value
    return Transition(ApplicationState.REVERTED, movements, year=row.year or 0)


def expire(session: Session, request_id: str, now: datetime) -> bool:
    """Void one hold if it is still unconfirmed and expired at ``now``; True when it was voided."""
    row = session.get(ApplicationRow, request_id)
    if row is None or row.state != ApplicationState.HELD:
        return False
    account, row = _locked(session, row)
    if row.state != ApplicationState.HELD or row.hold_expires_at is None or as_utc(row.hold_expires_at) > now:
        return False
    _restore(session, account, row)
    row.state, row.voided_at = ApplicationState.EXPIRED.value, now
    return True


def expired_holds(session: Session, now: datetime, limit: int) -> list[str]:
    """Ids of held applications whose hold expired by ``now``, oldest first."""
    return list(
        session.scalars(
            select(ApplicationRow.request_id)
            .where(ApplicationRow.state == ApplicationState.HELD.value, ApplicationRow.hold_expires_at <= now)
            .order_by(ApplicationRow.hold_expires_at)
            .limit(limit)
        )
    )


def pending_count(session: Session) -> int:
    """How many holds await their confirmation."""
    return (
        session.scalar(
            select(func.count())
            .select_from(ApplicationRow)
            .where(ApplicationRow.state == ApplicationState.HELD.value)
        )
        or 0
    )
