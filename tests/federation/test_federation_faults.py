"""Settlement across the tree when nodes fail, answers are lost and many settle at once, through the HIS stubs.

Each test starts the smallest part of the demo tree it needs (on SQLite files and on
PostgreSQL), loads the samples through the stubs, and plays the hospital's window with
`yidi_harness.stories` (Window, Encounter, file_for, treat). Assertions read only what the stubs
answer and what the nodes show on their public surface (ListSettlements, GetAccumulators,
ListJournalEntries, /metrics).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from federation_support import (
    DatabaseFactory,
    accumulators,
    changes_of,
    correct_settle,
    journal,
    loaded_federation,
    open_visit,
    outbox_backlog,
    record_for,
    restart,
    settlements_at,
    stage_of,
)
from google.type.date_pb2 import Date

from yidi.catalogue.v1 import policy_service_pb2, policy_service_pb2_grpc
from yidi.clearing.v1 import journal_pb2
from yidi.filing.v1 import filing_pb2, filing_service_pb2
from yidi.settlement.v1 import settlement_pb2, settlement_service_pb2
from yidi.type.v1 import filing_category_pb2
from yidi_core.money import round_fen, to_fen
from yidi_harness.polling import eventually
from yidi_harness.stories import (
    LANGFANG_RETIREE,
    QINGHAI_RESIDENT,
    QINGHAI_RESIDENT_ENROLMENT,
    STORIES,
    BillLine,
    Encounter,
    Stage,
    bill_total_fen,
    file_for,
    journal_entries,
    refusal_reason,
    treat,
)
from yidi_runtime.outbox import OutboxDeliverer
from yidi_runtime.peers import message_id
from yidi_runtime.wire import CHINA_STANDARD_TIME
from yidi_testing import worker_of

NATIONAL, BEIJING, HEBEI, LANGFANG = "000000", "110000", "130000", "131000"
ZHEJIANG, QINGHAI, JIAXING = "330000", "630000", "330400"
SHIJIAZHUANG_HOSPITAL = "H13010500001"
BEIJING_HOSPITAL = "H11010500001"
JIAXING_HOSPITAL = "H33040200001"
HIS_RETRY_PAUSE_S = 1.0
SETTLEMENT, REVERSAL = journal_pb2.JOURNAL_ENTRY_KIND_SETTLEMENT, journal_pb2.JOURNAL_ENTRY_KIND_REVERSAL


def _inpatient_today(stage: Stage, fixmedins_code: str, bill: tuple[BillLine, ...]) -> Encounter:
    """The Langfang retiree's stay admitted this morning and discharged now (a coronary stent)."""
    return Encounter(
        patient=LANGFANG_RETIREE,
        fixmedins_code=fixmedins_code,
        med_type="21",
        service_date=stage.today,
        begin_time=stage.earlier_today(6),
        end_time=stage.now,
        diagnoses=("I21.000",),
        bill=bill,
    )


def _file_temporary(stage: Stage, treatment_admdvs: str, fixmedins_code: str) -> str:
    """The Langfang retiree files for ``treatment_admdvs`` in the mini program (Langfang approves at once); its id."""
    filing = file_for(
        stage,
        record_for(LANGFANG_RETIREE, fixmedins_code),
        treatment_admdvs=treatment_admdvs,
        category=filing_category_pb2.FILING_CATEGORY_TEMPORARY_OTHER,
        channel=filing_pb2.FILING_CHANNEL_NATIONAL_MINI_PROGRAM,
    )
    assert filing.state == filing_pb2.FILING_STATE_APPROVED
    return filing.filing_id


def test_an_in_province_settlement_needs_no_national_node_and_sends_it_nothing(
    tmp_path: Path, database_factory: DatabaseFactory
) -> None:
    """省内异地: a Langfang retiree in a Shijiazhuang hospital settles Hebei node ↔ Langfang node, pay_loc 3.

    The national node is down throughout. Had the Hebei node queued anything for it (a journal
    entry), that message could not leave: once the pass that delivered the settlement's
    confirmation to Langfang has refreshed /metrics, the backlog toward 000000 must still be
    nothing. A cross-province settlement, once the national node is back, has pay_loc 4 and
    exactly one journal entry; the journal never hears of the in-province one.
    """
    regions = (NATIONAL, BEIJING, HEBEI, LANGFANG)
    with loaded_federation(tmp_path, database_factory, regions, metrics_port=0) as federation:
        stage = stage_of(federation)
        temporary = _file_temporary(stage, HEBEI, SHIJIAZHUANG_HOSPITAL)
        federation.nodes[NATIONAL].stop(0)

        local = record_for(LANGFANG_RETIREE, SHIJIAZHUANG_HOSPITAL)
        stay = _inpatient_today(
            stage,
            SHIJIAZHUANG_HOSPITAL,
            (
                BillLine("001102000010000", "床位费", "1", "40.00"),
                BillLine("003106050020000", "经皮冠状动脉支架置入术", "1", "16000.00"),
                BillLine("XJ01DDT071B002010100003", "注射用头孢曲松钠", "4", "12.00"),
            ),
        )
        treat(stage, local, stay)
        in_province = local.settlement
        assert in_province is not None
        assert (in_province.pay_loc, in_province.insuplc_admdvs, in_province.mdtrtarea_admvs) == (
            "3",
            LANGFANG,
            "130105",
        )
        assert in_province.setl_id.startswith(HEBEI)
        assert in_province.result.amounts.fund_pay_sumamt_fen > 0

        hebei = federation.nodes[HEBEI]
        eventually(
            lambda: outbox_backlog(hebei).get(LANGFANG) == 0,
            within_s=20,
            what="the Hebei node delivered the confirmation to Langfang",
        )
        assert outbox_backlog(hebei).get(NATIONAL, 0) == 0, "nothing waits for the (stopped) national node"

        restart(federation, NATIONAL)
        # One filing per person at a time: the worked example's long-term Beijing filing replaces it.
        stage.filing_stub(LANGFANG).CancelFiling(
            filing_service_pb2.CancelFilingRequest(request_id=message_id(LANGFANG), filing_id=temporary),
            timeout=20,
        )
        cross = STORIES[0].play(stage)  # the worked example: Langfang retiree, Beijing hospital
        assert cross.ok, (cross.failure, cross.expectations, cross.steps)
        assert cross.settlement is not None and cross.settlement.pay_loc == "4"
        msgid = cross.settlement.medins_setl_id
        [entry] = journal_entries(federation, msgid, HEBEI)
        assert (entry.kind, entry.setl_id) == (SETTLEMENT, cross.settlement.setl_id)
        assert [entry.msgid for entry in journal(federation, HEBEI)] == [msgid]


def test_what_waits_in_the_outbox_leaves_in_batches_and_each_message_takes_effect_once(
    tmp_path: Path, database_factory: DatabaseFactory
) -> None:
    """Three settlements of a Langfang retiree in a Beijing hospital while Beijing's outbox is paused.

    Their confirmations (for Langfang, three hops away) and journal entries (for the
    national node) wait; when the outbox delivers again each kind leaves as one call —
    ConfirmSettlements, and one AppendJournalEntries of three entries — and each settlement
    is confirmed and journalled once.
    """
    regions = (NATIONAL, BEIJING, HEBEI, LANGFANG)
    with loaded_federation(tmp_path, database_factory, regions, metrics_port=0) as federation:
        stage = stage_of(federation)
        _file_temporary(stage, BEIJING, BEIJING_HOSPITAL)
        beijing = federation.nodes[BEIJING]
        deliverer = worker_of(beijing, OutboxDeliverer, "settlement")
        deliverer.stop()
        settled = []
        for _ in range(3):
            record = record_for(LANGFANG_RETIREE, BEIJING_HOSPITAL)
            bill = (BillLine("001102000010000", "床位费", "1", "40.00"),)
            treat(stage, record, _inpatient_today(stage, BEIJING_HOSPITAL, bill))
            assert record.settlement is not None, (record.failure, record.steps)
            settled.append(record.settlement.medins_setl_id)

        assert deliverer.deliver_pending().failed == 0  # one pass, as the deliverer's thread would make
        assert outbox_backlog(beijing).get(LANGFANG) == outbox_backlog(beijing).get(NATIONAL) == 0

        def handled(region: str, service: str, method: str) -> float:
            labels = {"grpc_type": "unary", "grpc_service": service, "grpc_method": method, "grpc_code": "OK"}
            registry = federation.nodes[region].metrics.registry
            return registry.get_sample_value("grpc_server_handled_total", labels) or 0.0

        insured = "yidi.settlement.v1.InsuredSettlementService"
        # One call of each kind carried all three, and each was answered (a refused one would still wait).
        assert handled(LANGFANG, insured, "ConfirmSettlements") == 1.0
        assert handled(LANGFANG, insured, "ConfirmSettlement") == 0.0
        assert handled(NATIONAL, "yidi.clearing.v1.ClearingService", "AppendJournalEntries") == 1.0
        assert sorted(entry.msgid for entry in journal(federation, BEIJING)) == sorted(settled)


@pytest.mark.timeout(60)
def test_fifty_concurrent_settlements_of_one_person_never_pay_more_than_the_annual_cap(
    tmp_path: Path, database_factory: DatabaseFactory
) -> None:
    """50 visits registered first, then settled in 50 parallel threads against one cap of 101.00 yuan.

    The test policy (Langfang employees from 2022-08-01) pays 50% of general outpatient care
    with no deductible, capped at 101.00 a year under "outpatient"; each visit's 10.00-yuan
    blood-glucose test would get 5.00, 250.00 in all. Exactly 101.00 is paid: 20 visits in
    full, one the last 1.00, the rest nothing; every visit the cap limited says cap_exhausted.
    """
    ratio, cap, price = Decimal("0.50"), Decimal("101.00"), Decimal("10.00")
    policy = f"""
[[rules]]
med_types = ["11"]
psn_types = ["*"]
institution_levels = ["*"]
deductible = "0.00"
deductible_scope = "per_visit"
ratio = "{ratio}"
cap = "{cap}"
cap_key = "outpatient"
"""
    day, visits = date(2022, 8, 1), 50
    full_fen, cap_fen = to_fen(round_fen(price * ratio)), to_fen(cap)
    assert visits * full_fen > cap_fen, "the visits together would exceed the cap"

    with loaded_federation(tmp_path, database_factory, (HEBEI, LANGFANG)) as federation:
        stage = stage_of(federation)
        policy_service_pb2_grpc.PolicyServiceStub(federation.channel(LANGFANG)).ImportPolicy(
            policy_service_pb2.ImportPolicyRequest(
                request_id=message_id(LANGFANG),
                insuplc_admdvs=LANGFANG,
                insutype="310",
                effective_date=Date(year=day.year, month=day.month, day=day.day),
                format=policy_service_pb2.POLICY_FORMAT_TOML,
                document=policy.encode(),
            ),
            timeout=20,
        )
        file_for(
            stage,
            record_for(LANGFANG_RETIREE, SHIJIAZHUANG_HOSPITAL),
            treatment_admdvs=HEBEI,
            category=filing_category_pb2.FILING_CATEGORY_RETIREE_RESETTLED,
            channel=filing_pb2.FILING_CHANNEL_NATIONAL_APP,
            start_date=date(2022, 1, 1),
            retroactive=True,
            designated=(SHIJIAZHUANG_HOSPITAL,),
        )
        glucose_test = Encounter(
            patient=LANGFANG_RETIREE,
            fixmedins_code=SHIJIAZHUANG_HOSPITAL,
            med_type="11",
            service_date=day,
            begin_time=datetime(2022, 8, 1, 9, 0, tzinfo=CHINA_STANDARD_TIME),
            diagnoses=("E11.900",),
            bill=(BillLine("002502000010000", "血糖测定", "1", str(price)),),
        )
        window = stage.window(SHIJIAZHUANG_HOSPITAL)
        opened = [open_visit(window, glucose_test) for _ in range(visits)]
        psn_no = opened[0][0].psn_no

        def settle(request: settlement_service_pb2.SettleRequest) -> settlement_pb2.Settlement | str:
            try:
                return window.settle(request)
            except grpc.RpcError as error:
                return f"{refusal_reason(error)}: {error.details()}"  # type: ignore[attr-defined]

        with ThreadPoolExecutor(max_workers=visits) as pool:
            outcomes = list(pool.map(settle, [request for _, request in opened]))

        settled = [outcome for outcome in outcomes if not isinstance(outcome, str)]
        funds = [settlement.result.amounts.fund_pay_sumamt_fen for settlement in settled]
        assert sum(funds) <= cap_fen
        assert accumulators(federation, LANGFANG, psn_no, day.year)["cap:outpatient"] <= cap_fen
        refusals = sorted({outcome for outcome in outcomes if isinstance(outcome, str)})
        assert len(settled) == visits, f"{visits - len(settled)} of {visits} refused: {refusals}"
        assert len({settlement.setl_id for settlement in settled}) == visits
        assert sum(funds) == cap_fen
        in_full = cap_fen // full_fen
        last = cap_fen - in_full * full_fen
        assert sorted(funds, reverse=True) == [full_fen] * in_full + [last] + [0] * (visits - in_full - 1)
        for settlement, fund in zip(settled, funds, strict=True):
            assert settlement.result.amounts.cap_exhausted == (fund < full_fen), settlement.setl_id
        assert accumulators(federation, LANGFANG, psn_no, day.year)["cap:outpatient"] == sum(funds)
        assert len(settlements_at(window)) == visits


def test_a_settlement_whose_answer_was_lost_is_answered_again_then_corrected_away(
    tmp_path: Path, database_factory: DatabaseFactory
) -> None:
    """The HIS loses Settle's answer and retries the same request_id; later it corrects (冲正) that id.

    The retry answers the very settlement made the first time; the insured node moved the
    accumulators once and the national journal holds one entry. The correction reverses it:
    the accumulators are back where they were and the journal holds the reversal.
    """
    regions = (NATIONAL, BEIJING, HEBEI, LANGFANG)
    with loaded_federation(tmp_path, database_factory, regions) as federation:
        stage = stage_of(federation)
        _file_temporary(stage, BEIJING, BEIJING_HOSPITAL)
        window = stage.window(BEIJING_HOSPITAL)
        stay = _inpatient_today(
            stage,
            BEIJING_HOSPITAL,
            (
                BillLine("001102000010000", "床位费", "1", "60.00"),
                BillLine("003106050020000", "经皮冠状动脉支架置入术", "1", "18000.00"),
                BillLine("C0203010340000000002", "冠脉支架(集采型号)", "1", "798.00"),
            ),
        )
        _, request = open_visit(window, stay)

        lost = window.settle(request)  # the answer never reaches the HIS
        answered = window.settle(request)
        assert answered == lost
        assert answered.medins_setl_id == request.request_id
        assert answered.result.amounts.medfee_sumamt_fen == bill_total_fen(stay.bill)
        psn_no, year = answered.psn_no, stay.service_date.year
        moved = changes_of(answered)
        assert moved and accumulators(federation, LANGFANG, psn_no, year) == moved
        [entry] = journal_entries(federation, request.request_id, HEBEI)
        assert (entry.kind, entry.setl_id, entry.fund_pay_sumamt_fen) == (
            SETTLEMENT,
            answered.setl_id,
            answered.result.amounts.fund_pay_sumamt_fen,
        )
        assert [e.msgid for e in journal(federation, HEBEI)] == [request.request_id]

        correction = correct_settle(window, LANGFANG, request.request_id)
        assert correction.outcome == settlement_service_pb2.CORRECTION_OUTCOME_REVERSED
        reversal = correction.reversal
        assert reversal.reverses_setl_id == answered.setl_id
        assert reversal.result.amounts.fund_pay_sumamt_fen == -answered.result.amounts.fund_pay_sumamt_fen
        assert accumulators(federation, LANGFANG, psn_no, year) == {}
        [undone] = journal_entries(federation, reversal.medins_setl_id, HEBEI)
        assert (undone.kind, undone.reverses_msgid, undone.fund_pay_sumamt_fen) == (
            REVERSAL,
            request.request_id,
            -answered.result.amounts.fund_pay_sumamt_fen,
        )
        assert [(s.setl_id, s.reversed) for s in settlements_at(window)] == [
            (answered.setl_id, True),
            (reversal.setl_id, False),
        ]


def test_a_four_hop_settlement_refused_while_the_insured_node_is_down_settles_once_after_its_restart(
    tmp_path: Path, database_factory: DatabaseFactory
) -> None:
    """Jiaxing city → Zhejiang → national → Qinghai, like demo story 2, with Qinghai stopped before Settle.

    Refused INSURED_REGION_UNREACHABLE with nothing recorded at the Jiaxing node; Qinghai
    restarted on its port and its data, the HIS retries the same request_id (the network may
    take a moment to notice the node is back) and the visit settles exactly once.
    """
    regions = (NATIONAL, ZHEJIANG, QINGHAI, JIAXING)
    with loaded_federation(tmp_path, database_factory, regions) as federation:
        stage = stage_of(federation)
        stage.filing_stub(QINGHAI).ImportInsuredPersons(
            filing_service_pb2.ImportInsuredPersonsRequest(
                request_id=message_id(QINGHAI), persons=[QINGHAI_RESIDENT_ENROLMENT]
            ),
            timeout=20,
        )
        file_for(
            stage,
            record_for(QINGHAI_RESIDENT, JIAXING_HOSPITAL),
            treatment_admdvs=JIAXING,
            category=filing_category_pb2.FILING_CATEGORY_REFERRAL,
            channel=filing_pb2.FILING_CHANNEL_NATIONAL_APP,
            materials=filing_pb2.FilingMaterials(referral_proof_id="QH-ZZ-0002"),
        )
        stay = Encounter(
            patient=QINGHAI_RESIDENT,
            fixmedins_code=JIAXING_HOSPITAL,
            med_type="21",
            service_date=stage.today,
            begin_time=stage.earlier_today(6),
            end_time=stage.now,
            diagnoses=("I21.000",),
            bill=(
                BillLine("001102000010000", "床位费", "1", "50.00"),
                BillLine("003106050020000", "经皮冠状动脉支架置入术", "1", "20000.00"),
            ),
        )
        window = stage.window(JIAXING_HOSPITAL)
        assert stage.treatment_node(JIAXING_HOSPITAL) == JIAXING
        _, request = open_visit(window, stay)

        federation.nodes[QINGHAI].stop(0)
        with pytest.raises(grpc.RpcError) as refused:
            window.settle(request)
        assert refusal_reason(refused.value) == "INSURED_REGION_UNREACHABLE"
        assert settlements_at(window) == []

        restart(federation, QINGHAI)
        settled: list[settlement_pb2.Settlement] = []

        def retried() -> bool:
            try:
                settled.append(window.settle(request))
            except grpc.RpcError as error:
                assert refusal_reason(error) == "INSURED_REGION_UNREACHABLE", error
                return False
            return True

        # The HIS retries every second, the first time a second after Qinghai is back: at once, the
        # national node's channel to Qinghai would still be backing off, and that second
        # failure would open its circuit breaker for 10 s (bounded below, only slower).
        time.sleep(HIS_RETRY_PAUSE_S)
        eventually(
            retried, within_s=30, interval_s=HIS_RETRY_PAUSE_S, what="the retry settles once Qinghai is back"
        )
        [settlement] = settled
        assert window.settle(request) == settlement
        assert [s.setl_id for s in settlements_at(window)] == [settlement.setl_id]
        assert (settlement.pay_loc, settlement.insuplc_admdvs) == ("4", QINGHAI)
        assert settlement.setl_id.startswith(JIAXING)
        moved = changes_of(settlement)
        assert moved and accumulators(federation, QINGHAI, settlement.psn_no, stay.service_date.year) == moved
