"""The insured place reads the bill, and reimburses a self-pay bill online (issue 20).

One federation per database: Jiaxing (330400) under Zhejiang, Langfang (131000) under Hebei,
the national node, and Guangdong (440000) as a province with no part in the bills. A filed
Langfang patient settles directly at a Jiaxing hospital; an unfiled one pays in full there,
and the hospital uploads the self-pay bill. Langfang's operator reads both through the
Langfang node and reimburses the second there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import grpc
import pytest
from federation.federation_support import accumulators, kind_name, open_visit, topology

from yidi.catalogue.v1 import policy_service_pb2, policy_service_pb2_grpc
from yidi.filing.v1 import filing_service_pb2, insured_person_pb2
from yidi.settlement.v1 import insured_settlement_service_pb2 as api
from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as api_grpc
from yidi.settlement.v1 import settlement_pb2, settlement_service_pb2
from yidi.type.v1 import fee_item_pb2, visit_pb2
from yidi_codec.policies import policy_from_proto
from yidi_codec.results import item_result_from_proto
from yidi_codec.visits import visit_from_proto
from yidi_core.money import to_fen
from yidi_core.settlement import Person, Settlement, settle_classified
from yidi_harness.federation import (
    SAMPLE_DATA,
    Federation,
    init_demo_pki,
    institution,
    load_sample_data,
    region_operator,
    start_federation,
)
from yidi_harness.stories import BillLine, Encounter, Patient, Stage, bill_total_fen, resident_id
from yidi_runtime.peers import message_id
from yidi_runtime.wire import date_message, timestamp_message
from yidi_testing import error_details

JIAXING, LANGFANG, GUANGDONG = "330400", "131000", "440000"
REGIONS = ("000000", "330000", JIAXING, "130000", LANGFANG, GUANGDONG)
HOSPITAL, PHARMACY = "H33040200001", "P33040200001"
DEADLINE_S = 20.0
BILL = (
    BillLine("001102000010000", "床位费", "2", "60.00"),
    BillLine("003106050020000", "经皮冠状动脉支架置入术", "1", "18000.00"),
    BillLine("C0203010340000000002", "冠脉支架(集采型号)", "1", "900.00"),
    BillLine("XJ01DDT071B002010100003", "注射用头孢曲松钠", "4", "15.00"),
    BillLine("C0203010340000000001", "冠脉支架(自费型号)", "1", "1200.00"),
)


@dataclass(frozen=True)
class Played:
    """The federation after the window's work: one settlement and one self-pay bill at Jiaxing."""

    federation: Federation
    settlement: settlement_pb2.Settlement
    self_pay_bill: settlement_pb2.SelfPayBill
    billed_visits_bill: settlement_pb2.SelfPayBill
    """A bill naming its visit, which the hospital then tried to settle directly."""
    billed_visit_settle_refusal: str
    unfiled_psn_no: str
    year: int

    def insured(
        self, region: str = LANGFANG, operator: str = LANGFANG
    ) -> api_grpc.InsuredSettlementServiceStub:
        """InsuredSettlementService at ``region``'s node, as an operator of ``operator``."""
        channel = self.federation.channel(region, region_operator(operator))
        return api_grpc.InsuredSettlementServiceStub(channel)

    def reimburse(self, request_id: str, bill_id: str = "") -> api.ReimburseSelfPayBillResponse:
        return self.insured().ReimburseSelfPayBill(
            api.ReimburseSelfPayBillRequest(
                request_id=request_id, insuplc_admdvs=LANGFANG, bill_id=bill_id or self.self_pay_bill.bill_id
            ),
            timeout=DEADLINE_S,
        )


def _enrol(stage: Stage, serial: int) -> tuple[Patient, str]:
    """An employee insured in Langfang, with no filing anywhere; and their person number."""
    patient = Patient(resident_id(LANGFANG, serial), LANGFANG, "unfiled Langfang employee")
    answer = stage.filing_stub(LANGFANG).ImportInsuredPersons(
        filing_service_pb2.ImportInsuredPersonsRequest(
            request_id=message_id(LANGFANG),
            persons=[
                insured_person_pb2.InsuredPerson(
                    certno=patient.certno,
                    psn_name="样例",
                    insuplc_admdvs=LANGFANG,
                    insutype="310",
                    psn_type="1101",
                    credential_activated=True,
                    has_personal_account=True,
                )
            ],
        ),
        timeout=DEADLINE_S,
    )
    return patient, answer.psn_nos[0]


def _upload_self_pay_bill(stage: Stage, patient: Patient, mdtrt_id: str = "") -> settlement_pb2.SelfPayBill:
    """The Jiaxing hospital's full bill of an inpatient stay direct settlement refused (NOT_FILED),
    naming the visit it was tried for if any."""
    window = stage.window(HOSPITAL)
    admitted = stage.now - timedelta(hours=30)
    items = [
        fee_item_pb2.FeeItem(
            feedetl_sn=f"{index:04d}",
            med_list_codg=line.code,
            cnt=line.quantity,
            pric=line.price,
            fee_ocur_time=timestamp_message(admitted),
        )
        for index, line in enumerate(BILL, start=1)
    ]
    return window.stub.UploadSelfPayBill(
        settlement_service_pb2.UploadSelfPayBillRequest(
            request_id=window.request_id(),
            envelope=window.envelope(LANGFANG),
            bill=settlement_pb2.SelfPayBill(
                credential=patient.credential,
                insuplc_admdvs=LANGFANG,
                facts=visit_pb2.VisitFacts(med_type="21", institution_level="3", diagnoses=["I21.000"]),
                items=items,
                medfee_sumamt_fen=bill_total_fen(BILL),
                invoice_numbers=["ZJ-0001"],
                direct_settlement_failure_reason="NOT_FILED",
                service_date=date_message(stage.today),
                mdtrt_id=mdtrt_id,
            ),
        ),
        timeout=DEADLINE_S,
    ).bill


def _import_unfiled_rates(federation: Federation, effective: date) -> None:
    """Langfang's sample policy from ``effective`` on, with the seed's rates for care without a filing."""
    document = (SAMPLE_DATA / "policies" / "131000-310-langfang.toml").read_bytes()
    document += b'\n[unfiled_factors]\nemergency = "0.70"\nunreferred = "0.50"\n'
    policies = policy_service_pb2_grpc.PolicyServiceStub(
        federation.channel(LANGFANG, region_operator(LANGFANG))
    )
    policies.ImportPolicy(
        policy_service_pb2.ImportPolicyRequest(
            request_id=message_id(LANGFANG),
            insuplc_admdvs=LANGFANG,
            insutype="310",
            effective_date=date_message(effective),
            format=policy_service_pb2.POLICY_FORMAT_TOML,
            document=document,
        ),
        timeout=DEADLINE_S,
    )


@pytest.fixture(scope="module")
def played(
    module_database_factory: Callable[[], str | None], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Played]:
    tree = topology(*REGIONS)
    pki = init_demo_pki(tmp_path_factory.mktemp("pki"), tree)  # mutual TLS: nodes act as themselves
    with start_federation(
        tree, tmp_path_factory.mktemp("bills"), module_database_factory, pki=pki
    ) as federation:
        load_sample_data(federation)
        stage = Stage(federation, datetime.now(UTC))
        _import_unfiled_rates(federation, date(stage.today.year, 1, 1))
        [filed] = stage.enrol_and_file(LANGFANG, JIAXING, 1, 701, "filed Langfang employee")
        visit = Encounter(
            patient=filed,
            fixmedins_code=HOSPITAL,
            med_type="21",
            service_date=stage.today,
            begin_time=stage.earlier_today(6),
            end_time=stage.now,
            diagnoses=("I21.000",),
            bill=BILL,
        )
        window = stage.window(HOSPITAL)
        settlement = window.settle(open_visit(window, visit)[1])
        billed, settle = open_visit(window, visit)
        billed_visits_bill = _upload_self_pay_bill(stage, filed, billed.mdtrt_id)
        try:
            window.settle(settle)
            refused = ""
        except grpc.RpcError as error:
            refused = error_details(error)["ErrorInfo"].reason
        unfiled, psn_no = _enrol(stage, 702)
        bill = _upload_self_pay_bill(stage, unfiled)
        yield Played(federation, settlement, bill, billed_visits_bill, refused, psn_no, stage.today.year)


def test_the_insured_regions_operator_reads_a_settlements_whole_bill_at_their_own_node(
    played: Played,
) -> None:
    bill = (
        played.insured()
        .GetBill(api.GetBillRequest(setl_id=played.settlement.setl_id), timeout=DEADLINE_S)
        .bill
    )

    settled = played.settlement
    assert bill.settlement == settled  # totals, fund split, accumulator changes, explanation
    assert bill.settlement.result.explanation.lines
    assert [line.classification for line in bill.lines] == list(settled.result.items)
    assert [(line.item.med_list_codg, line.item.cnt) for line in bill.lines] == [
        (line.code, line.quantity) for line in BILL
    ]
    assert bill.visit.mdtrt_id == settled.mdtrt_id and bill.visit.setl_id == settled.setl_id
    assert bill.facts.fixmedins_code == HOSPITAL and list(bill.facts.diagnoses) == ["I21.000"]
    assert bill.catalogue_version == settled.result.catalogue_version
    # the treatment region's operator reads it at the treatment node, the same record
    at_jiaxing = played.insured(JIAXING, JIAXING).GetBill(
        api.GetBillRequest(setl_id=settled.setl_id), timeout=DEADLINE_S
    )
    assert at_jiaxing.bill == bill


def _as_institution(played: Played, code: str) -> api_grpc.InsuredSettlementServiceStub:
    return api_grpc.InsuredSettlementServiceStub(played.federation.channel(JIAXING, institution(code)))


def test_another_provinces_operator_and_another_institution_are_refused_by_the_treatment_node(
    played: Played,
) -> None:
    strangers = (played.insured(GUANGDONG, GUANGDONG), _as_institution(played, PHARMACY))
    for key in ({"setl_id": played.settlement.setl_id}, {"bill_id": played.self_pay_bill.bill_id}):
        for stranger in strangers:
            with pytest.raises(grpc.RpcError) as refused:
                stranger.GetBill(api.GetBillRequest(**key), timeout=DEADLINE_S)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert error_details(refused.value)["ErrorInfo"].reason == "PERMISSION_DENIED_REGION"
        own = _as_institution(played, HOSPITAL).GetBill(api.GetBillRequest(**key), timeout=DEADLINE_S).bill
        assert own.lines and not own.HasField("person_credential")


def _expected(played: Played, bill: api.Bill) -> tuple[Settlement, Settlement]:
    """What Langfang's policy in force pays for the classified bill of a person without a filing, by the
    core; and what it would pay without its rates for unfiled care."""
    policies = policy_service_pb2_grpc.PolicyServiceStub(
        played.federation.channel(LANGFANG, region_operator(LANGFANG))
    )
    policy = policies.GetPolicy(
        policy_service_pb2.GetPolicyRequest(
            insuplc_admdvs=LANGFANG, insutype="310", date=bill.facts.service_date
        ),
        timeout=DEADLINE_S,
    ).policy
    items = [item_result_from_proto(line.classification, index) for index, line in enumerate(bill.lines)]
    unfiled = Person(insutype="310", psn_type="1101", filing_category=None)
    parsed = policy_from_proto(policy)
    assert parsed.unfiled_factors == {"emergency": Decimal("0.70"), "unreferred": Decimal("0.50")}
    visit = visit_from_proto(bill.facts)
    return (
        settle_classified(visit, unfiled, parsed, items),
        settle_classified(visit, unfiled, replace(parsed, unfiled_factors={}), items),
    )


def test_an_unfiled_patients_self_pay_bill_is_reimbursed_online_once(played: Played) -> None:
    bill = (
        played.insured()
        .GetBill(api.GetBillRequest(bill_id=played.self_pay_bill.bill_id), timeout=DEADLINE_S)
        .bill
    )
    assert bill.self_pay_bill.bill_id == played.self_pay_bill.bill_id
    assert "*" in bill.self_pay_bill.credential.mdtrt_cert_no  # masked
    assert not bill.HasField("person_credential")  # the patient's credential stays at the node
    assert [line.item.med_list_codg for line in bill.lines] == [line.code for line in BILL]
    assert sum(line.classification.det_item_fee_sumamt_fen for line in bill.lines) == bill_total_fen(BILL)
    expected, without_reduction = _expected(played, bill)
    before = accumulators(played.federation, LANGFANG, played.unfiled_psn_no, played.year)

    request_id = message_id(LANGFANG)
    answer = played.reimburse(request_id)

    amounts = answer.result.amounts
    assert answer.bill_id == played.self_pay_bill.bill_id
    assert answer.person.psn_no == played.unfiled_psn_no
    assert answer.result.explanation.filing_category == ""  # not filed
    assert (amounts.medfee_sumamt_fen, amounts.inscp_scp_amt_fen, amounts.act_pay_dedc_fen) == (
        to_fen(expected.medfee_sumamt),
        to_fen(expected.inscp_scp_amt),
        to_fen(expected.act_pay_dedc),
    )
    assert (amounts.fund_pay_sumamt_fen, amounts.psn_part_amt_fen, amounts.acct_pay_fen) == (
        to_fen(expected.fund_pay_sumamt),
        to_fen(expected.psn_part_amt),
        0,
    )
    assert 0 < amounts.fund_pay_sumamt_fen < to_fen(without_reduction.fund_pay_sumamt)  # unreferred: 50%
    assert list(answer.result.items) == [line.classification for line in bill.lines]
    moved = dict(before)
    for change in answer.result.accumulator_changes:
        key = f"{kind_name(change.kind)}:{change.key}"
        moved[key] = moved.get(key, 0) + change.delta_fen
    after = accumulators(played.federation, LANGFANG, played.unfiled_psn_no, played.year)
    assert after == {key: value for key, value in moved.items() if value} != before

    assert played.reimburse(request_id) == answer  # a repeat is answered, nothing moves again
    with pytest.raises(grpc.RpcError) as refused:
        played.reimburse(message_id(LANGFANG))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(refused.value)["ErrorInfo"].reason == "ALREADY_SETTLED"
    assert accumulators(played.federation, LANGFANG, played.unfiled_psn_no, played.year) == after

    # The reconciliation compares settlements across nodes: a reimbursement is Langfang's alone.
    listed = played.insured().ListSettlementRecords(
        api.ListSettlementRecordsRequest(
            route=settlement_pb2.Route(destination_admdvs=LANGFANG),
            side=api.RECORD_SIDE_INSURED,
            start_time=timestamp_message(datetime.now(UTC) - timedelta(days=1)),
            end_time=timestamp_message(datetime.now(UTC) + timedelta(minutes=1)),
        ),
        timeout=DEADLINE_S,
    )
    assert [record.setl_id for record in listed.records] == [played.settlement.setl_id]


def test_a_billed_visit_never_also_settles_directly(played: Played) -> None:
    """The insured place may reimburse a bill naming its visit: the hospital can no longer settle that visit."""
    assert played.billed_visit_settle_refusal == "BILLED_FOR_REIMBURSEMENT"
    bill = (
        played.insured()
        .GetBill(api.GetBillRequest(bill_id=played.billed_visits_bill.bill_id), timeout=DEADLINE_S)
        .bill
    )
    assert bill.visit.mdtrt_id == played.billed_visits_bill.mdtrt_id and not bill.visit.setl_id
