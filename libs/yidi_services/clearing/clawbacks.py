"""Clawbacks (追回): supervision recovers part of a settlement's fund payment; the next clearing carries it.

A clawback never changes a closed period: it waits, uncleared, until the first clearing run
of its *adjustment period* or later — the settlement's own month if that is still open,
else the month after the last one cleared — and appears there as an adjustment line
(the treatment province gives back, the insured province owes less), naming the period
the settlement was cleared in and the supervision's reason. The ledger sees it when that
run posts its lines. A settlement's clawbacks never exceed its fund payment, and a
reversed settlement cannot be clawed back (the reversal already undid all of it). A
settlement reversed *after* a clawback is refunded exactly once: its reversal gives back the
whole payment, so the run that clears the reversal returns its clawbacks
(:func:`returned`) — clawback, return and reversal together undo the payment once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from yidi_core.errors import DomainError, invalid
from yidi_runtime.wire import as_utc
from yidi_services.clearing.journal import Kind
from yidi_services.clearing.models import ClawbackRecord, JournalEntryRecord
from yidi_services.clearing.periods import Period
from yidi_services.clearing.statements import Line


@dataclass(frozen=True, slots=True)
class Clawback:
    """What supervision ordered, checked at the edge."""

    msgid: str
    amount_fen: int
    reason: str
    fixmedins_code: str


@dataclass(frozen=True, slots=True)
class Recorded:
    """The clawback's id and the period whose statements will carry it."""

    clawback_id: str
    adjustment_period: str


def clawback_id(seq: int) -> str:
    """The public id of a clawback."""
    return f"CB{seq:010d}"


def record(session: Session, clawback: Clawback, closed: Period | None, now: datetime) -> Recorded:
    """Record a clawback against a journalled settlement, for the first clearing after ``closed``."""
    settlement = session.scalars(
        select(JournalEntryRecord)
        .where(
            JournalEntryRecord.fixmedins_code == clawback.fixmedins_code,
            JournalEntryRecord.msgid == clawback.msgid,
        )
        .with_for_update()
    ).one_or_none()
    if settlement is None:
        raise DomainError(
            "NOT_FOUND",
            f"no settlement {clawback.msgid} in the national journal",
            metadata={"msgid": clawback.msgid},
        )
    if settlement.kind != Kind.SETTLEMENT.value:
        raise invalid("INVALID_ARGUMENT", "msgid", f"{clawback.msgid} is a reversal, not a settlement")
    reversal = session.scalar(
        select(JournalEntryRecord.msgid).where(
            JournalEntryRecord.fixmedins_code == clawback.fixmedins_code,
            JournalEntryRecord.reverses_msgid == clawback.msgid,
        )
    )
    if reversal is not None:
        raise DomainError(
            "ALREADY_REVERSED",
            f"settlement {clawback.msgid} was reversed by {reversal}: nothing is left to claw back",
            metadata={"msgid": clawback.msgid, "reversed_by": reversal},
        )
    taken = session.scalar(
        select(func.coalesce(func.sum(ClawbackRecord.amount_fen), 0)).where(
            ClawbackRecord.fixmedins_code == clawback.fixmedins_code, ClawbackRecord.msgid == clawback.msgid
        )
    )
    left = settlement.fund_pay_sumamt_fen - int(taken or 0)
    if clawback.amount_fen > left:
        raise invalid(
            "INVALID_ARGUMENT",
            "amount_fen",
            f"exceeds the fund payment left to claw back from {clawback.msgid}: {left} fen",
            metadata={"msgid": clawback.msgid},
        )
    settled_in = Period.of(as_utc(settlement.setl_time))
    adjustment = settled_in if closed is None or closed < settled_in else closed.next()
    row = ClawbackRecord(
        fixmedins_code=clawback.fixmedins_code,
        msgid=clawback.msgid,
        insured_province=settlement.insured_province,
        treatment_province=settlement.treatment_province,
        amount_fen=clawback.amount_fen,
        reason=clawback.reason,
        origin_period=settlement.cleared_period or str(settled_in),
        adjustment_period=str(adjustment),
        cleared_period=None,
        record_time=as_utc(now),
    )
    session.add(row)
    session.flush()
    return Recorded(clawback_id(row.seq), str(adjustment))


def carried(session: Session, period: Period) -> list[Line]:
    """The adjustment lines of the clawbacks a run of ``period`` carries; marks them cleared by it."""
    records = session.scalars(
        select(ClawbackRecord)
        .where(ClawbackRecord.cleared_period.is_(None), ClawbackRecord.adjustment_period <= str(period))
        .order_by(ClawbackRecord.seq)
    ).all()
    if records:
        session.execute(
            update(ClawbackRecord)
            .where(ClawbackRecord.seq.in_([record.seq for record in records]))
            .values(cleared_period=str(period))
            .execution_options(synchronize_session=False)
        )
    return [
        Line(
            record.insured_province,
            record.treatment_province,
            0,
            0,
            -record.amount_fen,
            adjustment=True,
            origin_period=record.origin_period,
            adjustment_note=(
                f"{record.origin_period}: clawback {clawback_id(record.seq)} of settlement "
                f"{record.msgid}: {record.reason}"
            ),
        )
        for record in records
    ]


def returned(session: Session, period: Period) -> list[Line]:
    """The lines returning the clawbacks of settlements whose reversals the run of ``period`` clears.

    Call once the run has marked its journal entries: a reversal cleared by this run undoes
    the whole payment, so what supervision already took back from the treatment province
    goes back to it, once (each reversal is cleared once).
    """
    journal, clawback = JournalEntryRecord, ClawbackRecord
    rows = session.execute(
        select(
            journal.insured_province,
            journal.treatment_province,
            journal.reverses_msgid,
            journal.fixmedins_code,
            func.sum(clawback.amount_fen),
        )
        .join(
            clawback,
            (clawback.fixmedins_code == journal.fixmedins_code) & (clawback.msgid == journal.reverses_msgid),
        )
        .where(journal.cleared_period == str(period), journal.kind == Kind.REVERSAL.value)
        .group_by(
            journal.insured_province,
            journal.treatment_province,
            journal.reverses_msgid,
            journal.fixmedins_code,
        )
        .order_by(journal.reverses_msgid)
    )
    return [
        Line(
            insured,
            treatment,
            0,
            0,
            int(total),
            adjustment=True,
            origin_period=str(period),
            adjustment_note=(
                f"{period}: clawbacks of settlement {code}/{msgid} returned, its reversal refunds all of it"
            ),
        )
        for insured, treatment, msgid, code, total in rows
    ]
