"""The treatment node's settlement rules, handler by handler, with fake peers: no federation, no gRPC.

A Beijing hospital's HIS calls are converted into commands as the servicer converts them and
handed to the desk, the settlements and the corrections, on a fresh SQLite database; the
province answers institution checks and catalogue lookups from the test's data and the
insured side splits bills with a fake (:mod:`treatment_fakes`). Each test checks what the
handlers answer, record and queue, and what they asked the peers, in milliseconds where
the whole-federation tests (test_treatment_settlement.py) take seconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.type.date_pb2 import Date
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from treatment_fakes import Clock, FakePeers, InsuredSide, Province, TreatmentHandlers, treatment_handlers

from yidi.catalogue.v1 import catalogue_pb2
from yidi.clearing.v1 import clearing_service_pb2 as clearing_api
from yidi.clearing.v1 import journal_pb2
from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi.settlement.v1 import settlement_pb2
from yidi.settlement.v1 import settlement_service_pb2 as api
from yidi.settlement.v1.insured_settlement_service_pb2 import (
    ApplySettlementRequest,
    ConfirmSettlementRequest,
    ResolvePersonRequest,
    RevertSettlementRequest,
)
from yidi.type.v1 import fee_item_pb2, person_pb2, settlement_result_pb2, visit_pb2
from yidi_core.codes import NATIONAL_REGION
from yidi_core.errors import DomainError
from yidi_core.money import from_fen
from yidi_core.placement import AUDIT_THRESHOLD_FEN, CROSS_PROVINCE, IN_PROVINCE, INPATIENT, OUTPATIENT
from yidi_runtime.outbox import method_path
from yidi_services.settlement.outbox_batches import APPEND_JOURNAL, CONFIRM_SETTLEMENT
from yidi_services.settlement.treatment import commands
from yidi_services.settlement.treatment.checks import Caller
from yidi_services.settlement.treatment.models import AuditCaseRow

NODE = "110000"  # the Beijing node
HOSPITAL, AREA = "H11010100001", "110101"
LANGFANG = "131000"  # insured in Hebei: cross-province
CHAOYANG = "110105"  # insured in Beijing: in-province
CERTNO = "131000195402270170"
DRUG_A, DRUG_B, SURGERY = "XA10BFA022A001010100001", "XA10BXR023A001010100002", "003106050020000"
CATALOGUE = (
    catalogue_pb2.CatalogueItem(code=DRUG_A, name="阿卡波糖片", chrgitm_lv="01"),
    catalogue_pb2.CatalogueItem(code=DRUG_B, name="瑞格列奈片", chrgitm_lv="02", selfpay_prop="0.1"),
    catalogue_pb2.CatalogueItem(code=SURGERY, name="经皮冠状动脉支架置入术", chrgitm_lv="01"),
)
DRUGS = ((DRUG_A, "1", "32.52"), (DRUG_B, "1", "31.77"))
DRUGS_FEN = 6429
"""What the HIS bills for :data:`DRUGS`: 32.52 + 31.77 yuan."""
SERVICE_DAY = Date(year=2022, month=7, day=1)

_sequence = itertools.count(1)


def msgid() -> str:
    """A fresh msgid of the hospital (30 characters)."""
    return f"{HOSPITAL}20220720{next(_sequence):010d}"


def moment(day: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime(2022, 7, day, 2, 0, tzinfo=UTC))
    return stamp


def fee_lines(rows: Sequence[tuple[str, str, str]]) -> list[fee_item_pb2.FeeItem]:
    return [
        fee_item_pb2.FeeItem(feedetl_sn=str(sn), med_list_codg=code, cnt=cnt, pric=pric)
        for sn, (code, cnt, pric) in enumerate(rows, 1)
    ]


def refused(call: Callable[[], object]) -> DomainError:
    """The refusal ``call`` raises."""
    with pytest.raises(DomainError) as caught:
        call()
    return caught.value


def fields(error: DomainError) -> list[str]:
    return [violation.field for violation in error.violations]


@dataclass
class His:
    """One hospital's HIS: its requests converted into commands as the servicer converts them."""

    node: TreatmentHandlers
    caller: Caller
    psn_no: str = "13100000000000000001"

    def register(self, med_type: str = "11") -> str:
        inpatient = med_type.startswith("2")
        request = api.RegisterVisitRequest(
            request_id=msgid(),
            psn_no=self.psn_no,
            insutype="310",
            credential=person_pb2.Credential(mdtrt_cert_type="02", mdtrt_cert_no=CERTNO),
            facts=visit_pb2.VisitFacts(
                med_type=med_type, service_date=SERVICE_DAY, diagnoses=["I21.000" if inpatient else "E11.900"]
            ),
            ipt_otp_no=f"{'ZY' if inpatient else 'MZ'}{next(_sequence):08d}",
            begin_time=moment(1),
        )
        command = commands.register_visit(request, self.caller, self.node.clock())
        return self.node.desk.register_visit(command).visit.mdtrt_id

    def upload(
        self, mdtrt_id: str, rows: Sequence[tuple[str, str, str]] = DRUGS
    ) -> api.UploadFeeItemsResponse:
        request = api.UploadFeeItemsRequest(request_id=msgid(), mdtrt_id=mdtrt_id, items=fee_lines(rows))
        return self.node.desk.upload_fee_items(
            commands.upload_fee_items(request, self.caller, self.node.clock())
        )

    def discharge(self, mdtrt_id: str) -> None:
        request = api.DischargeVisitRequest(request_id=msgid(), mdtrt_id=mdtrt_id, end_time=moment(10))
        self.node.desk.discharge_visit(commands.discharge_visit(request, self.caller, self.node.clock()))

    def visit(self, rows: Sequence[tuple[str, str, str]] = DRUGS, med_type: str = "11") -> str:
        """A registered visit with ``rows`` uploaded (an inpatient stay discharged)."""
        mdtrt_id = self.register(med_type)
        self.upload(mdtrt_id, rows)
        if med_type.startswith("2"):
            self.discharge(mdtrt_id)
        return mdtrt_id

    def settle_command(
        self, mdtrt_id: str, total_fen: int = DRUGS_FEN, request_id: str = "", invono: str = "FP0001"
    ) -> commands.Settle:
        request = api.SettleRequest(
            request_id=request_id or msgid(), mdtrt_id=mdtrt_id, medfee_sumamt_fen=total_fen, invono=invono
        )
        return commands.settle(request, self.caller)

    def settle(self, mdtrt_id: str, total_fen: int = DRUGS_FEN, **fields: str) -> settlement_pb2.Settlement:
        return self.node.settlements.settle(self.settle_command(mdtrt_id, total_fen, **fields)).settlement

    def reverse_command(
        self, settlement: settlement_pb2.Settlement, request_id: str = "", psn_no: str = ""
    ) -> commands.ReverseSettlement:
        request = api.ReverseSettlementRequest(
            request_id=request_id or msgid(),
            setl_id=settlement.setl_id,
            mdtrt_id=settlement.mdtrt_id,
            psn_no=psn_no or settlement.psn_no,
        )
        return commands.reverse_settlement(request, self.caller)

    def correct(self, omsgid: str) -> api.CorrectResponse:
        request = api.CorrectRequest(
            request_id=msgid(), omsgid=omsgid, oinfno=api.CORRECTED_OPERATION_SETTLE, psn_no=self.psn_no
        )
        return self.node.corrections.correct(commands.correct(request, self.caller))


@pytest.fixture
def province() -> Province:
    return Province(CATALOGUE)


@pytest.fixture
def insured() -> InsuredSide:
    return InsuredSide()


@pytest.fixture
def node(tmp_path: Path, province: Province, insured: InsuredSide) -> Iterator[TreatmentHandlers]:
    with treatment_handlers(tmp_path, FakePeers(NODE, province, insured), Clock()) as handlers:
        yield handlers


def his(node: TreatmentHandlers, insured_region: str = LANGFANG) -> His:
    return His(node, Caller(HOSPITAL, AREA, insured_region))


def applications(insured: InsuredSide) -> list[insured_api.ApplySettlementRequest]:
    """The ApplySettlements that arrived, dry runs (pre-settlements) left out."""
    return [asked for asked in insured.requests(insured_api.ApplySettlementRequest) if not asked.dry_run]


def journal_entries(node: TreatmentHandlers) -> list[journal_pb2.JournalEntry]:
    """The national journal entries the outbox holds, in the order queued."""
    queued = [message for message in node.outbox().values() if message.destination == NATIONAL_REGION]
    assert all(message.method == method_path(APPEND_JOURNAL) for message in queued)
    return [
        entry
        for message in queued
        for entry in clearing_api.AppendJournalEntriesRequest.FromString(message.payload).entries
    ]


@pytest.mark.parametrize(
    ("insured_region", "location", "journaled"),
    [(LANGFANG, CROSS_PROVINCE, True), (CHAOYANG, IN_PROVINCE, False)],
    ids=["cross-province", "in-province"],
)
def test_settle_records_the_insured_answer_settles_the_visit_and_queues_what_others_must_hear(
    node: TreatmentHandlers, insured: InsuredSide, insured_region: str, location: str, journaled: bool
) -> None:
    """The record holds the insured node's money as answered; the confirmation (and, only cross-province,
    the journal entry) leaves with the record or not at all."""
    hospital = his(node, insured_region)
    mdtrt_id = hospital.register()
    uploaded = hospital.upload(mdtrt_id)
    command = hospital.settle_command(mdtrt_id)

    settlement = node.settlements.settle(command).settlement

    [apply] = applications(insured)
    assert node.peers.insured_regions[-1] == insured_region
    assert (apply.setl_id, apply.psn_no, list(apply.items)) == (
        settlement.setl_id,
        hospital.psn_no,
        list(uploaded.results),
    )
    assert apply.totals.medfee_sumamt_fen == DRUGS_FEN
    assert settlement.result == insured.held[apply.request_id].result
    assert settlement.result.amounts.fund_pay_sumamt_fen > 0  # the fake's split is not trivially zero
    assert (settlement.medins_setl_id, settlement.mdtrt_id, settlement.setl_id[:6]) == (
        command.call.request_id,
        mdtrt_id,
        NODE,
    )
    assert (settlement.pay_loc, settlement.clr_type, settlement.audit_flag) == (location, OUTPATIENT, False)
    assert node.settlement(medins_setl_id=command.call.request_id) == settlement
    visit = node.visit(mdtrt_id, hospital.caller)
    assert (visit.state, visit.setl_id) == (settlement_pb2.VISIT_STATE_SETTLED, settlement.setl_id)

    confirmations = [m for m in node.outbox().values() if m.method == method_path(CONFIRM_SETTLEMENT)]
    [confirmation] = confirmations
    confirm = insured_api.ConfirmSettlementRequest.FromString(confirmation.payload)
    assert (confirmation.destination, confirmation.delivered) == (insured_region, False)
    assert (confirm.original_request_id, confirm.setl_id) == (apply.request_id, settlement.setl_id)
    assert not insured.requests(insured_api.ConfirmSettlementRequest)  # the outbox delivers it later

    entries = journal_entries(node)
    if journaled:
        [entry] = entries
        amounts = settlement.result.amounts
        assert (entry.kind, entry.msgid, entry.setl_id) == (
            journal_pb2.JOURNAL_ENTRY_KIND_SETTLEMENT,
            settlement.medins_setl_id,
            settlement.setl_id,
        )
        assert (entry.medfee_sumamt_fen, entry.fund_pay_sumamt_fen, entry.psn_cash_pay_fen) == (
            amounts.medfee_sumamt_fen,
            amounts.fund_pay_sumamt_fen,
            amounts.psn_cash_pay_fen,
        )
    else:
        assert entries == []
    assert len(node.outbox()) == 1 + journaled


@pytest.mark.parametrize(
    ("insured_region", "med_type", "total_fen", "flagged"),
    [
        (LANGFANG, "21", AUDIT_THRESHOLD_FEN, True),
        (LANGFANG, "21", AUDIT_THRESHOLD_FEN - 1, False),
        (CHAOYANG, "21", AUDIT_THRESHOLD_FEN, False),
        (LANGFANG, "11", AUDIT_THRESHOLD_FEN, False),
    ],
    ids=["cross-province-inpatient-at-threshold", "just-below", "in-province", "outpatient"],
)
def test_only_a_large_cross_province_inpatient_bill_opens_an_audit_case(
    node: TreatmentHandlers, insured_region: str, med_type: str, total_fen: int, flagged: bool
) -> None:
    """大额协查: the threshold is inclusive, and neither an in-province stay nor outpatient care is audited."""
    hospital = his(node, insured_region)
    mdtrt_id = hospital.visit([(SURGERY, "1", str(from_fen(total_fen)))], med_type)

    settlement = hospital.settle(mdtrt_id, total_fen)

    assert settlement.result.amounts.medfee_sumamt_fen == total_fen
    assert settlement.clr_type == (INPATIENT if med_type == "21" else OUTPATIENT)
    assert settlement.audit_flag is flagged
    assert (node.read(AuditCaseRow, settlement.setl_id) is not None) is flagged
    assert node.listed(audit_flagged_only=True) == ([settlement.setl_id] if flagged else [])


def test_a_node_audits_from_its_own_configured_threshold(
    tmp_path: Path, province: Province, insured: InsuredSide
) -> None:
    """The threshold is data: a node set to 20,000 yuan audits a 25,000-yuan stay the default would not."""
    peers = FakePeers(NODE, province, insured)
    peers.audit_threshold_fen = 2_000_000
    with treatment_handlers(tmp_path, peers, Clock()) as lowered:
        hospital = his(lowered)
        total_fen = 2_500_000
        settlement = hospital.settle(
            hospital.visit([(SURGERY, "1", str(from_fen(total_fen)))], "21"), total_fen
        )
    assert total_fen < AUDIT_THRESHOLD_FEN and settlement.audit_flag


def test_a_total_other_than_the_lines_is_refused_before_the_insured_node_is_asked(
    node: TreatmentHandlers, insured: InsuredSide
) -> None:
    """AMOUNT_MISMATCH names the field and the lines' total, and nothing is applied or recorded."""
    hospital = his(node)
    mdtrt_id = hospital.visit()
    for wrong in (DRUGS_FEN - 1, DRUGS_FEN + 1):
        command = hospital.settle_command(mdtrt_id, wrong)
        error = refused(lambda command=command: node.settlements.settle(command))
        assert (error.reason_code, fields(error)) == ("AMOUNT_MISMATCH", ["medfee_sumamt_fen"])
        assert error.metadata["lines_total_fen"] == str(DRUGS_FEN)
        assert refused(lambda c=command: node.settlement(medins_setl_id=c.call.request_id)).reason_code == (
            "NOT_FOUND"
        )
    assert applications(insured) == [] and node.outbox() == {}
    assert node.visit(mdtrt_id, hospital.caller).state == settlement_pb2.VISIT_STATE_OPEN


def test_an_inpatient_stay_is_settled_only_once_discharged(
    node: TreatmentHandlers, insured: InsuredSide
) -> None:
    """Inpatient care settles at discharge; before it the insured node is not asked."""
    hospital = his(node)
    mdtrt_id = hospital.register("21")
    hospital.upload(mdtrt_id)

    error = refused(lambda: hospital.settle(mdtrt_id))

    assert (error.reason_code, fields(error)) == ("INVALID_ARGUMENT", ["mdtrt_id"])
    assert "not discharged" in error.message and applications(insured) == []
    hospital.discharge(mdtrt_id)
    assert hospital.settle(mdtrt_id).clr_type == INPATIENT


def test_a_visit_without_lines_is_refused_whether_none_were_uploaded_or_all_cancelled(
    node: TreatmentHandlers, insured: InsuredSide
) -> None:
    hospital = his(node)
    never = hospital.register()
    cancelled = hospital.visit()
    node.desk.cancel_fee_items(
        commands.cancel_fee_items(
            api.CancelFeeItemsRequest(request_id=msgid(), mdtrt_id=cancelled, all=True), hospital.caller
        )
    )

    for mdtrt_id in (never, cancelled):
        error = refused(lambda mdtrt_id=mdtrt_id: hospital.settle(mdtrt_id))
        assert (error.reason_code, fields(error)) == ("INVALID_ARGUMENT", ["mdtrt_id"])
        assert "no fee lines" in error.message
    assert applications(insured) == [] and node.listed() == []


def test_the_same_settle_is_answered_again_and_its_id_with_other_content_is_a_duplicate(
    node: TreatmentHandlers, insured: InsuredSide
) -> None:
    """Exactly once: a repeat (even rebuilt from the same request) replays the answer without asking the
    insured node again; the same request_id saying something else is DUPLICATE_REQUEST."""
    hospital = his(node)
    mdtrt_id = hospital.visit()
    command = hospital.settle_command(mdtrt_id)
    first = node.settlements.settle(command)

    rebuilt = hospital.settle_command(mdtrt_id, request_id=command.call.request_id)
    assert node.settlements.settle(command) == first
    assert node.settlements.settle(rebuilt) == first
    other = hospital.settle_command(mdtrt_id, request_id=command.call.request_id, invono="FP0002")
    assert refused(lambda: node.settlements.settle(other)).reason_code == "DUPLICATE_REQUEST"
    assert refused(lambda: hospital.settle(mdtrt_id)).reason_code == "ALREADY_SETTLED"

    assert len(applications(insured)) == 1
    assert node.listed() == [first.settlement.setl_id] and len(node.outbox()) == 2


@pytest.mark.parametrize("failure", ["unreachable", "answer-lost"])
def test_an_unanswered_insured_node_leaves_nothing_recorded_and_a_retry_settles_once(
    node: TreatmentHandlers, insured: InsuredSide, failure: str
) -> None:
    """No one-sided record: nothing here until the insured node answers; the retry's ApplySettlement
    carries the same id, so a hold made for the lost answer is found, not made twice."""
    hospital = his(node)
    mdtrt_id = hospital.visit()
    command = hospital.settle_command(mdtrt_id)
    if failure == "unreachable":
        insured.unreachable = 1
    else:
        insured.lose_answers = 1

    error = refused(lambda: node.settlements.settle(command))

    assert error.reason_code == "INSURED_REGION_UNREACHABLE"
    assert refused(lambda: node.settlement(medins_setl_id=command.call.request_id)).reason_code == "NOT_FOUND"
    assert node.listed() == [] and node.outbox() == {}
    assert node.visit(mdtrt_id, hospital.caller).state == settlement_pb2.VISIT_STATE_OPEN
    assert len(insured.held) == (failure == "answer-lost")

    settlement = node.settlements.settle(command).settlement

    [held_id] = insured.held
    assert {asked.request_id for asked in applications(insured)} == {held_id}
    assert settlement.result == insured.held[held_id].result
    assert insured.cap_used_fen == settlement.result.amounts.fund_pay_sumamt_fen  # applied once
    assert node.listed() == [settlement.setl_id]


def test_an_institution_the_province_refuses_cannot_settle_and_the_insured_node_is_not_asked(
    node: TreatmentHandlers, province: Province, insured: InsuredSide
) -> None:
    hospital = his(node)
    mdtrt_id = hospital.visit()
    province.institution_refusal = DomainError("INSTITUTION_SUSPENDED", "系统升级 (fake)")
    command = hospital.settle_command(mdtrt_id)

    assert refused(lambda: node.settlements.settle(command)).reason_code == "INSTITUTION_SUSPENDED"

    assert applications(insured) == [] and node.listed() == []
    province.institution_refusal = None
    assert node.settlements.settle(command).settlement.mdtrt_id == mdtrt_id


def test_settle_classifies_the_lines_with_the_catalogue_in_force_at_settlement(
    node: TreatmentHandlers, province: Province, insured: InsuredSide
) -> None:
    """An entry that changed since the upload (class B → C) is applied as it stands now, under the new version."""
    hospital = his(node)
    mdtrt_id = hospital.register()
    uploaded = hospital.upload(mdtrt_id)
    assert [line.chrgitm_lv for line in uploaded.results if line.med_list_codg == DRUG_B] == ["02"]
    province.entries[DRUG_B] = catalogue_pb2.CatalogueItem(code=DRUG_B, name="瑞格列奈片", chrgitm_lv="03")
    province.versions = ("ov-2", "base-1")

    settlement = hospital.settle(mdtrt_id)

    [apply] = applications(insured)
    [drug_b] = [item for item in apply.items if item.med_list_codg == DRUG_B]
    assert drug_b.chrgitm_lv == "03"
    assert (drug_b.fulamt_ownpay_amt_fen, drug_b.inscp_scp_amt_fen) == (drug_b.det_item_fee_sumamt_fen, 0)
    assert "ov-2" in apply.catalogue_version
    assert settlement.result.catalogue_version == apply.catalogue_version


def test_pre_settle_asks_a_dry_run_and_records_nothing(node: TreatmentHandlers, insured: InsuredSide) -> None:
    hospital = his(node)
    mdtrt_id = hospital.visit()
    estimate = node.settlements.pre_settle(
        commands.pre_settle(
            api.PreSettleRequest(mdtrt_id=mdtrt_id, medfee_sumamt_fen=DRUGS_FEN), hospital.caller
        )
    ).result

    [dry_run] = insured.requests(insured_api.ApplySettlementRequest)
    assert dry_run.dry_run and not dry_run.setl_id
    assert estimate.amounts.medfee_sumamt_fen == DRUGS_FEN and estimate.amounts.fund_pay_sumamt_fen > 0
    assert insured.held == {} and node.listed() == [] and node.outbox() == {}
    wrong = commands.pre_settle(api.PreSettleRequest(mdtrt_id=mdtrt_id, medfee_sumamt_fen=1), hospital.caller)
    assert refused(lambda: node.settlements.pre_settle(wrong)).reason_code == "AMOUNT_MISMATCH"
    assert hospital.settle(mdtrt_id).result.amounts == estimate.amounts


FLOWS = (
    "medfee_sumamt_fen",
    "fulamt_ownpay_amt_fen",
    "preselfpay_amt_fen",
    "inscp_scp_amt_fen",
    "hifp_pay_fen",
    "fund_pay_sumamt_fen",
    "psn_part_amt_fen",
    "acct_pay_fen",
    "psn_cash_pay_fen",
)
"""The amounts that are money moved, which a reversal moves back."""


def assert_negates(
    reversal: settlement_result_pb2.SettlementResult, original: settlement_result_pb2.SettlementResult
) -> None:
    """Every flow of ``original`` moved back exactly; a balance (a state, not a flow) left unset."""
    for name in FLOWS:
        assert getattr(reversal.amounts, name) == -getattr(original.amounts, name), name
    assert reversal.amounts.balc_fen == 0
    assert [line.fund_payamt_fen for line in reversal.fund_lines] == [
        -line.fund_payamt_fen for line in original.fund_lines
    ]
    assert [item.det_item_fee_sumamt_fen for item in reversal.items] == [
        -item.det_item_fee_sumamt_fen for item in original.items
    ]


def test_a_reversal_confirms_a_pending_settlement_first_then_reverts_and_records_the_negation(
    node: TreatmentHandlers, insured: InsuredSide
) -> None:
    """The insured node never sees a confirmation after the revert; the reversal is recorded once,
    journaled like its settlement, and a settlement is reversed only once."""
    hospital = his(node)
    settlement = hospital.settle(hospital.visit())
    [apply] = applications(insured)
    command = hospital.reverse_command(settlement)

    reversal = node.settlements.reverse(command).reversal

    settling = [type(request) for request in insured.asked if type(request) is not ResolvePersonRequest]
    assert settling == [ApplySettlementRequest, ConfirmSettlementRequest, RevertSettlementRequest]
    [confirm] = insured.requests(insured_api.ConfirmSettlementRequest)
    [revert] = insured.requests(insured_api.RevertSettlementRequest)
    assert confirm.original_request_id == revert.original_request_id == apply.request_id
    assert (reversal.reverses_setl_id, reversal.medins_setl_id, reversal.mdtrt_id) == (
        settlement.setl_id,
        command.call.request_id,
        settlement.mdtrt_id,
    )
    assert reversal.setl_id != settlement.setl_id and not reversal.audit_flag
    assert_negates(reversal.result, settlement.result)
    assert list(reversal.result.accumulator_changes) == list(
        insured.reverted[revert.request_id].accumulator_changes
    )
    assert insured.cap_used_fen == 0
    assert node.settlement(setl_id=settlement.setl_id).reversed
    assert node.listed() == [settlement.setl_id, reversal.setl_id]
    assert node.listed(include_reversals=False) == [settlement.setl_id]
    [_, entry] = journal_entries(node)
    assert (entry.kind, entry.reverses_msgid, entry.setl_id, entry.fund_pay_sumamt_fen) == (
        journal_pb2.JOURNAL_ENTRY_KIND_REVERSAL,
        settlement.medins_setl_id,
        reversal.setl_id,
        -settlement.result.amounts.fund_pay_sumamt_fen,
    )

    asked_so_far = len(insured.asked)
    assert node.settlements.reverse(command).reversal == reversal  # replayed
    for again in (hospital.reverse_command(settlement), hospital.reverse_command(reversal)):
        assert refused(lambda again=again: node.settlements.reverse(again)).reason_code == "ALREADY_REVERSED"
    assert len(insured.asked) == asked_so_far


def test_a_confirmed_settlement_is_reverted_without_confirming_again_and_in_province_not_journaled(
    node: TreatmentHandlers, insured: InsuredSide
) -> None:
    hospital = his(node, CHAOYANG)
    settlement = hospital.settle(hospital.visit())
    [confirm_id] = node.outbox()
    node.delivered(confirm_id)

    reversal = node.settlements.reverse(hospital.reverse_command(settlement)).reversal

    assert insured.requests(insured_api.ConfirmSettlementRequest) == []
    assert len(insured.requests(insured_api.RevertSettlementRequest)) == 1
    assert reversal.reverses_setl_id == settlement.setl_id and reversal.pay_loc == IN_PROVINCE
    assert journal_entries(node) == []


def test_a_reversal_must_name_the_settlement_s_visit_and_person(
    node: TreatmentHandlers, insured: InsuredSide
) -> None:
    hospital = his(node)
    settlement = hospital.settle(hospital.visit())
    other_visit = hospital.visit()
    wrong_person = hospital.reverse_command(settlement, psn_no="13100000000000000002")
    wrong_visit = commands.reverse_settlement(
        api.ReverseSettlementRequest(
            request_id=msgid(), setl_id=settlement.setl_id, mdtrt_id=other_visit, psn_no=settlement.psn_no
        ),
        hospital.caller,
    )

    assert fields(refused(lambda: node.settlements.reverse(wrong_person))) == ["psn_no"]
    assert fields(refused(lambda: node.settlements.reverse(wrong_visit))) == ["mdtrt_id"]
    assert insured.requests(insured_api.RevertSettlementRequest) == []
    assert not node.settlement(setl_id=settlement.setl_id).reversed


@pytest.mark.parametrize(
    ("lost_answer", "outcome"),
    [(False, api.CORRECTION_OUTCOME_NOTHING_TO_UNDO), (True, api.CORRECTION_OUTCOME_REVERSED)],
    ids=["never-arrived", "applied-answer-lost"],
)
def test_a_correction_of_an_unrecorded_settle_bars_it_for_ever(
    node: TreatmentHandlers, insured: InsuredSide, lost_answer: bool, outcome: int
) -> None:
    """冲正 of a Settle this node never recorded: the insured node reverts whatever hold that Settle's
    ApplySettlement made, and the Settle, sent later, is refused CORRECTED without reaching it."""
    hospital = his(node)
    mdtrt_id = hospital.visit()
    command = hospital.settle_command(mdtrt_id)
    if lost_answer:
        insured.lose_answers = 1
        assert refused(lambda: node.settlements.settle(command)).reason_code == "INSURED_REGION_UNREACHABLE"
        assert insured.cap_used_fen > 0

    assert hospital.correct(command.call.request_id).outcome == outcome

    [revert] = insured.requests(insured_api.RevertSettlementRequest)
    if lost_answer:
        [held_id] = insured.held
        assert revert.original_request_id == held_id
    assert insured.cap_used_fen == 0
    asked = len(insured.asked)
    error = refused(lambda: node.settlements.settle(command))
    assert error.reason_code == "CORRECTED"
    assert len(insured.asked) == asked and node.listed() == [] and node.outbox() == {}
    assert hospital.correct(command.call.request_id).outcome == api.CORRECTION_OUTCOME_ALREADY_CORRECTED
    assert node.visit(mdtrt_id, hospital.caller).state == settlement_pb2.VISIT_STATE_OPEN


def test_a_correction_of_a_recorded_settle_reverses_it_once(
    node: TreatmentHandlers, insured: InsuredSide
) -> None:
    hospital = his(node)
    settlement = hospital.settle(hospital.visit())

    corrected = hospital.correct(settlement.medins_setl_id)

    assert corrected.outcome == api.CORRECTION_OUTCOME_REVERSED
    assert corrected.reversal.reverses_setl_id == settlement.setl_id
    assert_negates(corrected.reversal.result, settlement.result)
    assert insured.cap_used_fen == 0
    again = hospital.correct(settlement.medins_setl_id)
    assert (again.outcome, again.reversal) == (api.CORRECTION_OUTCOME_ALREADY_CORRECTED, corrected.reversal)
    assert len(insured.requests(insured_api.RevertSettlementRequest)) == 1


LINE = st.tuples(
    st.sampled_from([DRUG_A, DRUG_B, SURGERY, "XA10BFA022A001010199999"]),  # the last is not in the catalogue
    st.integers(1, 20),
    st.integers(1, 500_000),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(LINE, min_size=1, max_size=4),
    fund_tenths=st.integers(0, 10),
    account_fen=st.integers(0, 100_000),
    use_account=st.booleans(),
)
def test_for_any_bill_the_record_is_the_insured_answer_and_the_reversal_its_exact_negation(
    node: TreatmentHandlers,
    insured: InsuredSide,
    rows: list[tuple[str, int, int]],
    fund_tenths: int,
    account_fen: int,
    use_account: bool,
) -> None:
    """Money is the insured node's, never recomputed here, and a reversal moves every flow back."""
    insured.fund_share, insured.account_fen = Fraction(fund_tenths, 10), account_fen
    hospital = his(node)
    mdtrt_id = hospital.register()
    uploaded = hospital.upload(
        mdtrt_id, [(code, str(count), str(from_fen(price))) for code, count, price in rows]
    )
    total = sum(line.det_item_fee_sumamt_fen for line in uploaded.results)
    request = api.SettleRequest(
        request_id=msgid(), mdtrt_id=mdtrt_id, medfee_sumamt_fen=total, acct_used_flag=use_account
    )

    settlement = node.settlements.settle(commands.settle(request, hospital.caller)).settlement

    apply = applications(insured)[-1]
    assert apply.use_account is use_account and apply.totals.medfee_sumamt_fen == total
    assert settlement.result == insured.held[apply.request_id].result
    reversal = node.settlements.reverse(hospital.reverse_command(settlement)).reversal
    assert_negates(reversal.result, settlement.result)
    assert sum(change.delta_fen for change in settlement.result.accumulator_changes) == -sum(
        change.delta_fen for change in reversal.result.accumulator_changes
    )
