"""Clearing statements (清算单): one per province and period, confirmed by the province, settled by transfers.

A period's lines are stored once (a pair line concerns two provinces); a province's
statement shows the lines naming it, and its payable (as insured place), receivable (as
treatment place) and net = receivable − payable. States: issued (a run writes its
statements in the transaction that clears the journal, so OPEN is never observed) →
confirmed (ConfirmStatement; the payable and receivable move into clearing transit on the
ledger) → settled (RecordTransfer has moved the whole net; a statement with nothing to
move is settled on confirmation). Transfers go into the pool from a paying province
(net < 0) and out of it to a paid one (net > 0).

The province answers within its confirmation days (until ``confirm_by`` inclusive, China
time): it confirms, or disputes with a reason (issued → disputed; no transfer is taken).
A dispute is resolved by a confirmation — the province's own once the national node has
answered it (a correction reaches the next period as an adjustment line, as clawbacks
do), or, once the days are over, a national operator's: after ``confirm_by`` a province
can no longer confirm or dispute (CONFIRMATION_OVERDUE) and the statement raises the
overdue-confirmation alert until the national node confirms it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from yidi_core.errors import DomainError, invalid
from yidi_runtime.paging import decode_token, encode_token
from yidi_runtime.wire import as_utc, china_day
from yidi_services.clearing import ledger
from yidi_services.clearing.calendar import Deadlines
from yidi_services.clearing.models import StatementLineRecord, StatementRecord, TransferRecord

_STATEMENT_ID = re.compile(r"\d{4}-\d{2}/\d{2}0000")


class StatementState(StrEnum):
    """open → issued → confirmed → settled; issued → disputed → confirmed."""

    OPEN = "open"
    ISSUED = "issued"
    CONFIRMED = "confirmed"
    SETTLED = "settled"
    DISPUTED = "disputed"


AWAITING_CONFIRMATION = (StatementState.ISSUED, StatementState.DISPUTED)
"""The states a province's answer (or, once overdue, the national node's) is still awaited in."""


@dataclass(frozen=True, slots=True)
class Line:
    """A pair (insured province pays, treatment province is paid), or an adjustment carried from a closed period."""

    insured_admdvs: str
    treatment_admdvs: str
    settlement_count: int
    medfee_sumamt_fen: int
    fund_pay_sumamt_fen: int
    adjustment: bool = False
    origin_period: str | None = None
    adjustment_note: str = ""


@dataclass(frozen=True, slots=True)
class Transfer:
    """Money moved for a statement."""

    amount_fen: int
    bank_reference: str
    transfer_time: datetime


@dataclass(frozen=True, slots=True)
class Dispute:
    """Why, by whom and when the province disputed its statement."""

    reason: str
    disputed_by: str
    dispute_time: datetime


@dataclass(frozen=True, slots=True)
class Statement:
    """A province's statement for a period."""

    statement_id: str
    period: str
    admdvs: str
    state: StatementState
    lines: tuple[Line, ...]
    payable_fen: int
    receivable_fen: int
    net_fen: int
    issue_time: datetime
    confirm_by: date
    confirm_time: datetime | None
    transfer_by: date
    transfers: tuple[Transfer, ...]
    confirmed_by: str
    dispute: Dispute | None


def statement_id(period: str, admdvs: str) -> str:
    """``2026-05/630000``."""
    return f"{period}/{admdvs}"


def issue(
    session: Session, run_id: str, period: str, lines: Sequence[Line], deadlines: Deadlines, now: datetime
) -> list[str]:
    """Store a period's lines and one statement per province named in them; their ids, in order."""
    session.add_all(
        StatementLineRecord(
            period=period,
            position=position,
            insured_admdvs=line.insured_admdvs,
            treatment_admdvs=line.treatment_admdvs,
            settlement_count=line.settlement_count,
            medfee_sumamt_fen=line.medfee_sumamt_fen,
            fund_pay_sumamt_fen=line.fund_pay_sumamt_fen,
            adjustment=line.adjustment,
            origin_period=line.origin_period,
            adjustment_note=line.adjustment_note,
        )
        for position, line in enumerate(lines)
    )
    payable, receivable = totals(lines)
    ids = []
    for admdvs in sorted(payable.keys() | receivable.keys()):
        ids.append(statement_id(period, admdvs))
        session.add(
            StatementRecord(
                statement_id=ids[-1],
                period=period,
                admdvs=admdvs,
                run_id=run_id,
                state=StatementState.ISSUED.value,
                payable_fen=payable[admdvs],
                receivable_fen=receivable[admdvs],
                net_fen=receivable[admdvs] - payable[admdvs],
                issue_time=as_utc(now),
                confirm_by=deadlines.confirm_by,
                confirm_time=None,
                confirmed_by="",
                transfer_by=deadlines.transfer_by,
                transferred_fen=0,
                settle_time=None,
                dispute_reason="",
                disputed_by="",
                dispute_time=None,
            )
        )
    session.flush()
    return ids


def totals(lines: Iterable[Line]) -> tuple[defaultdict[str, int], defaultdict[str, int]]:
    """Each province's payable (as insured place) and receivable (as treatment place)."""
    payable: defaultdict[str, int] = defaultdict(int)
    receivable: defaultdict[str, int] = defaultdict(int)
    for line in lines:
        payable[line.insured_admdvs] += line.fund_pay_sumamt_fen
        receivable[line.treatment_admdvs] += line.fund_pay_sumamt_fen
    return payable, receivable


def _not_found(statement_id: str) -> DomainError:
    return DomainError(
        "NOT_FOUND", f"no statement {statement_id!r}", metadata={"statement_id": statement_id[:32]}
    )


def _record(session: Session, statement_id: str, *, lock: bool = False) -> StatementRecord:
    if not statement_id:
        raise invalid("INVALID_ARGUMENT", "statement_id", "is required")
    if not _STATEMENT_ID.fullmatch(statement_id):
        raise _not_found(statement_id)
    query = select(StatementRecord).where(StatementRecord.statement_id == statement_id)
    record = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if record is None:
        raise _not_found(statement_id)
    return record


def get(session: Session, statement_id: str) -> Statement:
    """One statement (NOT_FOUND when there is none of that id)."""
    return _assembled(session, [_record(session, statement_id)])[0]


def list_statements(
    session: Session,
    period: str,
    admdvs: str,
    state: StatementState | None,
    overdue_on: date | None,
    size: int,
    token: str,
) -> tuple[list[Statement], str]:
    """One page of statements ordered by id (period, then province); with ``overdue_on``, only
    those still awaiting confirmation after their deadline on that day."""
    key = f"statements:{period}:{admdvs}:{state}:{overdue_on}"
    after = decode_token(token, key, 1)
    query = select(StatementRecord).order_by(StatementRecord.statement_id).limit(size + 1)
    if after is not None:
        query = query.where(StatementRecord.statement_id > after[0])
    if period:
        query = query.where(StatementRecord.period == period)
    if admdvs:
        query = query.where(StatementRecord.admdvs == admdvs)
    if state is not None:
        query = query.where(StatementRecord.state == state.value)
    if overdue_on is not None:
        query = query.where(
            StatementRecord.state.in_([awaited.value for awaited in AWAITING_CONFIRMATION]),
            StatementRecord.confirm_by < overdue_on,
        )
    records = session.scalars(query).all()
    page = records[:size]
    token_out = encode_token([page[-1].statement_id], key) if len(records) > size else ""
    return _assembled(session, page), token_out


def unsettled(session: Session) -> list[StatementRecord]:
    """Statements still waiting for a confirmation or a transfer (for the overdue alerts)."""
    return list(
        session.scalars(
            select(StatementRecord).where(
                StatementRecord.state.in_(
                    [*(awaited.value for awaited in AWAITING_CONFIRMATION), StatementState.CONFIRMED.value]
                )
            )
        )
    )


def _assembled(session: Session, records: Sequence[StatementRecord]) -> list[Statement]:
    """Statements with their lines and transfers, loaded in one query each."""
    if not records:
        return []
    provinces = {record.admdvs for record in records}
    line_rows = session.scalars(
        select(StatementLineRecord)
        .where(
            StatementLineRecord.period.in_(sorted({record.period for record in records})),
            or_(
                StatementLineRecord.insured_admdvs.in_(sorted(provinces)),
                StatementLineRecord.treatment_admdvs.in_(sorted(provinces)),
            ),
        )
        .order_by(StatementLineRecord.period, StatementLineRecord.position)
    )
    lines: defaultdict[tuple[str, str], list[Line]] = defaultdict(list)
    for row in line_rows:
        line = Line(
            row.insured_admdvs,
            row.treatment_admdvs,
            row.settlement_count,
            row.medfee_sumamt_fen,
            row.fund_pay_sumamt_fen,
            row.adjustment,
            row.origin_period,
            row.adjustment_note,
        )
        for admdvs in {row.insured_admdvs, row.treatment_admdvs} & provinces:
            lines[row.period, admdvs].append(line)
    transfers: defaultdict[str, list[Transfer]] = defaultdict(list)
    for row in session.scalars(
        select(TransferRecord)
        .where(TransferRecord.statement_id.in_([record.statement_id for record in records]))
        .order_by(TransferRecord.seq)
    ):
        transfers[row.statement_id].append(
            Transfer(row.amount_fen, row.bank_reference, as_utc(row.transfer_time))
        )
    return [
        Statement(
            statement_id=record.statement_id,
            period=record.period,
            admdvs=record.admdvs,
            state=StatementState(record.state),
            lines=tuple(lines[record.period, record.admdvs]),
            payable_fen=record.payable_fen,
            receivable_fen=record.receivable_fen,
            net_fen=record.net_fen,
            issue_time=as_utc(record.issue_time),
            confirm_by=record.confirm_by,
            confirm_time=as_utc(record.confirm_time) if record.confirm_time else None,
            transfer_by=record.transfer_by,
            transfers=tuple(transfers[record.statement_id]),
            confirmed_by=record.confirmed_by,
            dispute=Dispute(record.dispute_reason, record.disputed_by, as_utc(record.dispute_time))
            if record.dispute_time
            else None,
        )
        for record in records
    ]


def _ensure_state(record: StatementRecord, action: str, *wanted: StatementState) -> None:
    if record.state not in {state.value for state in wanted}:
        raise DomainError(
            "STATEMENT_STATE",
            f"statement {record.statement_id} is {record.state}: {action} needs it "
            f"{' or '.join(state.value for state in wanted)}",
            metadata={"statement_id": record.statement_id, "state": record.state},
        )


def _ensure_answerable(record: StatementRecord, action: str, now: datetime) -> None:
    """The province answers by ``confirm_by`` inclusive, a day in China."""
    if china_day(now) > record.confirm_by:
        raise DomainError(
            "CONFIRMATION_OVERDUE",
            f"statement {record.statement_id} was due for confirmation by {record.confirm_by}: "
            f"its {action} is the national node's now",
            metadata={"statement_id": record.statement_id, "confirm_by": record.confirm_by.isoformat()},
        )


def confirm(
    session: Session,
    request_id: str,
    statement_id: str,
    confirmed_by: str,
    now: datetime,
    *,
    overdue_allowed: bool,
) -> Statement:
    """issued or disputed → confirmed (settled at once when nothing is to move); the ledger moves it
    into transit. Within the confirmation days unless ``overdue_allowed`` (the national node's)."""
    record = _record(session, statement_id, lock=True)
    _ensure_state(record, "confirmation", *AWAITING_CONFIRMATION)
    if not overdue_allowed:
        _ensure_answerable(record, "confirmation", now)
    record.confirm_time, record.confirmed_by = as_utc(now), confirmed_by
    record.state = StatementState.CONFIRMED.value
    if record.net_fen == 0:
        record.state, record.settle_time = StatementState.SETTLED.value, as_utc(now)
    ledger.post(
        session,
        request_id,
        f"statement {statement_id} confirmed by {confirmed_by or 'the province'}",
        ledger.confirmation(record.admdvs, record.payable_fen, record.receivable_fen),
        now,
    )
    session.flush()
    return get(session, statement_id)


def dispute(session: Session, statement_id: str, reason: str, disputed_by: str, now: datetime) -> Statement:
    """issued → disputed, within the confirmation days: no transfer until it is confirmed."""
    record = _record(session, statement_id, lock=True)
    _ensure_state(record, "a dispute", StatementState.ISSUED)
    _ensure_answerable(record, "dispute", now)
    record.state = StatementState.DISPUTED.value
    record.dispute_reason, record.disputed_by, record.dispute_time = reason, disputed_by, as_utc(now)
    session.flush()
    return get(session, statement_id)


def record_transfer(
    session: Session, request_id: str, statement_id: str, transfer: Transfer, now: datetime
) -> Statement:
    """Record money moved for a confirmed statement; settled once the whole net has moved."""
    record = _record(session, statement_id, lock=True)
    _ensure_state(record, "a transfer", StatementState.CONFIRMED)
    outstanding = abs(record.net_fen) - record.transferred_fen
    if transfer.amount_fen > outstanding:
        raise invalid(
            "INVALID_ARGUMENT",
            "transfer.amount_fen",
            f"exceeds what statement {statement_id} still has to move: {outstanding} fen",
            metadata={"statement_id": statement_id},
        )
    session.add(
        TransferRecord(
            statement_id=statement_id,
            amount_fen=transfer.amount_fen,
            bank_reference=transfer.bank_reference,
            transfer_time=as_utc(transfer.transfer_time),
            record_time=as_utc(now),
        )
    )
    record.transferred_fen += transfer.amount_fen
    if record.transferred_fen == abs(record.net_fen):
        record.state, record.settle_time = StatementState.SETTLED.value, as_utc(now)
    paying = record.net_fen < 0
    ledger.post(
        session,
        request_id,
        f"transfer {transfer.bank_reference or 'without reference'} "
        f"{'from' if paying else 'to'} {record.admdvs} for statement {statement_id}",
        ledger.transfer(record.admdvs, transfer.amount_fen, into_pool=paying),
        now,
    )
    session.flush()
    return get(session, statement_id)
