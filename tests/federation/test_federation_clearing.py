"""How `yidi demo` ends, on the demo's federation: the Qinghai hole found and repaired, the month cleared to zero.

The five seed stories are played through the HIS stubs; then ``yidi_harness.month_end`` loses the
Qinghai story's settlement on its way to the national journal and to the Qinghai node
(``yidi_harness.faults``: the Qinghai node resolves the lost confirmation by asking Jiaxing),
reconciles the day, repairs the journal's hole, reconciles again, and clears the month with
the national node's clearing clock moved to the month's end. The assertions read what the nodes
hold through the public stubs, on SQLite files and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from yidi.clearing.v1 import reconciliation_pb2, statement_pb2
from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as insured_grpc
from yidi.settlement.v1 import settlement_pb2
from yidi_cli.clearing_client import ClearingClient
from yidi_core.codes import NATIONAL_REGION
from yidi_harness.federation import DEMO_TOPOLOGY, Federation, load_sample_data, start_federation
from yidi_harness.month_end import ClearingClock, clear_the_month, month_of, reconcile_the_day
from yidi_harness.stories import StoryResult, journal_entries, play_all
from yidi_runtime.wire import timestamp_message

KINDS = reconciliation_pb2.DiscrepancyKind


@pytest.fixture
def clock() -> ClearingClock:
    return ClearingClock()


@pytest.fixture
def federation(
    tmp_path: Path, database_factory: Callable[[], str | None], clock: ClearingClock
) -> Iterator[Federation]:
    with start_federation(DEMO_TOPOLOGY, tmp_path, database_factory, start=clock.start_node) as started:
        load_sample_data(started)
        yield started


def qinghai_application(federation: Federation, msgid: str) -> insured_api.SettlementRecord:
    """The Qinghai node's own record of the application behind a settlement."""
    now = datetime.now(UTC)
    listed = (
        insured_grpc.InsuredSettlementServiceStub(federation.channel("630000"))
        .ListSettlementRecords(
            insured_api.ListSettlementRecordsRequest(
                route=settlement_pb2.Route(destination_admdvs="630000"),
                side=insured_api.RECORD_SIDE_INSURED,
                start_time=timestamp_message(now - timedelta(days=1)),
                end_time=timestamp_message(now + timedelta(days=1)),
                page_size=1000,
            ),
            timeout=20,
        )
        .records
    )
    [record] = [record for record in listed if record.msgid == msgid]
    return record


def fund(result: StoryResult) -> int:
    assert result.settlement is not None
    return result.settlement.result.amounts.fund_pay_sumamt_fen


def test_the_demo_ends_with_the_qinghai_hole_repaired_and_the_month_cleared_to_zero(
    federation: Federation, clock: ClearingClock
) -> None:
    started = datetime.now(UTC)
    results = play_all(federation, started)
    assert all(result.ok for result in results), [(r.number, r.failure, r.expectations) for r in results]
    qinghai = results[1]
    assert qinghai.settlement is not None
    msgid = qinghai.settlement.medins_setl_id

    reconciled = reconcile_the_day(federation, results)
    assert reconciled.ok, (reconciled.failure, reconciled.expectations, reconciled.steps)
    assert reconciled.msgid == msgid
    # The lost confirmation healed itself: Qinghai asked Jiaxing when the hold timed out.
    assert {(d.msgid, KINDS.Name(d.kind)) for d in reconciled.found} == {
        (msgid, "DISCREPANCY_KIND_MISSING_AT_NATIONAL"),
    }
    for found in reconciled.found:
        assert (found.insured_province, found.treatment_province) == ("630000", "330000")
        assert found.treatment.present and found.treatment.fund_pay_sumamt_fen == fund(qinghai)
        assert not found.national.present
        assert found.insured.present and not found.insured.reversed and found.insured.confirmed
    assert reconciled.run is not None and reconciled.run.compared_count == 5
    [hole_line] = [line for line in reconciled.lines if line.discrepancy_count]
    assert (hole_line.insured_province, hole_line.treatment_province, hole_line.discrepancy_count) == (
        "630000",
        "330000",
        1,
    )
    assert (hole_line.treatment.count, hole_line.national.count, hole_line.insured.count) == (1, 0, 1)
    assert reconciled.repair is not None
    assert (reconciled.repair.repaired_count, reconciled.repair.failed_count) == (1, 0)
    assert all(d.repaired and d.HasField("repair_time") for d in reconciled.repair.discrepancies)
    assert reconciled.rerun is not None and reconciled.rerun.discrepancy_count == 0
    assert reconciled.still_open == []
    assert all(line.discrepancy_count == 0 for line in reconciled.rerun_lines)
    assert reconciled.outcome == "1 differences found, 1 repaired, none left"

    [replayed] = journal_entries(federation, msgid, "630000", timeout_s=0)
    assert replayed.fund_pay_sumamt_fen == fund(qinghai) and replayed.setl_id == qinghai.settlement.setl_id
    assert qinghai_application(federation, msgid).hold_state == insured_api.HOLD_STATE_CONFIRMED

    period = month_of(started)
    cleared = clear_the_month(federation, results, clock, period)
    assert cleared.ok, (cleared.failure, cleared.expectations, cleared.steps)
    assert clock() - datetime.now(UTC) < timedelta(seconds=1), "the clearing clock is back on the wall clock"
    statements = {statement.admdvs: statement for statement in cleared.statements}
    assert sorted(statements) == ["110000", "120000", "130000", "140000", "330000", "440000", "630000"]
    assert sum(statement.net_fen for statement in cleared.statements) == 0
    confirmed = {"130000"}  # Hebei's operator confirms its own through the Hebei node
    for statement in cleared.statements:
        state = (
            statement_pb2.STATEMENT_STATE_CONFIRMED
            if statement.admdvs in confirmed
            else statement_pb2.STATEMENT_STATE_ISSUED
        )
        assert statement.period == period and statement.state == state
        assert statement.net_fen == statement.receivable_fen - statement.payable_fen
    assert statements["630000"].payable_fen == statements["330000"].receivable_fen == fund(qinghai)
    assert statements["130000"].payable_fen == fund(results[0]) + fund(results[4])
    assert statements["110000"].receivable_fen == fund(results[0]) + fund(results[2])
    assert cleared.outcome == "7 statements, nets sum to 0.00"

    client = ClearingClient(federation.channel(NATIONAL_REGION))
    ledger = client.ledger()
    assert ledger.balanced and ledger.total_fen == 0
    assert client.statements(period) == cleared.statements
