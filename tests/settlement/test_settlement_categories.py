"""The categories of care the seeds name, settled across the tree (Beijing hospital, Langfang insured).

Mid-stay settlement (中途结算, ``mid_setl_flag``) of a long inpatient stay: the Langfang retiree stays in a Beijing tertiary hospital (Langfang's rule: 1300.00 deductible
per stay, 85% on the inpatient segment). The stay is settled in parts while it goes on: each
part settles only the lines not yet settled, the deductible is charged once for the stay,
the insured node's accumulators progress part by part, and each part reverses on its own.

An injury (外伤) settles only with the patient's declaration that no third party is liable.
Outpatient care for the five piloted chronic diseases needs no designated institution.
Examinations and drugs from outside the hospital during a stay are uploaded on it and settled with it.
Special drugs (门诊特药) settle at a designated pharmacy that opened them (双通道).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.type.date_pb2 import Date
from loading import BEIJING, LANGFANG, beijing_tree, load_insured
from test_treatment_settlement import accumulators
from treatment_his import (
    DRUGS,
    HOSPITAL,
    correct_request,
    diabetes_visit,
    envelope,
    lines,
    msgid,
    refusal,
    settle_request,
    upload,
)

from yidi.filing.v1 import filing_pb2, filing_service_pb2, filing_service_pb2_grpc
from yidi.settlement.v1 import settlement_pb2
from yidi.settlement.v1 import settlement_service_pb2 as api
from yidi.settlement.v1 import settlement_service_pb2_grpc as api_grpc
from yidi.type.v1 import fee_item_pb2, visit_pb2
from yidi_runtime.peers import message_id
from yidi_runtime.server import Node

FIRST_PART = (("1", "001102000010000", "10", "60.00"), ("2", "003106050020000", "1", "28000.00"))
FIRST_PART_FEN = 2_860_000  # bed days 600.00 + stent procedure 28000.00, all in scope
SECOND_PART = (("4", "XJ01DDT071B002010100003", "20", "15.00"),)
SECOND_PART_FEN = 30_000  # ceftriaxone 300.00: 216.00 in scope (a ceiling, then 10% first self-pay)
SECOND_IN_SCOPE_FEN = 21_600
DEDUCTIBLE_FEN = 130_000
SEGMENT = "segment:inpatient"
PHARMACY, PHARMACY_AREA = "P11010500001", "110105"


@pytest.fixture(scope="module")
def nodes(
    tmp_path_factory: pytest.TempPathFactory, module_database_factory: Callable[[], str | None]
) -> Iterator[dict[str, Node]]:
    with beijing_tree(tmp_path_factory.mktemp("midstay"), module_database_factory) as started:
        yield started


@pytest.fixture(scope="module")
def stub(nodes: dict[str, Node]) -> Iterator[api_grpc.SettlementServiceStub]:
    with grpc.insecure_channel(nodes[BEIJING].address) as channel:
        yield api_grpc.SettlementServiceStub(channel)


@pytest.fixture(scope="module")
def psn_no(nodes: dict[str, Node]) -> str:
    return load_insured(nodes)


def _stay(stub: api_grpc.SettlementServiceStub, psn_no: str) -> str:
    facts = visit_pb2.VisitFacts(med_type="21", diagnoses=["I21.000"])
    return str(stub.RegisterVisit(diabetes_visit(psn_no, facts=facts), timeout=20).visit.mdtrt_id)


def _settle(
    stub: api_grpc.SettlementServiceStub, mdtrt_id: str, total_fen: int, *, mid: bool
) -> settlement_pb2.Settlement:
    request = settle_request(mdtrt_id, medfee_sumamt_fen=total_fen, mid_setl_flag=mid)
    return stub.Settle(request, timeout=30).settlement


def _reverse(
    stub: api_grpc.SettlementServiceStub, part: settlement_pb2.Settlement
) -> settlement_pb2.Settlement:
    request = api.ReverseSettlementRequest(
        request_id=msgid(),
        envelope=envelope(),
        setl_id=part.setl_id,
        mdtrt_id=part.mdtrt_id,
        psn_no=part.psn_no,
    )
    return stub.ReverseSettlement(request, timeout=30).reversal


def _discharge(stub: api_grpc.SettlementServiceStub, mdtrt_id: str) -> settlement_pb2.Visit:
    end = Timestamp()
    end.FromDatetime(datetime(2022, 7, 20, 2, 0, tzinfo=UTC))
    request = api.DischargeVisitRequest(
        request_id=msgid(), envelope=envelope(), mdtrt_id=mdtrt_id, end_time=end
    )
    return stub.DischargeVisit(request, timeout=20).visit


def test_a_long_stay_settles_in_parts_each_part_reversible(
    nodes: dict[str, Node], stub: api_grpc.SettlementServiceStub, psn_no: str
) -> None:
    mdtrt_id = _stay(stub, psn_no)
    first_upload = msgid()
    upload(stub, mdtrt_id, FIRST_PART, request_id=first_upload)
    before = accumulators(nodes[LANGFANG], psn_no).get(SEGMENT, 0)

    preview = stub.PreSettle(api.PreSettleRequest(envelope=envelope(), mdtrt_id=mdtrt_id, mid_setl_flag=True))
    first = _settle(stub, mdtrt_id, FIRST_PART_FEN, mid=True)
    assert first.result.amounts == preview.result.amounts
    assert (first.result.amounts.medfee_sumamt_fen, first.result.amounts.act_pay_dedc_fen) == (
        FIRST_PART_FEN,
        DEDUCTIBLE_FEN,
    )
    assert first.mid_setl_flag
    assert accumulators(nodes[LANGFANG], psn_no)[SEGMENT] == before + FIRST_PART_FEN - DEDUCTIBLE_FEN

    # The stay goes on: a settled line stays, new lines come, and only they are settled next.
    assert (
        refusal(
            lambda: stub.CancelFeeItems(
                api.CancelFeeItemsRequest(
                    request_id=msgid(), envelope=envelope(), mdtrt_id=mdtrt_id, feedetl_sns=["1"]
                )
            )
        )[1]
        == "ALREADY_SETTLED"
    )
    cancel = api.CancelVisitRequest(request_id=msgid(), envelope=envelope(), mdtrt_id=mdtrt_id)
    assert refusal(lambda: stub.CancelVisit(cancel, timeout=20))[1] == "ALREADY_SETTLED"
    undo = correct_request(first_upload, api.CORRECTED_OPERATION_UPLOAD_FEE_ITEMS)
    assert refusal(lambda: stub.Correct(undo, timeout=20))[1] == "ALREADY_SETTLED"
    upload(stub, mdtrt_id, SECOND_PART)
    whole = FIRST_PART_FEN + SECOND_PART_FEN
    assert refusal(lambda: _settle(stub, mdtrt_id, whole, mid=True))[1] == "AMOUNT_MISMATCH"
    assert refusal(lambda: _settle(stub, mdtrt_id, SECOND_PART_FEN, mid=False))[1:] == (
        "INVALID_ARGUMENT",
        ["mdtrt_id"],
    )  # the rest waits for discharge
    second = _settle(stub, mdtrt_id, SECOND_PART_FEN, mid=True)
    assert second.result.amounts.act_pay_dedc_fen == 0  # the stay's deductible was paid by the first part
    assert (
        accumulators(nodes[LANGFANG], psn_no)[SEGMENT]
        == before + FIRST_PART_FEN - DEDUCTIBLE_FEN + SECOND_IN_SCOPE_FEN
    )

    # Reversing the second part gives its lines back to the stay and its accumulation back.
    assert _reverse(stub, second).result.amounts.medfee_sumamt_fen == -SECOND_PART_FEN
    assert accumulators(nodes[LANGFANG], psn_no)[SEGMENT] == before + FIRST_PART_FEN - DEDUCTIBLE_FEN

    # Discharged, the last part settles the lines left, and the stay is settled.
    assert _discharge(stub, mdtrt_id).state == settlement_pb2.VISIT_STATE_DISCHARGED
    assert refusal(lambda: _settle(stub, mdtrt_id, SECOND_PART_FEN, mid=True))[2] == ["mid_setl_flag"]
    last = _settle(stub, mdtrt_id, SECOND_PART_FEN, mid=False)
    assert (last.result.amounts.act_pay_dedc_fen, last.mid_setl_flag) == (0, False)
    assert refusal(lambda: upload(stub, mdtrt_id, (("9", *SECOND_PART[0][1:]),)))[1] == "ALREADY_SETTLED"

    # The first part still reverses on its own.
    _reverse(stub, first)
    assert accumulators(nodes[LANGFANG], psn_no)[SEGMENT] == before + SECOND_IN_SCOPE_FEN


def test_only_an_inpatient_stay_settles_mid_stay(stub: api_grpc.SettlementServiceStub, psn_no: str) -> None:
    outpatient = stub.RegisterVisit(diabetes_visit(psn_no), timeout=20).visit.mdtrt_id
    upload(stub, outpatient)
    assert refusal(lambda: stub.Settle(settle_request(outpatient, mid_setl_flag=True), timeout=30))[1:] == (
        "INVALID_ARGUMENT",
        ["mid_setl_flag"],
    )


def test_an_injury_settles_only_with_the_declaration_of_no_liable_third_party(
    stub: api_grpc.SettlementServiceStub, psn_no: str
) -> None:
    injured = visit_pb2.VisitFacts(med_type="22", diagnoses=["I21.000"])  # 外伤住院 is an injury
    for fields in ({"facts": injured}, {"trauma": True}):
        undeclared = diabetes_visit(psn_no, **fields)
        assert refusal(lambda r=undeclared: stub.RegisterVisit(r, timeout=20))[:2] == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "THIRD_PARTY_NOT_DECLARED",
        )
    assert refusal(lambda: stub.RegisterVisit(diabetes_visit(psn_no, no_third_party_declared=True)))[1:] == (
        "INVALID_ARGUMENT",
        ["no_third_party_declared"],
    )

    visit = stub.RegisterVisit(
        diabetes_visit(psn_no, facts=injured, no_third_party_declared=True), timeout=20
    ).visit
    assert visit.trauma_no_third_party
    upload(stub, visit.mdtrt_id, FIRST_PART)
    _discharge(stub, visit.mdtrt_id)
    settled = _settle(stub, visit.mdtrt_id, FIRST_PART_FEN, mid=False)
    assert (settled.trauma_no_third_party, settled.result.amounts.medfee_sumamt_fen) == (True, FIRST_PART_FEN)
    assert settled.result.amounts.fund_pay_sumamt_fen > 0
    assert _reverse(stub, settled).trauma_no_third_party


def test_the_five_pilot_diseases_are_treated_outside_the_designated_institutions(
    nodes: dict[str, Node], stub: api_grpc.SettlementServiceStub, psn_no: str
) -> None:
    """Langfang now requires outpatient designations; the retiree's filing designates none."""
    rules = filing_pb2.FilingRules(
        insuplc_admdvs=LANGFANG,
        review_deadline_working_days=3,
        temporary_validity_months=6,
        commitment_accepted=True,
        effective_date=Date(year=2022, month=1, day=1),
        outpatient_designations_required=1,
    )
    with grpc.insecure_channel(nodes[LANGFANG].address) as channel:
        filing_service_pb2_grpc.FilingServiceStub(channel).SetFilingRules(
            filing_service_pb2.SetFilingRulesRequest(request_id=message_id(LANGFANG), rules=rules), timeout=20
        )
    general = diabetes_visit(psn_no, facts=visit_pb2.VisitFacts(med_type="11", diagnoses=["E11.900"]))
    mdtrt_id = stub.RegisterVisit(general, timeout=20).visit.mdtrt_id
    upload(stub, mdtrt_id)
    assert (
        refusal(lambda: stub.Settle(settle_request(mdtrt_id), timeout=30))[1] == "INSTITUTION_NOT_DESIGNATED"
    )

    diabetes = stub.RegisterVisit(diabetes_visit(psn_no), timeout=20).visit.mdtrt_id  # 14, M01600
    upload(stub, diabetes)
    assert stub.Settle(settle_request(diabetes), timeout=30).settlement.result.amounts.fund_pay_sumamt_fen > 0


def _outside(serial: str, day: int | None) -> fee_item_pb2.FeeItem:
    """Ceftriaxone bought outside the hospital on July ``day`` (no time when None)."""
    [line] = lines(((serial, *SECOND_PART[0][1:]),))
    line.outside_hospital = True
    if day is not None:
        line.fee_ocur_time.FromDatetime(datetime(2022, 7, day, 3, 0, tzinfo=UTC))
    return line


def test_examinations_and_drugs_from_outside_settle_with_the_stay(
    stub: api_grpc.SettlementServiceStub, psn_no: str
) -> None:
    def send(mdtrt_id: str, line: fee_item_pb2.FeeItem) -> api.UploadFeeItemsResponse:
        request = api.UploadFeeItemsRequest(
            request_id=msgid(), envelope=envelope(), mdtrt_id=mdtrt_id, items=[line]
        )
        return stub.UploadFeeItems(request, timeout=20)

    outpatient = stub.RegisterVisit(diabetes_visit(psn_no), timeout=20).visit.mdtrt_id
    assert refusal(lambda: send(outpatient, _outside("7", 1)))[2] == ["items[0].outside_hospital"]
    mdtrt_id = _stay(stub, psn_no)  # admitted 2022-07-01 01:30 UTC
    assert refusal(lambda: send(mdtrt_id, _outside("7", None)))[2] == ["items[0].fee_ocur_time"]
    early = _outside("7", 1)
    early.fee_ocur_time.FromDatetime(datetime(2022, 6, 30, 3, 0, tzinfo=UTC))
    assert refusal(lambda: send(mdtrt_id, early))[2] == ["items[0].fee_ocur_time"]

    upload(stub, mdtrt_id, FIRST_PART)
    send(mdtrt_id, _outside("7", 5))
    _discharge(stub, mdtrt_id)
    settled = _settle(stub, mdtrt_id, FIRST_PART_FEN + SECOND_PART_FEN, mid=False)
    assert {item.feedetl_sn: item.det_item_fee_sumamt_fen for item in settled.result.items}[
        "7"
    ] == SECOND_PART_FEN


def test_special_drugs_settle_at_a_pharmacy_through_the_dual_channel(
    stub: api_grpc.SettlementServiceStub, psn_no: str
) -> None:
    """The Chaoyang pharmacy opened special drugs (门诊特药) on 2023-01-01; the Langfang rule pays 70%."""
    day = Date(year=2023, month=3, day=1)
    begin = Timestamp()
    begin.FromDatetime(datetime(2023, 3, 1, 2, 0, tzinfo=UTC))

    def visit(institution: str, area: str) -> api.RegisterVisitRequest:
        return diabetes_visit(
            psn_no,
            envelope=envelope(institution, area),
            facts=visit_pb2.VisitFacts(med_type="15", service_date=day, diagnoses=["E11.900"]),
            begin_time=begin,
        )

    assert (
        refusal(lambda: stub.RegisterVisit(visit(HOSPITAL, "110101"), timeout=20))[1] == "SERVICE_NOT_ENABLED"
    )
    at_pharmacy = envelope(PHARMACY, PHARMACY_AREA)
    mdtrt_id = stub.RegisterVisit(visit(PHARMACY, PHARMACY_AREA), timeout=20).visit.mdtrt_id
    upload(stub, mdtrt_id, DRUGS[:1], envelope=at_pharmacy)
    settled = stub.Settle(
        settle_request(mdtrt_id, envelope=at_pharmacy, medfee_sumamt_fen=3252), timeout=30
    ).settlement
    assert (settled.fixmedins_code, settled.med_type) == (PHARMACY, "15")
    assert settled.result.amounts.fund_pay_sumamt_fen == 2276  # 70% of 32.52 yuan
