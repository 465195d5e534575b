"""Several funds in one settlement across the tree (issue 21): a Jiaxing hospital settles a filed
Langfang civil servant on medical assistance, whose policy names every further fund and 门诊共济.

One federation per database (Jiaxing under Zhejiang, Langfang under Hebei, the national node).
The settlement's fund fields, the insured node's fund accumulators and their exact restoration
by the reversal are read through the stubs; the amounts are the core's for the same bill. The
family account (门诊共济) is debited in the insured ledger: later visits find only what is left.
"""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from federation.federation_support import accumulators, journal, open_visit, topology

from yidi.catalogue.v1 import policy_service_pb2, policy_service_pb2_grpc
from yidi.filing.v1 import filing_service_pb2, insured_person_pb2
from yidi.settlement.v1 import insured_settlement_service_pb2 as api
from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as api_grpc
from yidi.settlement.v1 import settlement_pb2, settlement_service_pb2
from yidi_codec.policies import policy_from_proto
from yidi_codec.results import item_result_from_proto
from yidi_codec.visits import visit_from_proto
from yidi_core.accumulators import AccumulatorKind
from yidi_core.money import from_fen, to_fen
from yidi_core.settlement import Person, Settlement, settle_classified
from yidi_harness.federation import (
    SAMPLE_DATA,
    Federation,
    load_sample_data,
    region_operator,
    start_federation,
)
from yidi_harness.stories import BillLine, Encounter, Stage
from yidi_runtime.peers import message_id
from yidi_runtime.wire import date_message

JIAXING, LANGFANG = "330400", "131000"
REGIONS = ("000000", "330000", JIAXING, "130000", LANGFANG)
HOSPITAL = "H33040200001"
DEADLINE_S = 20.0
FAMILY_FEN = 30_000
BILL = (
    BillLine("001102000010000", "床位费", "2", "60.00"),
    BillLine("003106050020000", "经皮冠状动脉支架置入术", "1", "18000.00"),
    BillLine("C0203010340000000001", "冠脉支架(自费型号)", "1", "1200.00"),
)
FUNDS = {
    "supplementary": {"ratio": "0.90", "cap": "300000.00"},
    "serious_illness": {
        "threshold": "1000.00",
        "segments": [{"from": "0.00", "ratio": "0.60"}, {"from": "5000.00", "ratio": "0.70"}],
        "cap": "400000.00",
    },
    "civil_servant": {"deductible_ratio": "0.50", "selfpay_ratio": "0.30"},
    "assistance": {"ratio": "0.50", "cap": "500.00", "categories": ["dibao"]},
}


@dataclass(frozen=True)
class Settled:
    federation: Federation
    stage: Stage
    settlement: settlement_pb2.Settlement
    psn_no: str
    year: int
    visit: Encounter


def _import_policy_with_funds(federation: Federation, effective: date) -> None:
    """Langfang's sample employee policy, with every further fund and the family account, from ``effective``."""
    document = tomllib.loads((SAMPLE_DATA / "policies" / "131000-310-langfang.toml").read_text("utf-8"))
    document |= {"funds": FUNDS, "family_account": True}
    policy_service_pb2_grpc.PolicyServiceStub(
        federation.channel(LANGFANG, region_operator(LANGFANG))
    ).ImportPolicy(
        policy_service_pb2.ImportPolicyRequest(
            request_id=message_id(LANGFANG),
            insuplc_admdvs=LANGFANG,
            insutype="310",
            effective_date=date_message(effective),
            format=policy_service_pb2.POLICY_FORMAT_JSON,
            document=json.dumps(document).encode(),
        ),
        timeout=DEADLINE_S,
    )


@pytest.fixture(scope="module")
def settled(
    module_database_factory: Callable[[], str | None], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settled]:
    with start_federation(
        topology(*REGIONS), tmp_path_factory.mktemp("funds"), module_database_factory
    ) as federation:
        load_sample_data(federation)
        stage = Stage(federation, datetime.now(UTC))
        _import_policy_with_funds(federation, date(stage.today.year, 1, 1))
        [patient] = stage.enrol_and_file(LANGFANG, JIAXING, 1, 801, "Langfang civil servant")
        # The insured place records the person's facts the funds read (an import updates by ID number).
        filing = stage.filing_stub(LANGFANG)
        enrolled = filing.ImportInsuredPersons(
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
                        civil_servant=True,
                        assistance_category="dibao",
                        family_account_balance_fen=FAMILY_FEN,
                    )
                ],
            ),
            timeout=DEADLINE_S,
        )
        visit = Encounter(
            patient=patient,
            fixmedins_code=HOSPITAL,
            med_type="21",
            service_date=stage.today,
            begin_time=stage.earlier_today(6),
            end_time=stage.now,
            diagnoses=("I21.000",),
            bill=BILL,
        )
        window = stage.window(HOSPITAL)
        _, settle = open_visit(window, visit)
        settle.acct_used_flag = True
        settlement = window.settle(settle)
        yield Settled(federation, stage, settlement, enrolled.psn_nos[0], stage.today.year, visit)


def _expected(settled: Settled) -> Settlement:
    """What the core pays for the bill as the insured node read it, under Langfang's policy in force."""
    operator = settled.federation.channel(LANGFANG, region_operator(LANGFANG))
    bill = (
        api_grpc.InsuredSettlementServiceStub(operator)
        .GetBill(api.GetBillRequest(setl_id=settled.settlement.setl_id), timeout=DEADLINE_S)
        .bill
    )
    policy = (
        policy_service_pb2_grpc.PolicyServiceStub(operator)
        .GetPolicy(
            policy_service_pb2.GetPolicyRequest(
                insuplc_admdvs=LANGFANG, insutype="310", date=bill.facts.service_date
            ),
            timeout=DEADLINE_S,
        )
        .policy
    )
    person = Person(
        insutype="310",
        psn_type="1101",
        filing_category="temporary_other",
        use_account=True,
        civil_servant=True,
        assistance_category="dibao",
        family_account_balance=from_fen(FAMILY_FEN),
        use_family_account=True,
    )
    items = [item_result_from_proto(line.classification, index) for index, line in enumerate(bill.lines)]
    return settle_classified(visit_from_proto(bill.facts), person, policy_from_proto(policy), items)


def test_every_fund_pays_as_the_core_says_and_the_insured_node_counts_it(settled: Settled) -> None:
    amounts = settled.settlement.result.amounts
    core = _expected(settled)
    paid = [amounts.hifob_pay_fen, amounts.hifmi_pay_fen, amounts.cvlserv_pay_fen, amounts.maf_pay_fen]
    assert paid == [
        to_fen(core.hifob_pay),
        to_fen(core.hifmi_pay),
        to_fen(core.cvlserv_pay),
        to_fen(core.maf_pay),
    ]
    assert amounts.hifmi_pay_fen > 0 and amounts.cvlserv_pay_fen > 0
    assert amounts.maf_pay_fen == 50_000  # the assistance cap, 500.00
    assert amounts.fund_pay_sumamt_fen == amounts.hifp_pay_fen + sum(paid) == to_fen(core.fund_pay_sumamt)
    assert amounts.acct_mulaid_pay_fen == FAMILY_FEN  # the family account's whole balance
    assert (
        amounts.psn_part_amt_fen
        == amounts.acct_pay_fen + amounts.acct_mulaid_pay_fen + amounts.psn_cash_pay_fen
    )
    assert {line.fund_pay_type for line in settled.settlement.result.fund_lines} >= {
        "390200",
        "320100",
        "610100",
    }

    counted = accumulators(settled.federation, LANGFANG, settled.psn_no, settled.year)
    assert counted["fund:serious_illness_paid"] == amounts.hifmi_pay_fen
    assert counted["fund:assistance"] == amounts.maf_pay_fen
    assert counted["fund:serious_illness"] == to_fen(
        core.accumulators_after[AccumulatorKind.FUND]["serious_illness"]
    )


def test_the_national_journal_counts_the_family_account_with_the_account(settled: Settled) -> None:
    amounts = settled.settlement.result.amounts
    deadline = time.monotonic() + DEADLINE_S
    while not (
        found := [e for e in journal(settled.federation, "330000") if e.setl_id == settled.settlement.setl_id]
    ):
        assert time.monotonic() < deadline, "the settlement never reached the national journal"
        time.sleep(0.2)
    [entry] = found
    assert entry.fund_pay_sumamt_fen == amounts.fund_pay_sumamt_fen
    assert entry.acct_pay_fen == amounts.acct_pay_fen + amounts.acct_mulaid_pay_fen
    assert entry.medfee_sumamt_fen == entry.fund_pay_sumamt_fen + entry.acct_pay_fen + entry.psn_cash_pay_fen


def _reverse(settled: Settled, settlement: settlement_pb2.Settlement) -> settlement_pb2.Settlement:
    window = settled.stage.window(HOSPITAL)
    return window.stub.ReverseSettlement(
        settlement_service_pb2.ReverseSettlementRequest(
            request_id=window.request_id(),
            envelope=window.envelope(LANGFANG),
            setl_id=settlement.setl_id,
            mdtrt_id=settlement.mdtrt_id,
            psn_no=settlement.psn_no,
        ),
        timeout=DEADLINE_S,
    ).reversal


def test_the_reversal_restores_every_fund_accumulator(settled: Settled) -> None:
    settlement = settled.settlement
    reversal = _reverse(settled, settlement)
    original = settlement.result.amounts
    for name in ("hifob_pay_fen", "hifmi_pay_fen", "cvlserv_pay_fen", "maf_pay_fen", "acct_mulaid_pay_fen"):
        assert getattr(reversal.result.amounts, name) == -getattr(original, name), name
    counted = accumulators(settled.federation, LANGFANG, settled.psn_no, settled.year)
    assert not {key for key in counted if key.startswith("fund:")}, counted


def test_the_family_account_is_debited_once_and_restored_by_a_reversal(settled: Settled) -> None:
    """After the first visit's reversal the family account holds its whole balance again: a visit spends
    it (its replay spends nothing more), the next finds nothing left, a reversal gives it back exactly."""
    window = settled.stage.window(HOSPITAL)

    def settle() -> tuple[settlement_service_pb2.SettleRequest, settlement_pb2.Settlement]:
        _, request = open_visit(window, settled.visit)
        request.acct_used_flag = True
        return request, window.settle(request)

    request, spent = settle()
    assert spent.result.amounts.acct_mulaid_pay_fen == FAMILY_FEN
    assert window.settle(request).setl_id == spent.setl_id  # the replay answers from the log
    assert window.verify(settled.visit).family_account_balance_fen == 0
    _, nothing_left = settle()
    amounts = nothing_left.result.amounts
    assert amounts.acct_mulaid_pay_fen == 0
    assert amounts.psn_part_amt_fen == amounts.acct_pay_fen + amounts.psn_cash_pay_fen
    assert _reverse(settled, spent).result.amounts.acct_mulaid_pay_fen == -FAMILY_FEN
    assert window.verify(settled.visit).family_account_balance_fen == FAMILY_FEN
    _, again = settle()
    assert again.result.amounts.acct_mulaid_pay_fen == FAMILY_FEN  # restored exactly, debited once
