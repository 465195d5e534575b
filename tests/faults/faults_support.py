"""What the fault tests share: a small federation of node processes, a HIS that retries, and the audit.

The federation is the national node with Hebei and Guangdong, each `yidi serve` in its own
process (:class:`~yidi_harness.processes.ProcessFederation`), loaded with the samples. The route
under test is cross-province: Shenzhen employees (insured at 440300, hosted by the Guangdong
node) treated at a Shijiazhuang hospital (the Hebei node), Hebei → national → Guangdong, so
every settlement touches three processes: the treatment record at Hebei, the hold at
Guangdong, the journal entry at the national node.

The HIS (:func:`settle_as_his`) does what a real one does when an answer does not come: it
sends the same Settle again (same ``request_id``), with bounded retries and a pause, and
when it gives up it corrects (冲正) that id. :func:`audit` then checks, through the nodes'
public APIs only, that every settlement the HIS saw is applied exactly once on every side
and every other one nowhere; :func:`reconcile_and_repair` and :func:`ledger_balances` check
the national node's view.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, text

from yidi.clearing.v1 import clearing_service_pb2 as clearing_api
from yidi.clearing.v1 import clearing_service_pb2_grpc as clearing_grpc
from yidi.clearing.v1 import journal_pb2, reconciliation_pb2, statement_pb2
from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as insured_grpc
from yidi.settlement.v1 import settlement_pb2, settlement_service_pb2, settlement_service_pb2_grpc
from yidi.type.v1 import settlement_result_pb2
from yidi_core.codes import NATIONAL_REGION
from yidi_harness.federation import (
    NATIONAL_OPERATOR,
    NodeSpec,
    Topology,
    init_demo_pki,
    load_sample_data,
    region_operator,
)
from yidi_harness.polling import TimedOut, eventually
from yidi_harness.processes import ProcessFederation
from yidi_harness.stories import BillLine, Encounter, Patient, Stage, Window, refusal_reason
from yidi_runtime.config import Role, TlsFiles, load_settings
from yidi_runtime.identity import CallerRole, Principal
from yidi_runtime.integrity import NodeIntegrity
from yidi_runtime.outbox import method_path
from yidi_runtime.peers import message_id
from yidi_runtime.wire import china_day, date_message, timestamp_message
from yidi_services.settlement.insured.forwarding import ROUTED

HEBEI, GUANGDONG = "130000", "440000"
SHENZHEN = "440300"
SHIJIAZHUANG_HOSPITAL = "H13010500001"
TOPOLOGY = Topology(
    (
        NodeSpec(NATIONAL_REGION, Role.NATIONAL, "national"),
        NodeSpec(HEBEI, Role.PROVINCE, "hebei", NATIONAL_REGION),
        NodeSpec(GUANGDONG, Role.PROVINCE, "guangdong", NATIONAL_REGION),
    )
)
BILL = (
    BillLine("001102000010000", "床位费", "1", "60.00"),
    BillLine("003106050020000", "经皮冠状动脉支架置入术", "1", "8000.00"),
    BillLine("XJ01DDT071B002010100003", "注射用头孢曲松钠", "2", "15.00"),
)
"""A short stay's bill, in the Hebei sample catalogue: above the deductible, so the fund pays
and the accumulators move (a settlement that moved nothing would prove nothing)."""
HOLD_TIMEOUT_S = 8.0
"""Short, so a hold the HIS never saw confirmed times out within a test, and is resolved by
asking its treatment node (confirmed if it recorded it, voided once it fenced it)."""
CALL_DEADLINE_S = 20.0
HIS_PAUSE_S = 1.0
POLL_S = 0.25
SETTLEMENT = journal_pb2.JOURNAL_ENTRY_KIND_SETTLEMENT
UNSURE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
"""Answers that leave the outcome unknown to the HIS: it asks again with the same request id."""


# -- the federation --------------------------------------------------------------------------------


@contextmanager
def fault_federation(
    tmp_path: Path,
    *,
    mtls: bool = False,
    database_url_for: Callable[[], str | None] | None = None,
    lose_answer_every: int = 0,
) -> Iterator[ProcessFederation]:
    """The three node processes, started (insecure unless ``mtls``) and loaded with the samples."""
    pki = init_demo_pki(tmp_path / "certs", TOPOLOGY) if mtls else None
    with ProcessFederation(
        TOPOLOGY,
        tmp_path,
        database_url_for,
        pki=pki,
        lose_answer_every=lose_answer_every,
        config={"settlement": {"hold_timeout_s": HOLD_TIMEOUT_S}},
    ) as federation:
        load_sample_data(federation)
        yield federation


def stage_of(federation: ProcessFederation) -> Stage:
    """Now, a minute back: no visit of the test is discharged before it was admitted."""
    return Stage(federation, datetime.now(UTC) - timedelta(minutes=1))


def enrol_and_file(stage: Stage, count: int, first_serial: int = 100) -> list[Patient]:
    """``count`` Shenzhen employees, enrolled and filed for Hebei (approved at once by the sample rules)."""
    return stage.enrol_and_file(SHENZHEN, HEBEI, count, first_serial, "fault test")


@dataclass(frozen=True)
class Visit:
    """A visit opened at the window (verify to discharge) and the Settle the HIS will send for it."""

    patient: Patient
    psn_no: str
    stay: Encounter
    uploaded: settlement_service_pb2.UploadFeeItemsResponse
    request: settlement_service_pb2.SettleRequest

    @property
    def msgid(self) -> str:
        """The Settle's request id, the key of the settlement on every side."""
        return self.request.request_id


def open_visits(stage: Stage, patients: Sequence[Patient]) -> list[Visit]:
    """One short stay per patient at the Shijiazhuang hospital, ready to settle."""
    window = stage.window(SHIJIAZHUANG_HOSPITAL)
    visits = []
    for patient in patients:
        stay = Encounter(
            patient=patient,
            fixmedins_code=SHIJIAZHUANG_HOSPITAL,
            med_type="21",
            service_date=stage.today,
            begin_time=stage.earlier_today(2),
            end_time=stage.now,
            diagnoses=("I21.000",),
            bill=BILL,
        )
        person = window.verify(stay)
        registered = window.register(stay, person)
        uploaded = window.upload(stay, registered)
        registered = window.discharge(stay, registered)
        request = window.settle_request(stay, registered, window.request_id())
        visits.append(Visit(patient, person.psn_no, stay, uploaded, request))
    return visits


# -- the HIS -----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the HIS ended with for one visit: the settlement it saw, or how it corrected the Settle."""

    visit: Visit
    settlement: settlement_pb2.Settlement | None = None
    refusal: str = ""
    """A refusal that says the Settle took no effect (the HIS did not retry it)."""
    correction: int = settlement_service_pb2.CORRECTION_OUTCOME_UNSPECIFIED
    unsure: list[str] = field(default_factory=list)
    """Every answer that left the outcome unknown, in order."""


def _unsure(error: grpc.RpcError) -> bool:
    return error.code() in UNSURE  # type: ignore[attr-defined]


def _describe(error: grpc.RpcError) -> str:
    return f"{refusal_reason(error)}: {error.details()}"  # type: ignore[attr-defined]


def settle_as_his(
    window: Window, visit: Visit, within_s: float, correct_within_s: float | None = None
) -> Outcome:
    """Settle, sending the same request again while answers leave the outcome unknown (bounded).

    Gives up after ``within_s`` and corrects the request id (冲正), itself retried while
    unsure; a correction must get an answer within ``correct_within_s`` (default ``within_s``).
    """
    outcome = Outcome(visit)

    def answered() -> bool:
        try:
            outcome.settlement = window.settle(visit.request)
        except grpc.RpcError as error:
            if _unsure(error):
                outcome.unsure.append(_describe(error))
                return False
            outcome.refusal = _describe(error)
        return True

    try:
        eventually(
            answered, within_s=within_s, interval_s=HIS_PAUSE_S, what=f"Settle {visit.msgid} is answered"
        )
    except TimedOut:
        within_s = within_s if correct_within_s is None else correct_within_s
        outcome.correction = correct(window, visit, within_s)
    return outcome


def settled_again(window: Window, outcomes: Sequence[Outcome], within_s: float = 45.0) -> list[Outcome]:
    """What docs/integration.md tells a HIS to do with ``HOLD_VOIDED`` (a Settle retried for longer
    than the insured place holds an unconfirmed settlement, fenced and voided: nothing settled):
    settle the visit again with a new request id. The outcomes of those second Settles."""
    voided = [outcome for outcome in outcomes if outcome.refusal.startswith("HOLD_VOIDED")]
    again = []
    for outcome in voided:
        request = settlement_service_pb2.SettleRequest()
        request.CopyFrom(outcome.visit.request)
        request.request_id = window.request_id()
        again.append(settle_as_his(window, replace(outcome.visit, request=request), within_s))
    return again


def correct(window: Window, visit: Visit, within_s: float) -> int:
    """2601 for the visit's Settle, retried with its own id while unsure; the outcome."""
    request = settlement_service_pb2.CorrectRequest(
        request_id=window.request_id(),
        envelope=window.envelope(visit.patient.insuplc_admdvs),
        omsgid=visit.msgid,
        oinfno=settlement_service_pb2.CORRECTED_OPERATION_SETTLE,
        psn_no=visit.psn_no,
    )

    def outcome() -> list[int]:
        try:
            return [int(window.stub.Correct(request, timeout=CALL_DEADLINE_S).outcome)]
        except grpc.RpcError as error:
            if _unsure(error):
                raise AssertionError(_describe(error)) from error
            raise

    [corrected] = eventually(
        outcome,
        within_s=within_s,
        interval_s=HIS_PAUSE_S,
        what=f"the correction of {visit.msgid} is answered",
    )
    return corrected


def burst(
    window: Window,
    visits: Sequence[Visit],
    concurrency: int,
    *,
    fault: Callable[[], None] | None = None,
    fault_after: int = 0,
    within_s: float = 45.0,
    correct_within_s: float | None = None,
) -> list[Outcome]:
    """Settle every visit from ``concurrency`` HIS threads; ``fault`` runs once ``fault_after`` visits settled.

    The fault runs on this thread while the burst goes on around it: the next Settles are
    on their way, at whatever step.
    """
    done = threading.Semaphore(0)

    def one(visit: Visit) -> Outcome:
        try:
            return settle_as_his(window, visit, within_s, correct_within_s)
        finally:
            done.release()

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(one, visit) for visit in visits]
        if fault is not None:
            for _ in range(fault_after):
                assert done.acquire(timeout=60), "the burst did not get going"
            fault()
        return [future.result() for future in futures]


# -- reading the nodes (their public APIs, as their operators) -------------------------------------


def _pages(call: Callable[[str], Any], items: str) -> list[Any]:
    found: list[Any] = []
    token = ""
    while True:
        page = call(token)
        found += getattr(page, items)
        token = page.next_page_token
        if not token:
            return found


def treatment_records(federation: ProcessFederation) -> list[settlement_pb2.Settlement]:
    """Every settlement and reversal the Hebei node recorded, read by the Hebei operator."""
    settlements = settlement_service_pb2_grpc.SettlementServiceStub(
        federation.channel(HEBEI, region_operator(HEBEI))
    )
    return _pages(
        lambda token: settlements.ListSettlements(
            settlement_service_pb2.ListSettlementsRequest(
                include_reversals=True, page_size=1000, page_token=token
            ),
            timeout=CALL_DEADLINE_S,
        ),
        "settlements",
    )


def insured_records(federation: ProcessFederation) -> list[insured_api.SettlementRecord]:
    """Every application the Guangdong node holds as the insured place, read by its operator."""
    stub = insured_grpc.InsuredSettlementServiceStub(
        federation.channel(GUANGDONG, region_operator(GUANGDONG))
    )
    now = datetime.now(UTC)
    return _pages(
        lambda token: stub.ListSettlementRecords(
            insured_api.ListSettlementRecordsRequest(
                route=settlement_pb2.Route(destination_admdvs=GUANGDONG),
                side=insured_api.RECORD_SIDE_INSURED,
                start_time=timestamp_message(now - timedelta(days=2)),
                end_time=timestamp_message(now + timedelta(days=1)),
                page_size=1000,
                page_token=token,
            ),
            timeout=CALL_DEADLINE_S,
        ),
        "records",
    )


def clearing(federation: ProcessFederation) -> clearing_grpc.ClearingServiceStub:
    """The national node's ClearingService, as the national operator."""
    return clearing_grpc.ClearingServiceStub(federation.channel(NATIONAL_REGION, NATIONAL_OPERATOR))


def journal(federation: ProcessFederation) -> list[journal_pb2.JournalEntry]:
    """Every entry of the national journal."""
    stub = clearing(federation)
    return _pages(
        lambda token: stub.ListJournalEntries(
            clearing_api.ListJournalEntriesRequest(page_size=1000, page_token=token),
            timeout=CALL_DEADLINE_S,
        ),
        "entries",
    )


def accumulators(federation: ProcessFederation, psn_no: str, year: int) -> dict[str, int]:
    """A Shenzhen person's non-zero accumulators at the Guangdong node (``kind:key`` → fen)."""
    answer = insured_grpc.InsuredSettlementServiceStub(
        federation.channel(GUANGDONG, region_operator(GUANGDONG))
    ).GetAccumulators(insured_api.GetAccumulatorsRequest(psn_no=psn_no, year=year), timeout=CALL_DEADLINE_S)
    return {_kind(value.kind, value.key): value.value_fen for value in answer.accumulators if value.value_fen}


def changes_of(settlement: settlement_pb2.Settlement) -> dict[str, int]:
    """What a settlement moved, as :func:`accumulators` reads it (the personal account aside)."""
    return {
        _kind(change.kind, change.key): change.delta_fen
        for change in settlement.result.accumulator_changes
        if change.kind != settlement_result_pb2.ACCUMULATOR_KIND_ACCOUNT and change.delta_fen
    }


def _kind(kind: int, key: str) -> str:
    return f"{settlement_result_pb2.AccumulatorKind.Name(kind).removeprefix('ACCUMULATOR_KIND_')}:{key}"


# -- the audit ---------------------------------------------------------------------------------------


def drained(federation: ProcessFederation) -> bool:
    """Nothing is in flight: no hold waits at Guangdong, every standing settlement Hebei recorded is
    confirmed there (a hold voided before its late confirmation is applied again by it), and
    every cross-province record of Hebei is journalled."""
    states = {r.msgid: r.hold_state for r in insured_records(federation)}
    if insured_api.HOLD_STATE_HELD in states.values():
        return False
    treatment = treatment_records(federation)
    standing = {s.medins_setl_id for s in treatment if not s.reversed and not s.reverses_setl_id}
    if any(states.get(msgid) != insured_api.HOLD_STATE_CONFIRMED for msgid in standing):
        return False
    recorded = {s.medins_setl_id for s in treatment if s.pay_loc == "4"}
    return recorded <= {entry.msgid for entry in journal(federation)}


def wait_drained(federation: ProcessFederation, timeout_s: float = 120.0) -> None:
    """Wait (bounded) until the outboxes delivered and unconfirmed holds expired."""
    eventually(
        lambda: _answering(lambda: drained(federation)),
        within_s=timeout_s,
        interval_s=POLL_S,
        what="the outboxes drained",
    )


def _answering(check: Callable[[], bool]) -> bool:
    """A check that counts a node still reconnecting as not yet."""
    try:
        return check()
    except grpc.RpcError as error:
        if _unsure(error):
            return False
        raise


def audit(federation: ProcessFederation, outcomes: Sequence[Outcome]) -> None:
    """Each settlement the HIS saw: once at Hebei, once confirmed at Guangdong, once in the journal, its
    accumulators moved once. Every other Settle: nowhere, or reversed on every side."""
    treatment = treatment_records(federation)
    insured = insured_records(federation)
    entries = journal(federation)
    duplicated = [msgid for msgid, n in Counter(e.msgid for e in entries).items() if n > 1]
    assert not duplicated, f"journal entries recorded twice: {duplicated}"
    by_msgid = {s.medins_setl_id: s for s in treatment}
    assert len(by_msgid) == len(treatment), "two treatment records share a msgid"
    held = Counter(r.msgid for r in insured)
    assert [m for m, n in held.items() if n > 1] == [], "an application held twice"
    applications = {r.msgid: r for r in insured}
    journalled = {e.msgid: e for e in entries}
    reversal_of = {s.reverses_setl_id: s for s in treatment if s.reverses_setl_id}
    settled_for = {outcome.visit.psn_no for outcome in outcomes if outcome.settlement is not None}
    for outcome in outcomes:
        msgid, seen = outcome.visit.msgid, outcome.settlement
        recorded = by_msgid.get(msgid)
        application = applications.get(msgid)
        entry = journalled.get(msgid)
        moved = accumulators(federation, outcome.visit.psn_no, outcome.visit.stay.service_date.year)
        if seen is not None:
            assert seen.result.amounts.fund_pay_sumamt_fen > 0, f"{msgid}: the fund paid nothing"
            assert recorded is not None and not recorded.reversed, f"{msgid}: settled, not recorded at Hebei"
            assert (recorded.setl_id, recorded.result.amounts) == (seen.setl_id, seen.result.amounts), msgid
            assert application is not None, f"{msgid}: settled, unknown at Guangdong"
            assert application.hold_state == insured_api.HOLD_STATE_CONFIRMED, (msgid, application)
            assert application.fund_pay_sumamt_fen == seen.result.amounts.fund_pay_sumamt_fen, msgid
            assert entry is not None and entry.kind == SETTLEMENT, f"{msgid}: settled, not journalled"
            assert entry.fund_pay_sumamt_fen == seen.result.amounts.fund_pay_sumamt_fen, msgid
            assert seen.setl_id not in reversal_of, f"{msgid}: settled, yet reversed"
            assert moved == changes_of(seen), f"{msgid}: accumulators {moved} ≠ one settlement's"
            continue
        assert outcome.refusal or outcome.correction in (
            settlement_service_pb2.CORRECTION_OUTCOME_REVERSED,
            settlement_service_pb2.CORRECTION_OUTCOME_NOTHING_TO_UNDO,
        ), outcome
        if recorded is not None:
            assert recorded.reversed and recorded.setl_id in reversal_of, f"{msgid}: unseen, recorded"
            undo = reversal_of[recorded.setl_id]
            assert undo.medins_setl_id in journalled, f"{msgid}: the reversal is not journalled"
        assert application is None or application.hold_state == insured_api.HOLD_STATE_VOIDED, (
            msgid,
            application,
        )
        assert (entry is None) == (recorded is None), f"{msgid}: journal and treatment record disagree"
        if outcome.visit.psn_no not in settled_for:  # else the accumulators are the other Settle's
            assert moved == {}, f"{msgid}: never settled for the HIS, yet accumulators {moved}"
    journalled_here = {s.medins_setl_id for s in treatment if s.pay_loc == "4"}
    assert journalled.keys() >= journalled_here
    assert len(entries) == len(journalled_here), "the journal holds entries no treatment record explains"


def reconcile(federation: ProcessFederation, first: date) -> reconciliation_pb2.ReconciliationRun:
    """Reconcile ``first`` to today at the national node (the national operator) and wait for the run."""
    stub = clearing(federation)
    run = stub.Reconcile(
        clearing_api.ReconcileRequest(
            request_id=message_id(NATIONAL_REGION),
            start_date=date_message(first),
            end_date=date_message(china_day(datetime.now(UTC))),
        ),
        timeout=CALL_DEADLINE_S,
    ).run
    finished = (statement_pb2.JOB_STATE_SUCCEEDED, statement_pb2.JOB_STATE_FAILED)

    def done() -> bool:
        nonlocal run
        run = stub.GetReconciliationRun(
            clearing_api.GetReconciliationRunRequest(run_id=run.run_id), timeout=CALL_DEADLINE_S
        ).run
        return run.state in finished

    eventually(done, within_s=60, interval_s=POLL_S, what="the reconciliation run finished")
    assert run.state == statement_pb2.JOB_STATE_SUCCEEDED, run.failure_reason
    return run


def discrepancies(
    federation: ProcessFederation, run_id: str, *, open_only: bool = False
) -> list[reconciliation_pb2.Discrepancy]:
    """The discrepancies of one run."""
    stub = clearing(federation)
    return _pages(
        lambda token: stub.ListDiscrepancies(
            clearing_api.ListDiscrepanciesRequest(
                run_id=run_id, open_only=open_only, page_size=1000, page_token=token
            ),
            timeout=CALL_DEADLINE_S,
        ),
        "discrepancies",
    )


def reconcile_and_repair(federation: ProcessFederation, first: date) -> list[reconciliation_pb2.Discrepancy]:
    """Reconcile, repair what was found, reconcile again: no difference may be left. What the first run found."""
    run = reconcile(federation, first)
    found = discrepancies(federation, run.run_id)
    repaired = clearing(federation).RepairDiscrepancies(
        clearing_api.RepairDiscrepanciesRequest(request_id=message_id(NATIONAL_REGION), run_id=run.run_id),
        timeout=60,
    )
    assert repaired.failed_count == 0, [d.repair_note for d in repaired.discrepancies if not d.repaired]
    again = reconcile(federation, first)
    assert again.discrepancy_count == 0, discrepancies(federation, again.run_id)
    assert discrepancies(federation, run.run_id, open_only=True) == []
    return found


def ledger_balances(federation: ProcessFederation) -> None:
    """The national ledger sums to zero."""
    ledger = clearing(federation).GetLedger(clearing_api.GetLedgerRequest(), timeout=CALL_DEADLINE_S)
    assert ledger.balanced and ledger.total_fen == 0, ledger


def kinds(found: Sequence[reconciliation_pb2.Discrepancy]) -> set[tuple[str, str]]:
    """(msgid, kind name) of each discrepancy."""
    return {(d.msgid, reconciliation_pb2.DiscrepancyKind.Name(d.kind)) for d in found}


# -- a node's own messages, sent again -----------------------------------------------------------------


def as_node(federation: ProcessFederation, region: str) -> Principal | TlsFiles:
    """Who a node is to another: its certificate on mTLS, its principal on an insecure federation."""
    if federation.pki is not None:
        return federation.pki.node(region)
    return Principal(CallerRole.NODE, region, region)


def sent_by(federation: ProcessFederation, region: str, method: MethodDescriptor) -> list[tuple[str, bytes]]:
    """(destination, payload) of every ``method`` message a node's settlement outbox delivered, as sent.

    Read from the node's own SQLite file: what went over the wire is no API's to show.
    """
    spec = federation.topology[region]
    engine = create_engine(f"sqlite:///{federation.data_dir / f'{region}-{spec.name}' / 'settlement.db'}")
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT destination, payload FROM settlement_outbox "
                    "WHERE method = :method AND delivered_at IS NOT NULL ORDER BY id"
                ),
                {"method": method_path(method)},
            )
            return [(row.destination, bytes(row.payload)) for row in rows]
    finally:
        engine.dispose()


def deliver_again(
    federation: ProcessFederation, sender: str, receiver: str, method: MethodDescriptor, payload: bytes
) -> bytes:
    """Send a message's bytes to ``receiver`` directly, as node ``sender``; the answer's bytes."""
    call = federation.channel(receiver, as_node(federation, sender)).unary_unary(method_path(method))
    return bytes(call(payload, timeout=CALL_DEADLINE_S))


def seal_as(federation: ProcessFederation, region: str, request: Message) -> None:
    """Seal a node-to-node request with the key of node ``region`` (nothing on an insecure federation)."""
    settings = load_settings(federation.processes[region].config, environ={})
    NodeIntegrity(settings, CollectorRegistry()).seal(request, ROUTED)
