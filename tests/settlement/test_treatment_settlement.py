"""Direct settlement end to end: a Beijing hospital settles the Langfang retiree's diabetes drugs.

The national authority's worked example (2022-07-01: fund 48.89 yuan, patient 15.40) goes
1101 → 2201 → 2204 → 2206 → 2207 from the Beijing node through the national and Hebei
nodes to the Langfang node, which applies its policy and keeps the accumulators. Then:
repeats, reversal, corrections (冲正) before, after and instead of a settlement, a
suspended institution, and the outbox's confirmation and journal entry.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from loading import BEIJING, LANGFANG, NATIONAL, beijing_tree, load_insured
from sqlalchemy import select
from treatment_his import (
    DRUGS_FEN,
    HOSPITAL,
    correct_request,
    diabetes_visit,
    envelope,
    id_card,
    msgid,
    open_visit,
    refusal,
    settle_request,
    upload,
)

from yidi.clearing.v1 import clearing_service_pb2, clearing_service_pb2_grpc, journal_pb2
from yidi.registry.v1 import institution_pb2
from yidi.registry.v1 import institution_registry_service_pb2 as registry_api
from yidi.registry.v1 import institution_registry_service_pb2_grpc as registry_grpc
from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as insured_grpc
from yidi.settlement.v1 import settlement_pb2
from yidi.settlement.v1 import settlement_service_pb2 as api
from yidi.settlement.v1 import settlement_service_pb2_grpc as api_grpc
from yidi.type.v1 import settlement_result_pb2, visit_pb2
from yidi_harness.polling import eventually
from yidi_runtime.server import Node
from yidi_runtime.settlement_keys import derived_id, settlement_key
from yidi_runtime.wire import as_utc
from yidi_services.settlement.insured.expiry import HoldExpiry
from yidi_services.settlement.insured.models import ApplicationRow
from yidi_services.settlement.models import OutboxMessage
from yidi_testing import error_details, worker_of

CAP = "cap:chronic:M01600"
HOLD_S = 2.0
SETTLEMENT, REVERSAL = journal_pb2.JOURNAL_ENTRY_KIND_SETTLEMENT, journal_pb2.JOURNAL_ENTRY_KIND_REVERSAL
STENT_STAY = (
    ("1", "001102000010000", "10", "60.00"),  # bed days
    ("2", "003106050020000", "1", "28000.00"),  # coronary stent procedure
    ("3", "C0203010340000000002", "1", "900.00"),  # stent (procured model), ceiling 798.00
    ("4", "XJ01DDT071B002010100003", "20", "15.00"),  # ceftriaxone, ceiling 12.00
    ("5", "C0203010340000000001", "1", "1200.00"),  # stent (self-pay model)
)
STENT_STAY_FEN = 3_100_000


def _moment(year: int, month: int, day: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime(year, month, day, 2, 0, tzinfo=UTC))
    return stamp


def accumulators(node: Node, psn_no: str) -> dict[str, int]:
    """The retiree's 2022 accumulators at the insured node (``kind:key`` → fen)."""
    with grpc.insecure_channel(node.address) as channel:
        answer = insured_grpc.InsuredSettlementServiceStub(channel).GetAccumulators(
            insured_api.GetAccumulatorsRequest(psn_no=psn_no, year=2022), timeout=10
        )
    kind = settlement_result_pb2.AccumulatorKind.Name
    return {
        f"{kind(value.kind).removeprefix('ACCUMULATOR_KIND_').lower()}:{value.key}": value.value_fen
        for value in answer.accumulators
        if value.value_fen
    }


def outbox(node: Node) -> dict[str, OutboxMessage]:
    """The treatment node's settlement outbox by message id."""
    [service] = [service for service in node.services if service.group.name == "settlement"]
    with service.database.unit_of_work() as uow:
        rows = uow.session.scalars(select(OutboxMessage)).all()
        uow.session.expunge_all()
    return {row.message_id: row for row in rows}


def hold_expires_at(node: Node, request_id: str) -> datetime:
    """When the insured node's hold of one application times out."""
    [service] = [service for service in node.services if service.group.name == "settlement"]
    with service.database.unit_of_work() as uow:
        row = uow.session.get(ApplicationRow, request_id)
        assert row is not None and row.hold_expires_at is not None
        return as_utc(row.hold_expires_at)


def test_the_worked_example_settles_once_is_confirmed_journaled_and_reversed(
    tmp_path: Path, database_factory: Callable[[], str | None]
) -> None:
    with (
        beijing_tree(tmp_path, database_factory, settlement_hold_timeout_s=HOLD_S) as nodes,
        grpc.insecure_channel(nodes[BEIJING].address) as channel,
    ):
        psn_no = load_insured(nodes)
        stub = api_grpc.SettlementServiceStub(channel)
        verify = api.VerifyPersonRequest(envelope=envelope(insured=""), credential=id_card(), med_type="11")
        verify.service_date.CopyFrom(diabetes_visit(psn_no).facts.service_date)
        person = stub.VerifyPerson(verify, timeout=20).person
        assert (person.psn_no, person.insuplc_admdvs, person.psn_type) == (psn_no, LANGFANG, "1201")

        mdtrt_id = open_visit(stub, psn_no)
        presettle = api.PreSettleRequest(envelope=envelope(), mdtrt_id=mdtrt_id, medfee_sumamt_fen=DRUGS_FEN)
        estimate = stub.PreSettle(presettle, timeout=20).result
        assert (estimate.amounts.fund_pay_sumamt_fen, estimate.amounts.psn_part_amt_fen) == (4889, 1540)
        assert accumulators(nodes[LANGFANG], psn_no) == {}  # a pre-settlement changes nothing
        wrong_total = api.PreSettleRequest(envelope=envelope(), mdtrt_id=mdtrt_id, medfee_sumamt_fen=6400)
        assert refusal(lambda: stub.PreSettle(wrong_total))[1:] == ("AMOUNT_MISMATCH", ["medfee_sumamt_fen"])

        request = settle_request(mdtrt_id)
        settlement = stub.Settle(request, timeout=30).settlement
        amounts = settlement.result.amounts
        assert (amounts.medfee_sumamt_fen, amounts.fund_pay_sumamt_fen, amounts.psn_part_amt_fen) == (
            6429,
            4889,
            1540,
        )
        assert (amounts.psn_cash_pay_fen, amounts.preselfpay_amt_fen) == (1540, 318)
        assert (settlement.setl_id[:6], len(settlement.setl_id)) == (BEIJING, 30)
        assert (settlement.medins_setl_id, settlement.clr_type, settlement.pay_loc) == (
            request.request_id,
            "11",
            "4",
        )
        assert settlement.result.catalogue_version.startswith(BEIJING) and settlement.result.policy_version
        assert settlement.result.explanation.lines and not settlement.audit_flag
        assert [
            (c.key, c.delta_fen) for c in settlement.result.accumulator_changes if c.key == "chronic:M01600"
        ] == [("chronic:M01600", 4889)]

        # The same request again: the same answer, one effect; the same id with other content is refused.
        assert stub.Settle(request, timeout=30).settlement == settlement
        restamped = api.SettleRequest()
        restamped.CopyFrom(request)
        restamped.envelope.inf_time.seconds += 90  # a retry the HIS rebuilt is still the same request
        assert stub.Settle(restamped, timeout=30).settlement == settlement
        assert accumulators(nodes[LANGFANG], psn_no)[CAP] == 4889
        other = settle_request(mdtrt_id, request.request_id, invono="FP0002")
        assert refusal(lambda: stub.Settle(other))[:2] == (
            grpc.StatusCode.ALREADY_EXISTS,
            "DUPLICATE_REQUEST",
        )
        assert refusal(lambda: stub.Settle(settle_request(mdtrt_id)))[1] == "ALREADY_SETTLED"
        assert refusal(lambda: upload(stub, mdtrt_id))[1] == "ALREADY_SETTLED"
        by_msgid = api.GetSettlementRequest(envelope=envelope(), medins_setl_id=request.request_id)
        assert stub.GetSettlement(by_msgid, timeout=10).settlement == settlement

        # The outbox confirms the hold at the insured node: it outlives its timeout.
        key = settlement_key(HOSPITAL, request.request_id)
        confirm_id = derived_id(key, "confirm")
        eventually(
            lambda: outbox(nodes[BEIJING])[confirm_id].delivered_at is not None,
            within_s=20,
            what="the confirmation is delivered",
        )
        expires_at = hold_expires_at(nodes[LANGFANG], derived_id(key, "apply"))
        eventually(lambda: datetime.now(UTC) > expires_at, within_s=HOLD_S + 1, what="the hold timed out")
        worker_of(nodes[LANGFANG], HoldExpiry, "settlement").void_expired()
        assert accumulators(nodes[LANGFANG], psn_no)[CAP] == 4889
        assert outbox(nodes[BEIJING])[derived_id(key, "journal")].destination == NATIONAL
        eventually(
            lambda: request.request_id in journal(nodes[NATIONAL]),
            within_s=20,
            what="the journal entry reaches 000000",
        )
        entry = journal(nodes[NATIONAL])[request.request_id]
        assert (entry.kind, entry.setl_id, entry.fund_pay_sumamt_fen) == (
            SETTLEMENT,
            settlement.setl_id,
            4889,
        )
        assert (entry.insuplc_admdvs, entry.mdtrtarea_admvs, entry.clr_type) == (LANGFANG, "110101", "11")

        reverse = api.ReverseSettlementRequest(
            request_id=msgid(),
            envelope=envelope(),
            setl_id=settlement.setl_id,
            mdtrt_id=mdtrt_id,
            psn_no=psn_no,
        )
        reversal = stub.ReverseSettlement(reverse, timeout=30).reversal
        assert (reversal.reverses_setl_id, reversal.result.amounts.fund_pay_sumamt_fen) == (
            settlement.setl_id,
            -4889,
        )
        assert reversal.result.amounts.medfee_sumamt_fen == -6429
        assert [
            (c.key, c.delta_fen) for c in reversal.result.accumulator_changes if c.key == "chronic:M01600"
        ] == [("chronic:M01600", -4889)]
        assert accumulators(nodes[LANGFANG], psn_no) == {}
        assert stub.ReverseSettlement(reverse, timeout=30).reversal == reversal
        again = api.ReverseSettlementRequest()
        again.CopyFrom(reverse)
        again.request_id = msgid()
        assert refusal(lambda: stub.ReverseSettlement(again))[1] == "ALREADY_REVERSED"
        assert stub.GetSettlement(by_msgid, timeout=10).settlement.reversed
        listed = stub.ListSettlements(
            api.ListSettlementsRequest(include_reversals=True, page_size=1), timeout=10
        )
        rest = stub.ListSettlements(
            api.ListSettlementsRequest(include_reversals=True, page_size=1, page_token=listed.next_page_token)
        )
        assert [s.setl_id for s in (*listed.settlements, *rest.settlements)] == [
            settlement.setl_id,
            reversal.setl_id,
        ]
        assert not rest.next_page_token
        eventually(
            lambda: reverse.request_id in journal(nodes[NATIONAL]),
            within_s=20,
            what="the reversal reaches the journal",
        )
        entry = journal(nodes[NATIONAL])[reverse.request_id]
        assert (entry.kind, entry.reverses_msgid, entry.fund_pay_sumamt_fen) == (
            REVERSAL,
            request.request_id,
            -4889,
        )

        # A cross-province inpatient bill of 30,000 yuan or more is flagged for audit (大额协查).
        stay = stub.RegisterVisit(
            diabetes_visit(psn_no, facts=visit_pb2.VisitFacts(med_type="21", diagnoses=["I21.000"])),
            timeout=20,
        ).visit
        upload(stub, stay.mdtrt_id, STENT_STAY)
        early = settle_request(stay.mdtrt_id, medfee_sumamt_fen=STENT_STAY_FEN)
        assert refusal(lambda: stub.Settle(early))[1:] == ("INVALID_ARGUMENT", ["mdtrt_id"])  # not discharged
        discharged = stub.DischargeVisit(
            api.DischargeVisitRequest(
                request_id=msgid(), envelope=envelope(), mdtrt_id=stay.mdtrt_id, end_time=_moment(2022, 7, 10)
            ),
            timeout=20,
        ).visit
        assert (discharged.state, discharged.facts.service_date.day) == (
            settlement_pb2.VISIT_STATE_DISCHARGED,
            10,
        )
        large = stub.Settle(
            settle_request(stay.mdtrt_id, medfee_sumamt_fen=STENT_STAY_FEN), timeout=30
        ).settlement
        assert (large.clr_type, large.audit_flag) == ("21", True)
        assert large.result.amounts.overlmt_selfpay_fen == 16200  # (900 − 798) + 20 × (15 − 12) yuan
        flagged = stub.ListSettlements(api.ListSettlementsRequest(audit_flagged_only=True), timeout=10)
        assert [s.setl_id for s in flagged.settlements] == [large.setl_id]


def journal(national: Node) -> dict[str, journal_pb2.JournalEntry]:
    """The national journal's entries by msgid."""
    with grpc.insecure_channel(national.address) as channel:
        stub = clearing_service_pb2_grpc.ClearingServiceStub(channel)
        answer = stub.ListJournalEntries(
            clearing_service_pb2.ListJournalEntriesRequest(page_size=100), timeout=10
        )
    return {entry.msgid: entry for entry in answer.entries}


def test_corrections_before_after_and_instead_of_a_settlement_and_a_suspended_institution(
    tmp_path: Path, database_factory: Callable[[], str | None]
) -> None:
    with (
        beijing_tree(tmp_path, database_factory) as nodes,
        grpc.insecure_channel(nodes[BEIJING].address) as channel,
    ):
        psn_no = load_insured(nodes)
        stub = api_grpc.SettlementServiceStub(channel)
        settle = api.CORRECTED_OPERATION_SETTLE

        # Corrected before it arrives: the late Settle is refused for ever.
        mdtrt_id = open_visit(stub, psn_no)
        late = msgid()
        assert (
            stub.Correct(correct_request(late, settle), timeout=30).outcome
            == api.CORRECTION_OUTCOME_NOTHING_TO_UNDO
        )
        code, reason, _ = refusal(lambda: stub.Settle(settle_request(mdtrt_id, late)))
        assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CORRECTED")
        assert stub.Correct(correct_request(late, settle)).outcome == api.CORRECTION_OUTCOME_ALREADY_CORRECTED
        assert accumulators(nodes[LANGFANG], psn_no) == {}

        # Applied at the insured node, its answer lost before Beijing recorded it: the correction undoes it.
        lost = msgid()
        apply_lost(nodes[LANGFANG], lost, psn_no, upload(stub, mdtrt_id))  # the same lines again: a no-op
        assert accumulators(nodes[LANGFANG], psn_no)[CAP] == 4889
        assert (
            stub.Correct(correct_request(lost, settle), timeout=30).outcome == api.CORRECTION_OUTCOME_REVERSED
        )
        assert accumulators(nodes[LANGFANG], psn_no) == {}
        assert refusal(lambda: stub.Settle(settle_request(mdtrt_id, lost)))[1] == "CORRECTED"

        # Corrected after it took effect: reversed, with a reversing record.
        done = stub.Settle(settle_request(mdtrt_id), timeout=30).settlement
        correction = stub.Correct(correct_request(done.medins_setl_id, settle), timeout=30)
        assert correction.outcome == api.CORRECTION_OUTCOME_REVERSED
        assert correction.reversal.reverses_setl_id == done.setl_id
        assert accumulators(nodes[LANGFANG], psn_no) == {}
        repeat = stub.Correct(correct_request(done.medins_setl_id, settle), timeout=30)
        assert (repeat.outcome, repeat.reversal) == (
            api.CORRECTION_OUTCOME_ALREADY_CORRECTED,
            correction.reversal,
        )

        # A correction racing its Settle: exactly one of "recorded" and "corrected" wins, nothing stays applied.
        raced = settle_request(open_visit(stub, psn_no))
        with ThreadPoolExecutor(2) as pool:
            settling = pool.submit(stub.Settle, raced, timeout=30)
            correcting = pool.submit(stub.Correct, correct_request(raced.request_id, settle), timeout=30)
            corrected = correcting.result()
            try:
                recorded: api.SettleResponse | None = settling.result()
            except grpc.RpcError as error:
                assert error_details(error)["ErrorInfo"].reason == "CORRECTED"
                recorded = None
        if recorded is None:
            assert corrected.outcome in (
                api.CORRECTION_OUTCOME_REVERSED,
                api.CORRECTION_OUTCOME_NOTHING_TO_UNDO,
            )
            assert not corrected.HasField("reversal")
        else:
            assert corrected.outcome == api.CORRECTION_OUTCOME_REVERSED
            assert corrected.reversal.reverses_setl_id == recorded.settlement.setl_id
        assert accumulators(nodes[LANGFANG], psn_no) == {}

        # A suspension notice covers the hospital now: refused, nothing applied anywhere; revoked, it settles.
        second = open_visit(stub, psn_no)
        registry = registry_grpc.InstitutionRegistryServiceStub(channel)
        start, end = Timestamp(), Timestamp()
        start.FromDatetime(datetime.now(UTC) - timedelta(minutes=5))
        end.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
        notice = registry.PublishSuspension(
            registry_api.PublishSuspensionRequest(
                request_id=msgid(),
                suspension=institution_pb2.Suspension(
                    fixmedins_code=HOSPITAL, start_time=start, end_time=end, reason="系统升级"
                ),
            ),
            timeout=10,
        ).suspension
        request = settle_request(second)
        code, reason, _ = refusal(lambda: stub.Settle(request))
        assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "INSTITUTION_SUSPENDED")
        assert accumulators(nodes[LANGFANG], psn_no) == {}
        assert refusal(
            lambda: stub.GetSettlement(api.GetSettlementRequest(medins_setl_id=request.request_id))
        )[1] == ("NOT_FOUND")
        registry.RevokeSuspension(
            registry_api.RevokeSuspensionRequest(request_id=msgid(), suspension_id=notice.suspension_id),
            timeout=10,
        )
        assert stub.Settle(request, timeout=30).settlement.result.amounts.fund_pay_sumamt_fen == 4889
        assert accumulators(nodes[LANGFANG], psn_no)[CAP] == 4889

        # The insured node does not answer: refused, nothing recorded here.
        unanswered = settle_request(open_visit(stub, psn_no))
        nodes[LANGFANG].stop(0)
        code, reason, _ = refusal(lambda: stub.Settle(unanswered, timeout=30))
        assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "INSURED_REGION_UNREACHABLE")
        unknown = api.GetSettlementRequest(medins_setl_id=unanswered.request_id)
        assert refusal(lambda: stub.GetSettlement(unknown))[1] == "NOT_FOUND"


def apply_lost(insured: Node, request_id: str, psn_no: str, bill: api.UploadFeeItemsResponse) -> None:
    """What the Beijing node sends for Settle ``request_id`` (ApplySettlement ``<institution>/<id>:apply``),
    its answer lost."""
    facts = diabetes_visit(psn_no).facts
    facts.institution_level, facts.fixmedins_code, facts.mdtrtarea_admvs = "3", HOSPITAL, "110101"
    items = bill.results
    totals = insured_api.ClassifiedTotals(
        medfee_sumamt_fen=sum(item.det_item_fee_sumamt_fen for item in items),
        preselfpay_amt_fen=sum(item.preselfpay_amt_fen for item in items),
        inscp_scp_amt_fen=sum(item.inscp_scp_amt_fen for item in items),
    )
    with grpc.insecure_channel(insured.address) as channel:
        insured_grpc.InsuredSettlementServiceStub(channel).ApplySettlement(
            insured_api.ApplySettlementRequest(
                request_id=derived_id(settlement_key(HOSPITAL, request_id), "apply"),
                route=settlement_pb2.Route(
                    origin_admdvs=BEIJING, destination_admdvs=LANGFANG, hops=[BEIJING]
                ),
                psn_no=psn_no,
                insutype="310",
                facts=facts,
                items=items,
                totals=totals,
                setl_id=f"{BEIJING}{'7' * 24}",
                catalogue_version=bill.catalogue_version,
            ),
            timeout=20,
        )
