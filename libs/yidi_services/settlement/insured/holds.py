"""Holds: an applied settlement stays provisional until the treatment node confirms it (no 单边账).

The insured node applies a settlement before the treatment node has recorded it. If the
treatment node never records it (it crashed, the answer was lost and the HIS gave up), the
insured place would have paid a settlement nobody else knows: a one-sided settlement. So
an application is a *hold*: the treatment node confirms it through its outbox once its own
record commits. A hold still unconfirmed when it times out is not voided blindly: the
insured node asks the treatment node (:mod:`~yidi_services.settlement.insured.expiry`), which answers from its own
commit record and fences a settlement it never recorded, so it never will; only then is the
hold voided, restoring the accumulators and account exactly. A confirmation can therefore
never legitimately follow a void, and one that does changes nothing: re-applying it could
push an accumulator past its cap or the account below zero, which no treatment record can
justify after the fence.

An application belongs to the node that applied it (its ``origin_admdvs``): only that node
confirms or reverts it, and a revert that arrives first leaves a tombstone naming it.

A transition that moves money (a void, a revert) locks the person first
(:func:`~yidi_services.settlement.insured.ledger.lock_person`) and then re-reads the
application under its row lock; one that moves none (a confirmation, postponing a hold)
reads the application under that row lock alone. Either way the expiry worker, a
confirmation and a revert of one hold never interleave, and no two wait on each other's
locks in opposite orders. Each function runs inside its caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, func, select, update
from sqlalchemy.orm import Session

from yidi_core.accumulators import AccumulatorChange, AccumulatorKind, reverse_changes
from yidi_core.errors import DomainError, invalid
from yidi_core.money import from_fen
from yidi_runtime.config import region_contains
from yidi_runtime.db import insert_if_absent, row_by_key
from yidi_runtime.settlement_keys import KEY_SEPARATOR, origin_id, split_key
from yidi_services.settlement.insured.ledger import (
    Locked,
    Movement,
    accumulators,
    lock_person,
    move,
    move_family,
)
from yidi_services.settlement.insured.models import ApplicationRow, ApplicationState

_REFUSED_FOR_EVER = frozenset({ApplicationState.REVERTED.value, ApplicationState.TOMBSTONE.value})


class AlreadyApplied(Exception):
    """The id was applied by an earlier (or a concurrent, committed) request: answer from the log."""


@dataclass(frozen=True)
class Transition:
    """What a confirmation or revert did: the state after, and the movements it made now (of ``year``)."""

    state: ApplicationState
    movements: tuple[Movement, ...] = ()
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


_APPLICATIONS = ApplicationRow.__table__
_BY_ID = _APPLICATIONS.c.request_id == bindparam("application_id")
# Built once: every apply asks whether its id is taken, every confirmation reads and changes its hold.
_STATE = select(_APPLICATIONS.c.state).where(_BY_ID)
_CONFIRMABLE = (
    select(
        _APPLICATIONS.c.request_id,
        _APPLICATIONS.c.origin_admdvs,
        _APPLICATIONS.c.state,
        _APPLICATIONS.c.setl_id,
        _APPLICATIONS.c.year,
    )
    .where(_BY_ID)
    .with_for_update()
)
_CONFIRMING = (
    update(_APPLICATIONS)
    .where(_BY_ID)
    .values(
        state=ApplicationState.CONFIRMED.value,
        setl_id=bindparam("confirmed_setl_id"),
        confirmed_at=bindparam("confirmed_now"),
    )
)


def state_of(session: Session, request_id: str) -> str | None:
    """The state of application ``request_id``, None when there is none."""
    state: str | None = session.execute(_STATE, {"application_id": request_id}).scalar_one_or_none()
    return state


def refuse_taken(request_id: str, state: str) -> None:
    """An apply finding its id taken (in ``state``): CORRECTED after a revert, else the original answer stands."""
    if state in _REFUSED_FOR_EVER:
        raise corrected(request_id)
    raise AlreadyApplied(request_id)


def check_application_id(request_id: str, field: str, *, within: str = "", origin: str = "") -> None:
    """An application id names its institution's request (``<fixmedins_code>/<msgid>:apply``, :mod:`yidi_runtime.settlement_keys`),
    so no node can take or touch another's: ``within`` is the institution it must name, ``origin``
    the node whose region must hold it. An id of before this scheme names none (and no new
    application can take such an id)."""
    key = origin_id(request_id, "apply")
    code, msgid = split_key(key or "")
    if within and (code != within or not msgid):
        raise invalid(
            "INVALID_ARGUMENT",
            field,
            f"must name the application as {within}{KEY_SEPARATOR}<msgid>:apply, not {request_id!r}",
        )
    if code and origin and not region_contains(origin, code[1:7]):
        raise DomainError(
            "PERMISSION_DENIED_REGION",
            f"node {origin} may act only on applications of its own institutions, not on {request_id}",
            metadata={"field": field, "origin_admdvs": origin},
        )


def check_origin(row: ApplicationRow | Row[Any], origin: str) -> None:
    """Only the node that applied an application (or left its tombstone) acts on it."""
    if row.origin_admdvs and row.origin_admdvs != origin:
        raise DomainError(
            "PERMISSION_DENIED_REGION",
            f"application {row.request_id} belongs to node {row.origin_admdvs}, not to node {origin}",
            metadata={"request_id": row.request_id, "origin_admdvs": row.origin_admdvs},
        )


def ensure_not_corrected(session: Session, request_id: str) -> None:
    """CORRECTED, before any other work, for an id that was reverted: a repeat must not look applied."""
    if state_of(session, request_id) in _REFUSED_FOR_EVER:
        raise corrected(request_id)


def _locked(session: Session, row: ApplicationRow) -> tuple[Locked, ApplicationRow]:
    """The person's lock, then the application as it stands under it (a revert may just have won)."""
    person = lock_person(session, row.psn_no)
    fresh = row_by_key(session, ApplicationRow, row.request_id, lock=True)
    assert fresh is not None  # applications are never deleted
    return person, fresh


def _restore(session: Session, person: Locked, row: ApplicationRow) -> list[Movement]:
    assert row.year is not None
    before = accumulators(session, person.psn_no, row.year)
    move_family(session, person, -row.family_delta_fen)
    return move(session, person, row.year, before, reverse_changes(changes_of(row)), -row.account_delta_fen)


def record(session: Session, values: dict[str, Any]) -> None:
    """Store a new application (its column values), or refuse if a concurrent apply or revert took its id first."""
    if not insert_if_absent(session, ApplicationRow, values):
        taken = state_of(session, values["request_id"])
        assert taken is not None
        refuse_taken(values["request_id"], taken)


def confirm(session: Session, request_id: str, setl_id: str, now: datetime, origin: str) -> Transition:
    """Make the hold final; a no-op once reverted or voided. NOT_FOUND, CORRECTED or PERMISSION_DENIED otherwise.

    ``origin`` is the node confirming: only the node that applied the hold may. The hold is read
    under its row lock alone: a confirmation moves no money, so it does not lock the person.
    """
    row = session.execute(_CONFIRMABLE, {"application_id": request_id}).first()
    if row is None:
        raise DomainError(
            "NOT_FOUND",
            f"no settlement was applied here with request id {request_id}",
            metadata={"request_id": request_id},
        )
    check_origin(row, origin)
    if row.state == ApplicationState.TOMBSTONE.value:
        raise corrected(request_id)
    if row.state in (ApplicationState.REVERTED.value, ApplicationState.EXPIRED.value):
        # Undone before this confirmation arrived (a refund, a correction, or a void the
        # treatment node agreed to by fencing the settlement): nothing is left to do — and it
        # must not be refused, or the treatment node's outbox would send it for ever.
        return Transition(ApplicationState(row.state), year=row.year or 0)
    if row.setl_id and setl_id != row.setl_id:
        raise invalid(
            "INVALID_ARGUMENT", "setl_id", f"request {request_id} was applied for settlement {row.setl_id}"
        )
    if row.state == ApplicationState.CONFIRMED:
        return Transition(ApplicationState.CONFIRMED)
    session.execute(
        _CONFIRMING, {"application_id": request_id, "confirmed_setl_id": setl_id, "confirmed_now": now}
    )
    return Transition(ApplicationState.CONFIRMED, year=row.year or 0)


def revert(session: Session, request_id: str, psn_no: str, now: datetime, origin: str) -> Transition:
    """Undo the application exactly; one never applied gets a tombstone (refused for ever after).

    The tombstone is inserted first: if an apply of that id is committing at this moment,
    the insert waits for it and finds the application, which is then reverted. ``origin`` is
    the node reverting: only the node that applied it may, and its tombstone names it.
    """
    tombstone = {
        "origin_admdvs": origin,
        "resolve_attempts": 0,
        "request_id": request_id,
        "state": ApplicationState.TOMBSTONE.value,
        "psn_no": psn_no,
        "year": None,
        "setl_id": "",
        "policy_version": "",
        "changes": [],
        "account_delta_fen": 0,
        "family_delta_fen": 0,
        "medfee_sumamt_fen": 0,
        "fund_pay_sumamt_fen": 0,
        "acct_pay_fen": 0,
        "psn_cash_pay_fen": 0,
        "created_at": now,
        "voided_at": now,
    }
    if insert_if_absent(session, ApplicationRow, tombstone):
        return Transition(ApplicationState.TOMBSTONE)
    row = row_by_key(session, ApplicationRow, request_id)
    assert row is not None
    check_origin(row, origin)
    if row.state in _REFUSED_FOR_EVER:
        return Transition(ApplicationState(row.state), year=row.year or 0)
    person, row = _locked(session, row)
    movements: tuple[Movement, ...] = ()
    if row.state in (ApplicationState.HELD, ApplicationState.CONFIRMED):
        movements = tuple(_restore(session, person, row))
        row.voided_at = now
    row.state = ApplicationState.REVERTED.value
    return Transition(ApplicationState.REVERTED, movements, year=row.year or 0)


def void(session: Session, request_id: str, now: datetime) -> bool:
    """Void one hold the treatment node said it never recorded (and fenced); True when it was voided."""
    row = row_by_key(session, ApplicationRow, request_id)
    if row is None or row.state != ApplicationState.HELD:
        return False
    person, row = _locked(session, row)
    if row.state != ApplicationState.HELD:
        return False
    _restore(session, person, row)
    row.state, row.voided_at = ApplicationState.EXPIRED.value, now
    return True


def postpone(session: Session, request_id: str, until: datetime) -> None:
    """The treatment node did not answer about a timed-out hold: ask again at ``until``."""
    row = row_by_key(session, ApplicationRow, request_id, lock=True)
    if row is not None and row.state == ApplicationState.HELD:
        row.hold_expires_at, row.resolve_attempts = until, row.resolve_attempts + 1


@dataclass(frozen=True)
class TimedOut:
    """A hold whose time is up: its application id, the node to ask about it, how often it was asked."""

    request_id: str
    origin_admdvs: str
    attempts: int


def expired_holds(session: Session, now: datetime, limit: int) -> list[TimedOut]:
    """Held applications whose hold timed out by ``now``, oldest first."""
    rows = session.execute(
        select(ApplicationRow.request_id, ApplicationRow.origin_admdvs, ApplicationRow.resolve_attempts)
        .where(ApplicationRow.state == ApplicationState.HELD.value, ApplicationRow.hold_expires_at <= now)
        .order_by(ApplicationRow.hold_expires_at)
        .limit(limit)
    )
    return [TimedOut(request_id, origin, attempts) for request_id, origin, attempts in rows]


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
