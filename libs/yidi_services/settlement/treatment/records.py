"""Settlement records (结算) as the treatment place keeps them, their reversals, and what they tell others.

Money comes from the insured node's answer and is never recomputed here; a reversing
record carries the same amounts negated and the accumulator changes the insured node
undid. Cross-province records also go to the national journal (the outbox delivers them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from google.protobuf.message import Message
from sqlalchemy import select
from sqlalchemy.orm import Session

from yidi.clearing.v1 import clearing_service_pb2 as clearing_api
from yidi.clearing.v1 import journal_pb2
from yidi.settlement.v1 import settlement_pb2
from yidi.type.v1 import settlement_result_pb2
from yidi_codec.documents import acct_mulaid_pay_fen, settlement_result_from_columns
from yidi_core.errors import DomainError
from yidi_runtime.wire import timestamp_message
from yidi_services.settlement.treatment.models import SettlementRow

_NOT_NEGATED = frozenset({"balc_fen", "crt_payb_lmt_amt_fen"})
"""Balances and cap room are states, not flows: a reversing record leaves them unset."""


class Recorded(Protocol):
    """A settlement record as the messages about it read it: a stored :class:`SettlementRow`, or the
    columns Settle inserts (without building a mapped row for them)."""

    setl_id: str
    medins_setl_id: str
    insured_request_id: str
    mdtrt_id: str
    psn_no: str
    fixmedins_code: str
    mdtrtarea_admvs: str
    insuplc_admdvs: str
    insutype: str
    med_type: str
    clr_type: str
    pay_loc: str
    setl_time: datetime
    medfee_sumamt_fen: int
    fund_pay_sumamt_fen: int
    acct_pay_fen: int
    psn_cash_pay_fen: int
    catalogue_version: str
    policy_version: str
    details: dict[str, Any]
    audit_flag: bool
    reversed: bool
    reverses_setl_id: str | None
    mid_setl_flag: bool
    trauma_no_third_party: bool


def result_of(row: Recorded) -> settlement_result_pb2.SettlementResult:
    """The stored result (amounts, fund lines, items, accumulator changes, explanation, versions)."""
    return settlement_result_from_columns(row)


def settlement_message(
    row: Recorded, result: settlement_result_pb2.SettlementResult | None = None
) -> settlement_pb2.Settlement:
    """A record for the wire, as it stands now; ``result`` is its result if the caller holds it
    (Settle, which has just stored it), else it is read from the row."""
    return settlement_pb2.Settlement(
        setl_id=row.setl_id,
        medins_setl_id=row.medins_setl_id,
        mdtrt_id=row.mdtrt_id,
        psn_no=row.psn_no,
        fixmedins_code=row.fixmedins_code,
        mdtrtarea_admvs=row.mdtrtarea_admvs,
        insuplc_admdvs=row.insuplc_admdvs,
        insutype=row.insutype,
        med_type=row.med_type,
        clr_type=row.clr_type,
        pay_loc=row.pay_loc,
        setl_time=timestamp_message(row.setl_time),
        result=result_of(row) if result is None else result,
        audit_flag=row.audit_flag,
        reversed=row.reversed,
        reverses_setl_id=row.reverses_setl_id or "",
        mid_setl_flag=row.mid_setl_flag,
        trauma_no_third_party=row.trauma_no_third_party,
    )


def find(
    session: Session,
    *,
    setl_id: str = "",
    medins_setl_id: str = "",
    fixmedins_code: str = "",
    lock: bool = False,
) -> SettlementRow | None:
    """A record by settlement id, or by the msgid of the call that made it and that call's institution.

    A msgid is unique per institution only: without ``fixmedins_code`` the oldest record of
    that msgid is found.
    """
    if setl_id:
        statement = select(SettlementRow).where(SettlementRow.setl_id == setl_id)
    else:
        statement = select(SettlementRow).where(SettlementRow.medins_setl_id == medins_setl_id)
        if fixmedins_code:
            statement = statement.where(SettlementRow.fixmedins_code == fixmedins_code)
        statement = statement.order_by(SettlementRow.id)
    return session.scalars(statement.with_for_update() if lock else statement).first()


def reversal_of(session: Session, setl_id: str) -> SettlementRow | None:
    """The record reversing ``setl_id``, if any."""
    return session.scalars(select(SettlementRow).where(SettlementRow.reverses_setl_id == setl_id)).first()


def ensure_not_reversed(row: SettlementRow) -> None:
    """A settlement is reversed once (ALREADY_REVERSED); a reversing record is never reversed."""
    if row.reversed or row.reverses_setl_id:
        what = "is already reversed" if row.reversed else "is itself a reversing record"
        raise DomainError(
            "ALREADY_REVERSED", f"settlement {row.setl_id} {what}", metadata={"setl_id": row.setl_id}
        )


def _negate(message: Message) -> None:
    """Negate the amounts of one flat message (amounts, a fund line, an item)."""
    for field, value in message.ListFields():
        if field.name in _NOT_NEGATED:
            message.ClearField(field.name)
        elif field.name.endswith("_fen") and isinstance(value, int):
            setattr(message, field.name, -value)


def reversed_result(
    original: settlement_result_pb2.SettlementResult,
    undone: Sequence[settlement_result_pb2.AccumulatorChange],
    original_setl_id: str,
) -> settlement_result_pb2.SettlementResult:
    """The reversing record's result: every amount negated, the changes the insured node undid, why."""
    result = settlement_result_pb2.SettlementResult()
    result.CopyFrom(original)
    for part in (result.amounts, *result.fund_lines, *result.items):
        _negate(part)
    result.amounts.cap_exhausted = False
    del result.accumulator_changes[:]
    result.accumulator_changes.extend(undone)
    del result.explanation.lines[:]
    result.explanation.lines.append(f"冲销结算 {original_setl_id}：各项金额取负，参保地累计与个人账户已恢复")
    result.explanation.lines.extend(original.explanation.lines)
    return result


def journal_request(
    request_id: str, row: Recorded, source_admdvs: str, reverses_msgid: str = ""
) -> clearing_api.AppendJournalEntriesRequest:
    """The national journal entry of a cross-province record (a reversal when ``reverses_msgid``)."""
    entry = journal_pb2.JournalEntry(
        msgid=row.medins_setl_id,
        setl_id=row.setl_id,
        kind=journal_pb2.JOURNAL_ENTRY_KIND_REVERSAL
        if reverses_msgid
        else journal_pb2.JOURNAL_ENTRY_KIND_SETTLEMENT,
        reverses_msgid=reverses_msgid,
        mdtrt_id=row.mdtrt_id,
        psn_no=row.psn_no,
        fixmedins_code=row.fixmedins_code,
        insuplc_admdvs=row.insuplc_admdvs,
        mdtrtarea_admvs=row.mdtrtarea_admvs,
        insutype=row.insutype,
        clr_type=row.clr_type,
        medfee_sumamt_fen=row.medfee_sumamt_fen,
        fund_pay_sumamt_fen=row.fund_pay_sumamt_fen,
        # The journal's account figure holds every account payment: the person's own and a family
        # member's (门诊共济), so medfee = fund + account + cash holds as it always did.
        acct_pay_fen=row.acct_pay_fen + acct_mulaid_pay_fen(row.details),
        psn_cash_pay_fen=row.psn_cash_pay_fen,
        setl_time=timestamp_message(row.setl_time),
    )
    return clearing_api.AppendJournalEntriesRequest(
        request_id=request_id, source_admdvs=source_admdvs, entries=[entry]
    )
