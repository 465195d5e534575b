"""Clawbacks (追回): supervision recovers part of a settlement's fund payment; the next clearing carries it.

A clawback never changes a closed period: it waits, uncleared, until the first clearing run
of its *adjustment period* or later — the settlement's own month if that is still open,
else the month after the last one cleared — and appears there as an adjustment line
(the treatment province gives back, the insured province owes less), naming the period
the settlement was cleared in and the supervision's reason. The ledger sees it when that
run posts its lines. A settlement's clawbacks never exceed its fund payment, and a
reversed settlement cannot be clawed back (the reversal already undid all of it).
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
        select(JournalEntryRecord).where(JournalEntryRecord.msgid == clawback.msgid).with_for_update()
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
        select(JournalEntryRecord.msgid).where(JournalEntryRecord.reverses_msgid == clawback.msgid)
    )
    if reversal is not None:
        raise DomainError(
            "ALREADY_REVERSED",
            f"settlement {clawback.msgid} was reversed by {reversal}: nothing is left to claw back",
            metadata={"msgid": clawback.msgid, "reversed_by": reversal},
        )
    taken = session.scalar(
        select(func.coalesce(func.sum(ClawbackRecord.amount_fen), 0)).where(
            ClawbackRecord.msgid == clawback.msgid
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
