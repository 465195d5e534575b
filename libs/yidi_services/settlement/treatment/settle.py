"""Pre-settlement (2206/2303), settlement (2207/2304) and reversal (2208/2305) at the treatment node.

Settle R happens exactly once, whatever the network does:

1. an answered R is replayed from the request log; a corrected R is refused CORRECTED;
2. the institution is checked again and the visit's current lines are classified with the
   catalogue in force;
3. the insured node applies the bill (``ApplySettlement``, id ``R:apply``, a settlement id
   derived from R, sealed by this node): idempotent there, called outside any local
   transaction, so a retry finds the same hold and an unreachable insured node leaves
   nothing recorded here;
4. one local transaction claims R, records the settlement, settles the visit and queues
   the confirmation for the insured node (and, cross-province, the national journal
   entry). Until the confirmation arrives the insured node holds the settlement; unconfirmed,
   the hold expires and is voided, so no one-sided settlement (单边账) survives.

A reversal (and a correction of a recorded settlement, :mod:`~yidi_services.settlement.treatment.corrections`)
confirms the settlement first if the outbox has not yet (so that the insured node never
sees a confirmation after the revert), has the insured node revert it, then records the
reversing record. The visit is not reopened.
"""

from __future__ import annotations

import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from types import SimpleNamespace
from typing import cast

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from yidi.registry.v1 import institution_registry_service_pb2 as registry_api
from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi.settlement.v1 import settlement_service_pb2 as api
from yidi.type.v1 import fee_item_pb2, visit_pb2
from yidi_codec.documents import settlement_result_columns
from yidi_core.codes import NATIONAL_REGION
from yidi_core.errors import DomainError, invalid
from yidi_core.placement import audit_flagged, clr_type, is_inpatient, journaled_nationally, pay_loc
from yidi_runtime.db import Database, row_by_key
from yidi_runtime.integrity import NodeIntegrity
from yidi_runtime.outbox import Outbox
from yidi_runtime.settlement_keys import derived_id, settlement_key
from yidi_runtime.wire import Clock
from yidi_runtime.working_days import WorkingCalendar
from yidi_services.settlement.insured.forwarding import ROUTED
from yidi_services.settlement.models import OutboxMessage
from yidi_services.settlement.outbox_batches import APPEND_JOURNAL, CONFIRM_SETTLEMENT
from yidi_services.settlement.receipts import Receipts
from yidi_services.settlement.treatment import audit, commands
from yidi_services.settlement.treatment.catalogue import Classified, classify, fee_items
from yidi_services.settlement.treatment.checks import (
    Caller,
    record_id,
)
from yidi_services.settlement.treatment.fees import active_items, release_mid_stay, settle_mid_stay
from yidi_services.settlement.treatment.models import (
    OutcomeRow,
    SettlementRow,
    VisitRow,
    VisitState,
)
from yidi_services.settlement.treatment.outcomes import (
    Requests,
    claim,
    ensure_not_barred,
    reading,
)
from yidi_services.settlement.treatment.peers import TreatmentPeers
from yidi_services.settlement.treatment.records import (
    Recorded,
    ensure_not_reversed,
    find,
    journal_request,
    result_of,
    reversed_result,
    settlement_message,
)
from yidi_services.settlement.treatment.visits import ensure_open, facts_of, load


@dataclass(frozen=True)
class Reverted:
    """A RevertSettlement the insured node answered (its receipt checked), to keep with the reversal."""

    request: insured_api.RevertSettlementRequest
    answer: insured_api.RevertSettlementResponse


@dataclass(frozen=True)
class Bill:
    """A visit read for settlement: the visit, its facts, its current lines classified, and the
    institution check, asked alongside the classification (``institution.result()`` raises its refusal)."""

    visit: VisitRow
    facts: visit_pb2.VisitFacts
    classified: Classified
    institution: Future[registry_api.CheckInstitutionResponse]


_INSERT_SETTLEMENT = insert(SettlementRow.__table__)
"""Built once: Settle inserts its record as a statement, not a mapped row flushed (the hot path)."""
_SETTLE_VISIT = (
    update(VisitRow.__table__)
    .where(
        VisitRow.__table__.c.mdtrt_id == bindparam("visit_id"),
        VisitRow.__table__.c.state.in_([VisitState.OPEN.value, VisitState.DISCHARGED.value]),
    )
    .values(state=VisitState.SETTLED.value, setl_id=bindparam("new_setl_id"))
)
"""Built once: a visit still open becomes settled, locked, checked and changed by one statement."""
_STAY_DEDUCTIBLE_PAID = select(func.sum(SettlementRow.act_pay_dedc_fen)).where(
    SettlementRow.mdtrt_id == bindparam("visit_id")
)
"""Built once: the deductible the settled parts of a stay paid, their reversals subtracted."""


def _settle_visit(session: Session, visit: VisitRow, setl_id: str, caller: Caller) -> None:
    """Mark ``visit`` settled as ``setl_id`` if it is still open; else refuse as :func:`ensure_open` does
    (a concurrent Settle of another id won: its hold expires unconfirmed)."""
    settled = session.execute(_SETTLE_VISIT, {"visit_id": visit.mdtrt_id, "new_setl_id": setl_id})
    if settled.rowcount != 1:  # type: ignore[attr-defined]
        ensure_open(load(session, visit.mdtrt_id, caller, lock=True))
        raise RuntimeError(f"visit {visit.mdtrt_id} is open yet was not settled")


def _key_of(row: Recorded) -> str:
    """The key of the institution's call that made a record."""
    return settlement_key(row.fixmedins_code, row.medins_setl_id)


def _ensure_total(classified: Classified, given_fen: int, field_path: str) -> None:
    total = classified.totals().medfee_sumamt_fen
    if given_fen != total:
        raise invalid(
            "AMOUNT_MISMATCH",
            field_path,
            f"{given_fen} fen differs from the {total} fen of the lines uploaded",
            metadata={"lines_total_fen": str(total)},
        )


def _stay_deductible_paid(session: Session, visit: VisitRow) -> int:
    """What the settled parts of an inpatient stay paid of its deductible (a reversal's is negative)."""
    if not is_inpatient(visit.med_type):
        return 0
    return int(session.scalar(_STAY_DEDUCTIBLE_PAID, {"visit_id": visit.mdtrt_id}) or 0)


def _check_stay(bill: Bill, mid_stay: bool, *, discharged: bool) -> None:
    """Only an inpatient stay still going on settles in part (``mid_setl_flag``); with ``discharged``,
    any other part of a stay waits for its discharge."""
    visit, inpatient = bill.visit, is_inpatient(bill.facts.med_type)
    if mid_stay and not (inpatient and visit.state == VisitState.OPEN):
        raise invalid(
            "INVALID_ARGUMENT",
            "mid_setl_flag",
            f"visit {visit.mdtrt_id} is not an inpatient stay still going on: settle it whole",
        )
    if discharged and inpatient and not mid_stay and visit.state != VisitState.DISCHARGED:
        raise invalid(
            "INVALID_ARGUMENT", "mdtrt_id", f"inpatient stay {visit.mdtrt_id} is not discharged yet"
        )


def _open_visit(
    session: Session, mdtrt_id: str, caller: Caller
) -> tuple[VisitRow, list[fee_item_pb2.FeeItem], int]:
    """The caller's open visit, its lines not yet settled and what its stay paid of the deductible so
    far; a visit without such lines, or billed for manual reimbursement, cannot be settled."""
    visit = load(session, mdtrt_id, caller)
    ensure_open(visit)
    if visit.self_pay_bill_id is not None:  # the insured place may reimburse it: never paid twice
        raise DomainError(
            "BILLED_FOR_REIMBURSEMENT",
            f"visit {visit.mdtrt_id} was billed for online manual reimbursement ({visit.self_pay_bill_id})",
            metadata={"mdtrt_id": visit.mdtrt_id, "bill_id": visit.self_pay_bill_id},
        )
    items = active_items(session, visit.mdtrt_id)
    if not items:
        raise invalid(
            "INVALID_ARGUMENT", "mdtrt_id", f"visit {visit.mdtrt_id} has no fee lines: upload them first"
        )
    return visit, items, _stay_deductible_paid(session, visit)


class Settlements:
    """Pre-settles, settles, reverses and corrects the settlements of this node's institutions."""

    def __init__(
        self,
        database: Database,
        peers: TreatmentPeers,
        outbox: Outbox,
        clock: Clock,
        requests: Requests,
        integrity: NodeIntegrity,
        receipts: Receipts,
        calendar: WorkingCalendar | None = None,
    ) -> None:
        self._database = database
        self._calendar = calendar or WorkingCalendar()  # the working days an audit case's deadline counts
        self._peers = peers
        self._outbox = outbox
        self._clock = clock
        self._requests = requests
        self._integrity = integrity
        self.receipts = receipts
        self._region = peers.region

    def _bill(self, mdtrt_id: str, caller: Caller) -> Bill:
        """The caller's open visit and its current lines, classified with the catalogue in force now,
        while the province checks the institution."""
        with reading(self._database) as session:
            visit, items, paid = _open_visit(session, mdtrt_id, caller)
        return self._classified(visit, items, paid)

    def _classified(self, visit: VisitRow, items: list[fee_item_pb2.FeeItem], deductible_paid: int) -> Bill:
        facts = facts_of(visit)
        facts.stay_deductible_paid_fen = deductible_paid
        institution = self._peers.check_institution_alongside(facts, visit.insuplc_admdvs, self._clock())
        classified = classify(self._peers, facts, fee_items(items, one_call=False))
        return Bill(visit, facts, classified, institution)

    def _apply_request(
        self, request_id: str, bill: Bill, use_account: bool, *, setl_id: str = ""
    ) -> insured_api.ApplySettlementRequest:
        visit, classified = bill.visit, bill.classified
        request = insured_api.ApplySettlementRequest(
            request_id=request_id,
            route=self._peers.route(visit.insuplc_admdvs),
            psn_no=visit.psn_no,
            insutype=visit.insutype,
            facts=bill.facts,
            items=classified.results,
            totals=classified.totals(),
            use_account=use_account,
            dry_run=not setl_id,
            setl_id=setl_id,
            catalogue_version=classified.catalogue_version,
        )
        self._integrity.seal(request, ROUTED)
        return request

    def _queue_journal(
        self, session: Session, request_id: str, row: Recorded, reverses_msgid: str = ""
    ) -> None:
        """Queue a cross-province record's journal entry, sealed once here so every redelivery is the same bytes."""
        journal = journal_request(request_id, row, self._region, reverses_msgid)
        for entry in journal.entries:
            self._integrity.seal(entry)
        self._outbox.add(session, NATIONAL_REGION, APPEND_JOURNAL, journal)

    def pre_settle(self, command: commands.PreSettle) -> api.PreSettleResponse:
        """What settling now would give (2206 / 2303); changes nothing here or at the insured node."""
        bill = self._bill(command.mdtrt_id, command.caller)
        _check_stay(bill, command.mid_stay, discharged=False)
        if command.medfee_sumamt_fen:
            _ensure_total(bill.classified, command.medfee_sumamt_fen, "medfee_sumamt_fen")
        bill.institution.result()
        dry_run_id = derived_id(bill.visit.mdtrt_id, f"presettle-{uuid.uuid4().hex[:12]}")
        answer = self._peers.insured(
            bill.visit.insuplc_admdvs,
            lambda stub: stub.ApplySettlement,
            self._apply_request(dry_run_id, bill, command.use_account),
        )
        result = answer.result
        result.catalogue_version = result.catalogue_version or bill.classified.catalogue_version
        result.policy_version = result.policy_version or answer.policy_version
        return api.PreSettleResponse(result=result)

    def settle(self, command: commands.Settle) -> api.SettleResponse:
        """Settle the visit (2207 / 2304) exactly once per request id."""
        call, caller = command.call, command.caller
        request_id = call.request_id
        with reading(self._database) as session:  # one read: the request log, the outcome, the visit
            replayed = self._requests.replayed_in(session, call, api.SettleResponse)
            if replayed is not None:
                return replayed
            visit, items, paid = _open_visit(session, command.mdtrt_id, caller)
            ensure_not_barred(
                row_by_key(session, OutcomeRow, (caller.owner, request_id)), request_id, visit.insuplc_admdvs
            )
        bill = self._classified(visit, items, paid)
        _check_stay(bill, command.mid_stay, discharged=True)
        _ensure_total(bill.classified, command.medfee_sumamt_fen, "medfee_sumamt_fen")
        bill.institution.result()
        key = caller.key(request_id)
        setl_id = record_id(self._region, key)
        apply = self._apply_request(derived_id(key, "apply"), bill, command.use_account, setl_id=setl_id)
        applied = self._peers.insured(bill.visit.insuplc_admdvs, lambda stub: stub.ApplySettlement, apply)
        self.receipts.checked(apply, applied, bill.visit.insuplc_admdvs)

        def effect(session: Session) -> api.SettleResponse:
            now = self._clock()
            claim(
                session,
                caller.owner,
                request_id,
                call.method,
                bill.visit.mdtrt_id,
                now,
                bill.visit.insuplc_admdvs,
            )
            self.receipts.keep(session, apply, applied)
            visit = bill.visit  # who and where never change after registration; its state is checked now
            if command.mid_stay:  # the stay goes on: only the lines classified are settled
                ensure_open(load(session, visit.mdtrt_id, caller, lock=True))
                settle_mid_stay(session, visit.mdtrt_id, [item.feedetl_sn.strip() for item in items], setl_id)
            else:
                _settle_visit(session, visit, setl_id, caller)
            result = applied.result
            result.catalogue_version = result.catalogue_version or bill.classified.catalogue_version
            result.policy_version = result.policy_version or applied.policy_version
            clearing, location = (
                clr_type(bill.facts.med_type),
                pay_loc(visit.insuplc_admdvs, visit.mdtrtarea_admvs),
            )
            columns = {
                "setl_id": setl_id,
                "medins_setl_id": request_id,
                "insured_request_id": apply.request_id,
                "mdtrt_id": visit.mdtrt_id,
                "psn_no": visit.psn_no,
                "fixmedins_code": visit.fixmedins_code,
                "mdtrtarea_admvs": visit.mdtrtarea_admvs,
                "insuplc_admdvs": visit.insuplc_admdvs,
                "insutype": visit.insutype,
                "med_type": bill.facts.med_type,
                "clr_type": clearing,
                "pay_loc": location,
                "invono": command.invono,
                "setl_time": now,
                **settlement_result_columns(result),
                "audit_flag": audit_flagged(
                    clearing, location, result.amounts.medfee_sumamt_fen, self._peers.audit_threshold_fen
                ),
                "reversed": False,
                "reverses_setl_id": None,
                "mid_setl_flag": command.mid_stay,
                "trauma_no_third_party": visit.trauma_no_third_party,
            }
            session.execute(_INSERT_SETTLEMENT, columns)
            row = cast(Recorded, SimpleNamespace(**columns))
            if row.audit_flag:
                audit.queue(session, row, now, self._calendar)
            self._outbox.add(session, visit.insuplc_admdvs, CONFIRM_SETTLEMENT, self._confirm_request(row))
            if journaled_nationally(location):
                self._queue_journal(session, derived_id(key, "journal"), row)
            return api.SettleResponse(settlement=settlement_message(row, result))

        return self._requests.run_once(call, api.SettleResponse, effect)

    def _confirm_request(self, row: Recorded) -> insured_api.ConfirmSettlementRequest:
        """The confirmation of a recorded settlement, sealed (the same bytes however often it is sent)."""
        request = insured_api.ConfirmSettlementRequest(
            request_id=derived_id(_key_of(row), "confirm"),
            route=self._peers.route(row.insuplc_admdvs),
            original_request_id=row.insured_request_id,
            setl_id=row.setl_id,
        )
        self._integrity.seal(request, ROUTED)
        return request

    def _confirm_pending(self, row: SettlementRow) -> bool:
        """Whether the outbox still has the settlement's confirmation to deliver."""
        with self._database.unit_of_work() as uow:
            pending = uow.session.scalar(
                select(OutboxMessage.id).where(
                    OutboxMessage.destination == row.insuplc_admdvs,
                    OutboxMessage.message_id == derived_id(_key_of(row), "confirm"),
                    OutboxMessage.delivered_at.is_(None),
                )
            )
        return pending is not None

    def revert(self, original: SettlementRow, reverse_id: str) -> Reverted:
        """Have the insured node undo a recorded settlement, confirmed first so no confirmation follows the revert.

        ``reverse_id`` is the msgid of the institution's call that reverses it (a reversal or a correction).
        """
        if self._confirm_pending(original):
            confirm = self._confirm_request(original)
            confirmed = self._peers.insured(
                original.insuplc_admdvs, lambda stub: stub.ConfirmSettlement, confirm
            )
            self.receipts.checked(confirm, confirmed, original.insuplc_admdvs)
        return self.revert_application(
            original.insuplc_admdvs,
            settlement_key(original.fixmedins_code, reverse_id),
            original.insured_request_id,
            original.psn_no,
        )

    def revert_application(
        self, insured_region: str, reverse_key: str, application_id: str, psn_no: str
    ) -> Reverted:
        """RevertSettlement of an application, sealed, its receipt checked."""
        request = insured_api.RevertSettlementRequest(
            request_id=derived_id(reverse_key, "revert"),
            route=self._peers.route(insured_region),
            original_request_id=application_id,
            psn_no=psn_no,
        )
        self._integrity.seal(request, ROUTED)
        answer = self._peers.insured(insured_region, lambda stub: stub.RevertSettlement, request)
        self.receipts.checked(request, answer, insured_region)
        return Reverted(request, answer)

    def record_reversal(
        self, session: Session, setl_id: str, reverse_id: str, undone: Reverted
    ) -> SettlementRow:
        """The reversing record, the original marked reversed, the journal told (cross-province)."""
        original = find(session, setl_id=setl_id, lock=True)
        assert original is not None
        ensure_not_reversed(original)
        self.receipts.keep(session, undone.request, undone.answer)
        result = reversed_result(result_of(original), undone.answer.accumulator_changes, original.setl_id)
        key = settlement_key(original.fixmedins_code, reverse_id)
        reversal = SettlementRow(
            setl_id=record_id(self._region, key),
            medins_setl_id=reverse_id,
            insured_request_id=derived_id(key, "revert"),
            mdtrt_id=original.mdtrt_id,
            psn_no=original.psn_no,
            fixmedins_code=original.fixmedins_code,
            mdtrtarea_admvs=original.mdtrtarea_admvs,
            insuplc_admdvs=original.insuplc_admdvs,
            insutype=original.insutype,
            med_type=original.med_type,
            clr_type=original.clr_type,
            pay_loc=original.pay_loc,
            invono=original.invono,
            setl_time=self._clock(),
            **settlement_result_columns(result),
            audit_flag=False,
            reversed=False,
            reverses_setl_id=original.setl_id,
            mid_setl_flag=original.mid_setl_flag,
            trauma_no_third_party=original.trauma_no_third_party,
        )
        session.add(reversal)
        original.reversed = True
        release_mid_stay(session, original.setl_id)
        if journaled_nationally(original.pay_loc):
            self._queue_journal(
                session, derived_id(key, "journal"), reversal, reverses_msgid=original.medins_setl_id
            )
        return reversal

    def reverse(self, command: commands.ReverseSettlement) -> api.ReverseSettlementResponse:
        """Reverse a settlement (2208 / 2305) for a refund; the visit is not reopened."""
        call, caller = command.call, command.caller
        replayed = self._requests.replayed(call, api.ReverseSettlementResponse)
        if replayed is not None:
            return replayed
        with reading(self._database) as session:
            original = find(session, setl_id=command.setl_id)
        if original is None:
            raise DomainError(
                "NOT_FOUND", f"no settlement {command.setl_id}", metadata={"setl_id": command.setl_id}
            )
        caller.owns(original.fixmedins_code, f"settlement {original.setl_id}")
        for name in ("mdtrt_id", "psn_no"):
            if getattr(command, name) != getattr(original, name):
                raise invalid("INVALID_ARGUMENT", name, f"does not match settlement {original.setl_id}")
        ensure_not_reversed(original)
        undone = self.revert(original, call.request_id)
        return self._requests.run_once(
            call,
            api.ReverseSettlementResponse,
            lambda session: api.ReverseSettlementResponse(
                reversal=settlement_message(
                    self.record_reversal(session, original.setl_id, call.request_id, undone)
                )
            ),
        )
