"""Three-way reconciliation on a federation: each planted class of difference is found, and repair leaves none.

The tree is the national node, Zhejiang with the Jiaxing city node, Qinghai, and Hebei with
the Langfang city node; settlements are made at the hospitals' windows through the HIS stubs
(``yidi_harness.stories.Window``): a Qinghai resident at a Jiaxing hospital (cross-province) and
a Langfang retiree at a Shijiazhuang hospital (in-province, never journalled).

Holes the public API cannot make — a delivered message lost on the way — are planted with
direct SQL on one node's database, each said where it is done:

- a journal row deleted at the national node (MISSING_AT_NATIONAL), for a settlement, for a
  reversal whose settlement the journal holds, and for both a settlement and its reversal;
- at the Qinghai node, a confirmed application put back to an unconfirmed hold that will not
  time out for years, as if the Jiaxing node's confirmation had never arrived and the hold
  worker could not reach it (the Qinghai–Jiaxing hole: STALE_HOLD, resolved by repair through
  the Jiaxing node's answer, never by the national node's say);
- a journal row's amounts changed at the national node (AMOUNT_DIFFERS).

An application only the insured node holds (MISSING_AT_TREATMENT) is made through the public
InsuredSettlementService (ApplySettlement and ConfirmSettlement with no Settle behind them),
and so is a young hold, which is in flight and not a discrepancy. The national node may not
void the confirmed one (it is not the node that applied it): that is left to an operator. The run's report is read
through ListReconciliationLines.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy import delete, update

from yidi.clearing.v1 import clearing_service_pb2 as clearing_api
from yidi.clearing.v1 import clearing_service_pb2_grpc as clearing_grpc
from yidi.clearing.v1 import journal_pb2, reconciliation_pb2, statement_pb2
from yidi.filing.v1 import filing_pb2, filing_service_pb2
from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as insured_grpc
from yidi.settlement.v1 import settlement_pb2, settlement_service_pb2
from yidi.type.v1 import filing_category_pb2
from yidi_core.codes import NATIONAL_REGION
from yidi_harness.federation import Federation, NodeSpec, Topology, load_sample_data, start_federation
from yidi_harness.polling import eventually
from yidi_harness.stories import (
    LANGFANG_RETIREE,
    QINGHAI_RESIDENT,
    QINGHAI_RESIDENT_ENROLMENT,
    BillLine,
    Encounter,
    Patient,
    Stage,
    StoryResult,
    file_for,
)
from yidi_runtime.config import Role
from yidi_runtime.db import Database
from yidi_runtime.peers import message_id
from yidi_runtime.wire import china_day, date_message, timestamp_message
from yidi_services.clearing.models import JournalEntryRecord
from yidi_services.settlement.insured.models import ApplicationRow
from yidi_testing import error_details

TOPOLOGY = Topology(
    (
        NodeSpec(NATIONAL_REGION, Role.NATIONAL, "national"),
        NodeSpec("130000", Role.PROVINCE, "hebei", NATIONAL_REGION),
        NodeSpec("330000", Role.PROVINCE, "zhejiang", NATIONAL_REGION),
        NodeSpec("630000", Role.PROVINCE, "qinghai", NATIONAL_REGION),
        NodeSpec("131000", Role.CITY, "langfang", "130000"),
        NodeSpec("330400", Role.CITY, "jiaxing", "330000"),
    )
)
JIAXING_HOSPITAL = "H33040200001"
SHIJIAZHUANG_HOSPITAL = "H13010500001"
DEADLINE_S = 20.0
STALE_HOLD_S = 1.0
_SETL_SEQUENCE = itertools.count(1)
KINDS = reconciliation_pb2.DiscrepancyKind


@pytest.fixture
def federation(tmp_path: Path, database_factory: Callable[[], str | None]) -> Iterator[Federation]:
    """The tree loaded with the samples; the Qinghai resident enrolled and filed for Jiaxing, the Langfang retiree for Shijiazhuang."""
    with start_federation(
        TOPOLOGY, tmp_path, database_factory, clearing_stale_hold_s=STALE_HOLD_S
    ) as started:
        load_sample_data(started)
        stage = Stage(started, datetime.now(UTC))
        stage.filing_stub("630000").ImportInsuredPersons(
            filing_service_pb2.ImportInsuredPersonsRequest(
                request_id=message_id("630000"), persons=[QINGHAI_RESIDENT_ENROLMENT]
            ),
            timeout=DEADLINE_S,
        )
        file_for(
            stage,
            blank(QINGHAI_RESIDENT, JIAXING_HOSPITAL),
            treatment_admdvs="330400",
            category=filing_category_pb2.FILING_CATEGORY_REFERRAL,
            channel=filing_pb2.FILING_CHANNEL_NATIONAL_APP,
            materials=filing_pb2.FilingMaterials(referral_proof_id="QH-ZZ-0001"),
        )
        file_for(
            stage,
            blank(LANGFANG_RETIREE, SHIJIAZHUANG_HOSPITAL),
            treatment_admdvs="130100",
            category=filing_category_pb2.FILING_CATEGORY_TEMPORARY_OTHER,
            channel=filing_pb2.FILING_CHANNEL_NATIONAL_MINI_PROGRAM,
        )
        yield started


def blank(patient: Patient, fixmedins_code: str) -> StoryResult:
    return StoryResult(0, patient.who, patient.who, patient, fixmedins_code)


def stay(stage: Stage, patient: Patient, fixmedins_code: str) -> Encounter:
    """A short inpatient stay discharged now."""
    return Encounter(
        patient=patient,
        fixmedins_code=fixmedins_code,
        med_type="21",
        service_date=stage.today,
        begin_time=stage.earlier_today(2),
        end_time=stage.now,
        diagnoses=("I21.000",),
        bill=(
            BillLine("001102000010000", "床位费", "3", "60.00"),
            BillLine("003106050020000", "经皮冠状动脉支架置入术", "1", "8000.00"),
            BillLine("XJ01DDT071B002010100003", "注射用头孢曲松钠", "4", "15.00"),
        ),
    )


@dataclass
class Settled:
    """A settlement as the HIS received it, with what the window saw on the way."""

    settlement: settlement_pb2.Settlement
    uploaded: settlement_service_pb2.UploadFeeItemsResponse
    visit: Encounter

    @property
    def msgid(self) -> str:
        return self.settlement.medins_setl_id


def settle(federation: Federation, patient: Patient, fixmedins_code: str) -> Settled:
    """The window's flow: 1101, 2401, 2301, 2402, 2304."""
    stage = Stage(federation, datetime.now(UTC))
    visit = stay(stage, patient, fixmedins_code)
    window = stage.window(fixmedins_code)
    person = window.verify(visit)
    registered = window.register(visit, person)
    uploaded = window.upload(visit, registered)
    registered = window.discharge(visit, registered)
    settlement = window.settle(window.settle_request(visit, registered, window.request_id()))
    return Settled(settlement, uploaded, visit)


def reverse(federation: Federation, settled: Settled) -> settlement_pb2.Settlement:
    """2305: the hospital refunds the stay."""
    window = Stage(federation, datetime.now(UTC)).window(settled.visit.fixmedins_code)
    original = settled.settlement
    return window.stub.ReverseSettlement(
        settlement_service_pb2.ReverseSettlementRequest(
            request_id=window.request_id(),
            envelope=window.envelope(original.insuplc_admdvs),
            setl_id=original.setl_id,
            mdtrt_id=original.mdtrt_id,
            psn_no=original.psn_no,
        ),
        timeout=DEADLINE_S,
    ).reversal


def insured_only(federation: Federation, like: Settled, *, confirm: bool) -> str:
    """An application at the Qinghai node with no Settle behind it (the id a Settle would derive); its msgid."""
    msgid = message_id(JIAXING_HOSPITAL)
    setl_id = f"330400{next(_SETL_SEQUENCE):024d}"
    stub = insured_grpc.InsuredSettlementServiceStub(federation.channel("630000"))
    route = settlement_pb2.Route(origin_admdvs="330400", destination_admdvs="630000")
    totals = insured_api.ClassifiedTotals()
    for line in like.uploaded.results:
        totals.medfee_sumamt_fen += line.det_item_fee_sumamt_fen
        totals.fulamt_ownpay_amt_fen += line.fulamt_ownpay_amt_fen
        totals.overlmt_selfpay_fen += line.overlmt_amt_fen
        totals.preselfpay_amt_fen += line.preselfpay_amt_fen
        totals.inscp_scp_amt_fen += line.inscp_scp_amt_fen
    stub.ApplySettlement(
        insured_api.ApplySettlementRequest(
            request_id=f"{JIAXING_HOSPITAL}/{msgid}:apply",
            route=route,
            psn_no=like.settlement.psn_no,
            insutype=like.settlement.insutype,
            facts=like.visit.facts,
            items=like.uploaded.results,
            totals=totals,
            setl_id=setl_id,
            catalogue_version=like.uploaded.catalogue_version,
        ),
        timeout=DEADLINE_S,
    )
    if confirm:
        stub.ConfirmSettlement(
            insured_api.ConfirmSettlementRequest(
                request_id=f"{msgid}:confirm",
                route=route,
                original_request_id=f"{JIAXING_HOSPITAL}/{msgid}:apply",
                setl_id=setl_id,
            ),
            timeout=DEADLINE_S,
        )
    return msgid


# -- reading what the nodes hold ------------------------------------------------------------------


def clearing(federation: Federation) -> clearing_grpc.ClearingServiceStub:
    return clearing_grpc.ClearingServiceStub(federation.channel(NATIONAL_REGION))


def journal(federation: Federation) -> dict[str, journal_pb2.JournalEntry]:
    """The national journal by msgid."""
    found: dict[str, journal_pb2.JournalEntry] = {}
    token = ""
    while True:
        page = clearing(federation).ListJournalEntries(
            clearing_api.ListJournalEntriesRequest(page_size=1000, page_token=token), timeout=DEADLINE_S
        )
        found.update((entry.msgid, entry) for entry in page.entries)
        token = page.next_page_token
        if not token:
            return found


def records(
    federation: Federation, region: str, side: int, *, via: str | None = None, page_size: int = 0
) -> tuple[list[insured_api.SettlementRecord], list[str], int]:
    """Every record a node lists of one side today (asked through ``via``): records, children, pages."""
    stub = insured_grpc.InsuredSettlementServiceStub(federation.channel(via or region))
    now = datetime.now(UTC)
    listed: list[insured_api.SettlementRecord] = []
    token, pages = "", 0
    while True:
        page = stub.ListSettlementRecords(
            insured_api.ListSettlementRecordsRequest(
                route=settlement_pb2.Route(destination_admdvs=region),
                side=side,
                start_time=timestamp_message(now - timedelta(days=1)),
                end_time=timestamp_message(now + timedelta(days=1)),
                page_size=page_size,
                page_token=token,
            ),
            timeout=DEADLINE_S,
        )
        listed += page.records
        pages += 1
        token = page.next_page_token
        if not token:
            return listed, list(page.child_regions), pages


def held_at_qinghai(federation: Federation) -> dict[str, insured_api.SettlementRecord]:
    listed, _, _ = records(federation, "630000", insured_api.RECORD_SIDE_INSURED)
    return {record.msgid: record for record in listed}


def database(federation: Federation, region: str, service: str) -> Database:
    """One service's database on one node, for planting a hole the API cannot make."""
    return next(s.database for s in federation.nodes[region].services if s.group.name == service)


def reconcile(federation: Federation, first: date, last: date) -> reconciliation_pb2.ReconciliationRun:
    """Reconcile the days and wait (bounded) for the run to finish."""
    stub = clearing(federation)
    run = stub.Reconcile(
        clearing_api.ReconcileRequest(
            request_id=message_id(NATIONAL_REGION),
            start_date=date_message(first),
            end_date=date_message(last),
        ),
        timeout=DEADLINE_S,
    ).run
    finished = (statement_pb2.JOB_STATE_SUCCEEDED, statement_pb2.JOB_STATE_FAILED)

    def done() -> bool:
        nonlocal run
        run = stub.GetReconciliationRun(
            clearing_api.GetReconciliationRunRequest(run_id=run.run_id), timeout=DEADLINE_S
        ).run
        return run.state in finished

    eventually(done, within_s=60, what="the reconciliation run finished")
    assert run.state == statement_pb2.JOB_STATE_SUCCEEDED
    return run


def discrepancies(
    federation: Federation, run_id: str, *, open_only: bool = False
) -> list[reconciliation_pb2.Discrepancy]:
    found: list[reconciliation_pb2.Discrepancy] = []
    token = ""
    while True:
        page = clearing(federation).ListDiscrepancies(
            clearing_api.ListDiscrepanciesRequest(
                run_id=run_id, open_only=open_only, page_size=2, page_token=token
            ),
            timeout=DEADLINE_S,
        )
        found += page.discrepancies
        token = page.next_page_token
        if not token:
            return found


def by_kind(found: list[reconciliation_pb2.Discrepancy]) -> set[tuple[str, str]]:
    return {(d.msgid, KINDS.Name(d.kind)) for d in found}


def report(federation: Federation, run_id: str) -> tuple[list[reconciliation_pb2.ReconciliationLine], int]:
    """A run's report lines, read one line a page: the lines and the pages it took."""
    lines: list[reconciliation_pb2.ReconciliationLine] = []
    token, pages = "", 0
    while True:
        page = clearing(federation).ListReconciliationLines(
            clearing_api.ListReconciliationLinesRequest(run_id=run_id, page_size=1, page_token=token),
            timeout=DEADLINE_S,
        )
        lines += page.lines
        pages += 1
        token = page.next_page_token
        if not token:
            return lines, pages


def per_pair(lines: list[reconciliation_pb2.ReconciliationLine]) -> dict[tuple[str, str, str], list[int]]:
    """Per (insured province, treatment province, insurance type), over the run's days (it may span
    midnight): count, fees and fund of the treatment, national and insured sides, then the discrepancies."""
    found: dict[tuple[str, str, str], list[int]] = {}
    for line in lines:
        key = (line.insured_province, line.treatment_province, line.insutype)
        numbers = [
            number
            for side in (line.treatment, line.national, line.insured)
            for number in (side.count, side.medfee_sumamt_fen, side.fund_pay_sumamt_fen)
        ]
        numbers.append(line.discrepancy_count)
        found[key] = [old + new for old, new in zip(found.get(key, [0] * 10), numbers, strict=True)]
    return found


def money(settled: Settled) -> tuple[int, int]:
    """A settlement's total fees and fund payment, in fen."""
    amounts = settled.settlement.result.amounts
    return amounts.medfee_sumamt_fen, amounts.fund_pay_sumamt_fen


# -- the tests ---------------------------------------------------------------------------------------


def test_each_planted_difference_is_found_and_repair_leaves_only_what_needs_an_operator(
    federation: Federation,
) -> None:
    first_day = china_day(datetime.now(UTC))
    consistent = settle(federation, QINGHAI_RESIDENT, JIAXING_HOSPITAL)
    unjournalled = settle(federation, QINGHAI_RESIDENT, JIAXING_HOSPITAL)
    hole = settle(federation, QINGHAI_RESIDENT, JIAXING_HOSPITAL)
    tweaked = settle(federation, QINGHAI_RESIDENT, JIAXING_HOSPITAL)
    refunded = settle(federation, QINGHAI_RESIDENT, JIAXING_HOSPITAL)
    reversal = reverse(federation, refunded)
    refunded_unjournalled = settle(federation, QINGHAI_RESIDENT, JIAXING_HOSPITAL)
    reversal_unjournalled = reverse(federation, refunded_unjournalled)
    in_province = settle(federation, LANGFANG_RETIREE, SHIJIAZHUANG_HOSPITAL)
    only_insured = insured_only(federation, consistent, confirm=True)
    young_hold = insured_only(federation, consistent, confirm=False)
    cross = [consistent, unjournalled, hole, tweaked, refunded, refunded_unjournalled]
    reversals = {reversal.medins_setl_id, reversal_unjournalled.medins_setl_id}
    eventually(
        lambda: {s.msgid for s in cross} | reversals <= journal(federation).keys(),
        within_s=DEADLINE_S,
        what="the journal entries are delivered",
    )
    eventually(
        lambda: all(
            held_at_qinghai(federation)[s.msgid].hold_state == insured_api.HOLD_STATE_CONFIRMED
            for s in cross[:4]
        ),
        within_s=DEADLINE_S,
        what="the confirmations reach Qinghai",
    )
    delivered = journal(federation)
    assert in_province.msgid not in delivered, "an in-province settlement is never journalled"

    national = database(federation, NATIONAL_REGION, "clearing")
    lost = [unjournalled.msgid, refunded_unjournalled.msgid, *reversals]
    with national.engine.begin() as connection:  # SQL: the journal lost four deliveries and one was altered
        connection.execute(delete(JournalEntryRecord).where(JournalEntryRecord.msgid.in_(lost)))
        connection.execute(
            update(JournalEntryRecord)
            .where(JournalEntryRecord.msgid == tweaked.msgid)
            .values(
                medfee_sumamt_fen=JournalEntryRecord.medfee_sumamt_fen + 100,
                psn_cash_pay_fen=JournalEntryRecord.psn_cash_pay_fen + 100,
            )
        )
    qinghai = database(federation, "630000", "settlement")
    with qinghai.engine.begin() as connection:  # SQL: the Jiaxing node's confirmation never arrived
        connection.execute(
            update(ApplicationRow)
            .where(ApplicationRow.request_id == f"{JIAXING_HOSPITAL}/{hole.msgid}:apply")
            .values(state="held", confirmed_at=None, hold_expires_at=datetime(2100, 1, 1, tzinfo=UTC))
        )
    assert held_at_qinghai(federation)[hole.msgid].hold_state == insured_api.HOLD_STATE_HELD
    time.sleep(STALE_HOLD_S)  # the hold is now older than the stale-hold age

    last_day = china_day(datetime.now(UTC))
    run = reconcile(federation, first_day, last_day)
    assert run.failure_reason == ""
    found = discrepancies(federation, run.run_id)
    assert by_kind(found) == {
        (unjournalled.msgid, "DISCREPANCY_KIND_MISSING_AT_NATIONAL"),
        (reversal.medins_setl_id, "DISCREPANCY_KIND_MISSING_AT_NATIONAL"),
        (refunded_unjournalled.msgid, "DISCREPANCY_KIND_MISSING_AT_NATIONAL"),
        (reversal_unjournalled.medins_setl_id, "DISCREPANCY_KIND_MISSING_AT_NATIONAL"),
        (hole.msgid, "DISCREPANCY_KIND_STALE_HOLD"),
        (tweaked.msgid, "DISCREPANCY_KIND_AMOUNT_DIFFERS"),
        (only_insured, "DISCREPANCY_KIND_MISSING_AT_TREATMENT"),
    }
    assert young_hold not in {d.msgid for d in found}, "a young hold is in flight"
    assert (run.compared_count, run.discrepancy_count) == (10, 7)
    assert {(d.insured_province, d.treatment_province, d.insutype) for d in found} == {
        ("630000", "330000", "390")
    }
    days = {(day.year, day.month, day.day) for day in (first_day, last_day)}
    assert {(d.day.year, d.day.month, d.day.day) for d in found} <= days
    amounts = next(d for d in found if d.msgid == tweaked.msgid)
    assert amounts.treatment.present and amounts.national.present and amounts.insured.present
    assert amounts.national.medfee_sumamt_fen == amounts.treatment.medfee_sumamt_fen + 100
    assert amounts.national.psn_cash_pay_fen == amounts.treatment.psn_cash_pay_fen + 100
    told = tweaked.settlement.result.amounts
    assert (amounts.treatment.acct_pay_fen, amounts.treatment.psn_cash_pay_fen) == (
        told.acct_pay_fen,
        told.psn_cash_pay_fen,
    )
    assert amounts.treatment.setl_id == amounts.insured.setl_id == tweaked.settlement.setl_id
    assert amounts.treatment.record_time == tweaked.settlement.setl_time
    assert amounts.insured.confirmed and not amounts.treatment.confirmed
    assert amounts.insured.HasField("record_time") and amounts.national.HasField("record_time")
    missing_hold = next(d for d in found if d.msgid == hole.msgid)
    assert missing_hold.treatment.present and missing_hold.national.present
    assert not missing_hold.insured.reversed and not missing_hold.insured.confirmed
    assert missing_hold.setl_id == hole.settlement.setl_id
    assert not any(d.repaired or d.HasField("repair_time") for d in found)

    lines, pages = report(federation, run.run_id)
    assert pages == len(lines) >= 2
    assert {(line.day.year, line.day.month, line.day.day) for line in lines} <= days
    treatment_fees = [money(s) for s in (consistent, unjournalled, hole, tweaked)]
    journalled_fees = [money(s) for s in (consistent, hole, tweaked, refunded)]
    insured_fees = [money(s) for s in (consistent, unjournalled, hole, tweaked)]
    only_insured_fees = held_at_qinghai(federation)[only_insured]
    # Net as 3201 counts: a reversing record takes one off, a voided application is left out.
    assert per_pair(lines) == {
        ("630000", "330000", "390"): [
            4,
            sum(fee for fee, _ in treatment_fees),
            sum(fund for _, fund in treatment_fees),
            4,
            sum(fee for fee, _ in journalled_fees) + 100,
            sum(fund for _, fund in journalled_fees),
            5,
            sum(fee for fee, _ in insured_fees) + only_insured_fees.medfee_sumamt_fen,
            sum(fund for _, fund in insured_fees) + only_insured_fees.fund_pay_sumamt_fen,
            7,
        ],
        ("130000", "130000", in_province.settlement.insutype): [
            1,
            *money(in_province),
            0,
            0,
            0,
            1,
            *money(in_province),
            0,
        ],
    }

    request = clearing_api.RepairDiscrepanciesRequest(
        request_id=message_id(NATIONAL_REGION), run_id=run.run_id
    )
    repaired = clearing(federation).RepairDiscrepancies(request, timeout=60)
    notes = [(KINDS.Name(d.kind), d.repair_note) for d in repaired.discrepancies]
    assert (repaired.repaired_count, repaired.failed_count) == (5, 2), notes
    assert [d.discrepancy_id for d in repaired.discrepancies] == [d.discrepancy_id for d in found]
    assert clearing(federation).RepairDiscrepancies(request, timeout=60) == repaired
    left = [d for d in repaired.discrepancies if not d.repaired]
    assert {d.msgid for d in left} == {tweaked.msgid, only_insured}
    assert all("needs an operator" in d.repair_note and not d.HasField("repair_time") for d in left)
    assert all(d.HasField("repair_time") for d in repaired.discrepancies if d.repaired)

    entries = journal(federation)
    assert (
        entries[unjournalled.msgid].fund_pay_sumamt_fen
        == unjournalled.settlement.result.amounts.fund_pay_sumamt_fen
    )
    # Each reversal is journalled against the settlement its record names, even when that
    # settlement was lost too and is replayed in the same repair.
    assert entries[reversal.medins_setl_id].reverses_msgid == refunded.msgid
    assert entries[reversal_unjournalled.medins_setl_id].reverses_msgid == refunded_unjournalled.msgid
    for msgid in lost:  # what the outbox delivered, visit included: a late delivery is a mere repeat
        replayed, original = entries[msgid], delivered[msgid]
        for entry in (replayed, original):
            entry.ClearField("record_time")
        assert replayed == original
    held = held_at_qinghai(federation)
    assert held[hole.msgid].hold_state == insured_api.HOLD_STATE_CONFIRMED
    assert held[only_insured].hold_state == insured_api.HOLD_STATE_CONFIRMED

    again = reconcile(federation, first_day, china_day(datetime.now(UTC)))
    assert per_pair(report(federation, again.run_id)[0])[("630000", "330000", "390")][-1] == 2
    assert by_kind(discrepancies(federation, again.run_id)) == {
        (tweaked.msgid, "DISCREPANCY_KIND_AMOUNT_DIFFERS"),
        (only_insured, "DISCREPANCY_KIND_MISSING_AT_TREATMENT"),
    }
    retried = clearing(federation).RepairDiscrepancies(
        clearing_api.RepairDiscrepanciesRequest(request_id=message_id(NATIONAL_REGION), run_id=again.run_id),
        timeout=60,
    )
    assert (retried.repaired_count, retried.failed_count) == (0, 2)
    assert discrepancies(federation, run.run_id, open_only=True) == left


def test_each_node_lists_its_own_records_of_either_side_page_by_page(federation: Federation) -> None:
    first = settle(federation, QINGHAI_RESIDENT, JIAXING_HOSPITAL)
    second = settle(federation, QINGHAI_RESIDENT, JIAXING_HOSPITAL)
    reversal = reverse(federation, second)
    eventually(
        lambda: held_at_qinghai(federation)[first.msgid].hold_state == insured_api.HOLD_STATE_CONFIRMED,
        within_s=DEADLINE_S,
        what="the confirmation reaches Qinghai",
    )

    listed, children, pages = records(
        federation, "330400", insured_api.RECORD_SIDE_TREATMENT, via=NATIONAL_REGION, page_size=1
    )
    assert (pages, children) == (3, [])
    assert [record.msgid for record in listed] == [first.msgid, second.msgid, reversal.medins_setl_id]
    original, undo = listed[1], listed[2]
    assert original.reversed and not undo.reversed
    assert (undo.reverses_msgid, original.reverses_msgid, listed[0].reverses_msgid) == (second.msgid, "", "")
    assert [record.mdtrt_id for record in listed] == [
        first.settlement.mdtrt_id,
        second.settlement.mdtrt_id,
        reversal.mdtrt_id,
    ]
    assert reversal.mdtrt_id == second.settlement.mdtrt_id
    assert undo.medfee_sumamt_fen == -original.medfee_sumamt_fen < 0
    assert (original.insuplc_admdvs, original.mdtrtarea_admvs, original.clr_type) == (
        "630000",
        "330402",
        "21",
    )
    assert records(federation, "330000", insured_api.RECORD_SIDE_TREATMENT)[:2] == ([], ["330400"])

    insured = held_at_qinghai(federation)
    assert insured[first.msgid].hold_state == insured_api.HOLD_STATE_CONFIRMED
    assert insured[first.msgid].fund_pay_sumamt_fen == first.settlement.result.amounts.fund_pay_sumamt_fen
    assert (insured[first.msgid].insuplc_admdvs, insured[first.msgid].insutype) == ("630000", "390")
    assert (
        insured[second.msgid].reversed and insured[second.msgid].hold_state == insured_api.HOLD_STATE_VOIDED
    )
    assert reversal.medins_setl_id not in insured
    assert not any(record.mdtrt_id or record.reverses_msgid for record in insured.values())

    stub = insured_grpc.InsuredSettlementServiceStub(federation.channel("330400"))
    now = datetime.now(UTC)
    with pytest.raises(grpc.RpcError) as refused:
        stub.ListSettlementRecords(
            insured_api.ListSettlementRecordsRequest(
                route=settlement_pb2.Route(destination_admdvs="330400"),
                start_time=timestamp_message(now),
                end_time=timestamp_message(now - timedelta(hours=1)),
            ),
            timeout=DEADLINE_S,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = {v.field for v in error_details(refused.value)["BadRequest"].field_violations}
    assert fields == {"side", "end_time"}
