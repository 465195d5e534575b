"""RepairDiscrepancies: one rule per kind, replaying from the sender's durable record, then a re-check.

What the treatment node recorded (the patient was told "settled") is the truth:

- MISSING_AT_NATIONAL: the treatment record is appended to the journal here, through the
  same checks as a delivery (:func:`~.convert.journal_entry`, :mod:`~.journal`); its
  msgid is the journal's key, so a repeat (or the original delivery arriving late) is
  a no-op. A reversing record names the settlement it undoes (``reverses_msgid``, as the
  treatment node listed it), so it is journalled against exactly that one; the journal
  refuses it (an operator decides) unless that settlement is journalled and unreversed
  with the same regions and the amounts mirrored. Settlements are replayed before the
  reversals of the same request, so a settlement lost together with its reversal
  returns first.
- MISSING_AT_INSURED and MISSING_AT_TREATMENT, held only by the insured node: the insured
  node resolves the hold now (``ResolveHold``) the way its timeout would, by asking the
  treatment node that applied it, which alone decides (DESIGN.md principle 9; the national
  node may neither confirm nor void another node's application): a recorded settlement is
  confirmed, one never recorded is fenced there and voided. An insured node with no
  application at all, or one that voided it while the treatment node holds it settled, is
  left to an operator; so is a record the journal holds but the treatment node lacks.
- AMOUNT_DIFFERS, REVERSAL_MISMATCH: never guessed; left open for an operator with the
  records side by side.

Every remote message id derives from the discrepancy id, so a retry has one effect; a
repaired discrepancy is never touched again. A node that does not answer fails the whole
request with nothing recorded here (what was already done remotely is found done on the
retry). Each repair is re-checked against the side it changed before it counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import select
from sqlalchemy.orm import Session

from yidi.clearing.v1 import journal_pb2
from yidi.settlement.v1 import insured_settlement_service_pb2 as settlement_api
from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as settlement_grpc
from yidi.settlement.v1 import settlement_pb2
from yidi_core.codes import NATIONAL_REGION
from yidi_core.errors import DomainError
from yidi_runtime.routing import Router
from yidi_runtime.settlement_keys import derived_id
from yidi_services.clearing import convert, journal
from yidi_services.clearing.models import JournalEntryRecord
from yidi_services.clearing.reconciliation import snapshots
from yidi_services.clearing.reconciliation.collect import TreeWalker
from yidi_services.clearing.reconciliation.compare import Kind, Seen, SettlementRecord
from yidi_services.clearing.reconciliation.models import DiscrepancyRow

MAX_REPAIR_IDS = 1_000
"""Discrepancies one request repairs at most."""
UNREACHABLE = "INSURED_REGION_UNREACHABLE"
_NOT_ANSWERING = frozenset({UNREACHABLE, "NODE_UNREACHABLE"})
_NOTE_LENGTH = 500
OPERATOR_NOTES = {
    Kind.AMOUNT_DIFFERS: "needs an operator: the amounts differ between the sides (records side by side); "
    "nothing is guessed",
    Kind.REVERSAL_MISMATCH: "needs an operator: one side holds the settlement reversed and another does not; "
    "nothing is guessed",
}


@dataclass(frozen=True)
class Outcome:
    """What a repair achieved, as the re-check found it, and the note saying so."""

    repaired: bool
    note: str


def side_records(row: DiscrepancyRow) -> tuple[Seen | None, Seen | None, Seen | None]:
    """The treatment, national and insured records kept with the discrepancy."""

    def decoded(snapshot: dict[str, Any] | None, node: str) -> Seen | None:
        return None if snapshot is None else Seen(snapshots.record(snapshot), node)

    return (
        decoded(row.treatment_snapshot, row.treatment_node),
        decoded(row.national_snapshot, ""),
        decoded(row.insured_snapshot, row.insured_node),
    )


def _journal_message(record: SettlementRecord) -> journal_pb2.JournalEntry:
    """The journal entry the treatment node's outbox would have delivered for ``record``."""
    return journal_pb2.JournalEntry(
        msgid=record.msgid,
        setl_id=record.setl_id,
        kind=journal_pb2.JOURNAL_ENTRY_KIND_REVERSAL
        if record.reverses_msgid
        else journal_pb2.JOURNAL_ENTRY_KIND_SETTLEMENT,
        reverses_msgid=record.reverses_msgid,
        mdtrt_id=record.mdtrt_id,
        psn_no=record.psn_no,
        fixmedins_code=record.fixmedins_code,
        insuplc_admdvs=record.insuplc_admdvs,
        mdtrtarea_admvs=record.mdtrtarea_admvs,
        insutype=record.insutype,
        clr_type=record.clr_type,
        medfee_sumamt_fen=record.medfee_sumamt_fen,
        fund_pay_sumamt_fen=record.fund_pay_sumamt_fen,
        acct_pay_fen=record.acct_pay_fen,
        psn_cash_pay_fen=record.psn_cash_pay_fen,
        setl_time=record.record_time,
    )


def append_to_journal(session: Session, row: DiscrepancyRow, now: datetime) -> Outcome:
    """MISSING_AT_NATIONAL: journal the treatment record here, then read it back."""
    treatment, _, _ = side_records(row)
    assert treatment is not None, "MISSING_AT_NATIONAL is found only where the treatment node recorded it"
    entry, problems = convert.journal_entry(_journal_message(treatment.record), 0)
    if entry is None:
        return Outcome(
            False,
            "needs an operator: the treatment record is not a valid journal entry: "
            + "; ".join(map(str, problems)),
        )
    try:
        journal.ensure_sent_by_treatment_node(row.treatment_node, [entry])
        journal.append(session, row.treatment_node, [entry], now)
    except DomainError as refusal:
        return Outcome(False, f"needs an operator: the journal refused the treatment record: {refusal}")
    recorded = session.scalars(
        select(JournalEntryRecord).where(
            JournalEntryRecord.fixmedins_code == entry.fixmedins_code, JournalEntryRecord.msgid == entry.msgid
        )
    ).first()
    if recorded is None or journal_amounts(recorded) != treatment.amounts:
        return Outcome(False, "needs an operator: the journal holds other amounts under this msgid")
    return Outcome(
        True, f"appended to the national journal from the treatment node {row.treatment_node}'s record"
    )


def journal_amounts(row: JournalEntryRecord) -> tuple[int, int, int, int]:
    """A journal entry's total, fund, account and cash, in fen (as :attr:`Seen.amounts`)."""
    return (row.medfee_sumamt_fen, row.fund_pay_sumamt_fen, row.acct_pay_fen, row.psn_cash_pay_fen)


class InsuredRepairs:
    """The rules that act at an insured node, through this node's router."""

    def __init__(self, router: Router, walker: TreeWalker) -> None:
        self._router = router
        self._walker = walker

    def _call(
        self,
        node: str,
        method: Callable[[settlement_grpc.InsuredSettlementServiceStub], Callable[..., Message]],
        request: Message,
    ) -> Message | DomainError:
        """The insured node's answer, or its refusal; a node that does not answer raises."""
        client = self._router.toward(node, "route.destination_admdvs")
        try:
            answer: Message = client.call(
                method(client.stub(settlement_grpc.InsuredSettlementServiceStub)),
                request,
                unreachable=UNREACHABLE,
            )
        except DomainError as refusal:
            if refusal.reason_code in _NOT_ANSWERING:
                raise
            return refusal
        return answer

    def _route(self, node: str) -> settlement_pb2.Route:
        return settlement_pb2.Route(origin_admdvs=NATIONAL_REGION, destination_admdvs=node)

    def repair(self, row: DiscrepancyRow) -> Outcome:
        """The outcome of the kind's rule for a discrepancy that is not MISSING_AT_NATIONAL."""
        kind = Kind(row.kind)
        treatment, national, insured = side_records(row)
        if kind is Kind.MISSING_AT_INSURED:
            assert treatment is not None
            if insured is None:
                return Outcome(
                    False,
                    "needs an operator: the insured node holds no application for this settlement "
                    "(apply it there from the treatment record)",
                )
            return self._confirm(row, treatment, insured)
        if kind is Kind.MISSING_AT_TREATMENT:
            if national is not None or insured is None:
                return Outcome(
                    False, "needs an operator: the national journal holds a record the treatment node lacks"
                )
            return self._void(row, insured)
        if kind is Kind.STALE_HOLD:
            assert insured is not None, "a stale hold is the insured node's"
            return self._settled_hold(row, insured)
        return Outcome(False, OPERATOR_NOTES[kind])

    def _settled_hold(self, row: DiscrepancyRow, insured: Seen) -> Outcome:
        """A stale hold resolved now by its treatment node's answer, whichever way it goes."""
        answer = self._resolved(row, insured)
        if isinstance(answer, DomainError):
            return Outcome(False, f"needs an operator: the insured node could not resolve its hold: {answer}")
        if answer.state == settlement_api.HOLD_STATE_HELD:
            return Outcome(False, "the insured node still holds it: its treatment node did not answer")
        how = "confirmed" if answer.state == settlement_api.HOLD_STATE_CONFIRMED else "voided"
        return Outcome(True, f"{how} at the insured node {insured.node} by its treatment node's answer")

    def _current(self, insured: Seen, msgid: str) -> SettlementRecord | None:
        return self._walker.insured_record(insured.node, msgid, insured.moment)

    def _resolved(
        self, row: DiscrepancyRow, insured: Seen
    ) -> settlement_api.ResolveHoldResponse | DomainError:
        """The insured node's hold resolved by its treatment node's answer (``ResolveHold``)."""
        answer = self._call(
            insured.node,
            lambda stub: stub.ResolveHold,
            settlement_api.ResolveHoldRequest(
                request_id=derived_id(row.discrepancy_id, "resolve"),
                route=self._route(insured.node),
                application_request_id=derived_id(row.msgid, "apply"),
            ),
        )
        assert isinstance(answer, settlement_api.ResolveHoldResponse | DomainError)
        return answer

    def _confirm(self, row: DiscrepancyRow, treatment: Seen, insured: Seen) -> Outcome:
        answer = self._resolved(row, insured)
        if isinstance(answer, DomainError):
            return Outcome(False, f"needs an operator: the insured node could not resolve its hold: {answer}")
        if answer.state == settlement_api.HOLD_STATE_VOIDED:
            return Outcome(
                False,
                "needs an operator: the insured node reverted this settlement (a refund or correction) "
                "while the treatment node holds it settled",
            )
        current = self._current(insured, row.msgid)
        if current is None or current.hold_state != settlement_api.HOLD_STATE_CONFIRMED:
            return Outcome(
                False, "the confirmation was answered but the insured node does not hold it confirmed"
            )
        if Seen(current).amounts != treatment.amounts:
            return Outcome(
                False, "needs an operator: the insured node holds other amounts than the treatment node"
            )
        return Outcome(
            True, f"confirmed at the insured node {insured.node}: its treatment node answered it recorded it"
        )

    def _void(self, row: DiscrepancyRow, insured: Seen) -> Outcome:
        answer = self._resolved(row, insured)
        if isinstance(answer, DomainError):
            return Outcome(False, f"needs an operator: the insured node could not resolve its hold: {answer}")
        if answer.state == settlement_api.HOLD_STATE_CONFIRMED:
            return Outcome(
                False, "needs an operator: the treatment node answered it recorded this settlement"
            )
        current = self._current(insured, row.msgid)
        if current is not None and not current.reversed:
            return Outcome(False, "the revert was answered but the insured node still holds the settlement")
        return Outcome(
            True,
            f"voided at the insured node {insured.node}: no treatment record exists "
            "(the patient was told the settlement failed)",
        )


def noted(outcome: Outcome) -> str:
    """The note as stored (bounded)."""
    return outcome.note[:_NOTE_LENGTH]
