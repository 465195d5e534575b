"""``yidi_reconciliation_open_discrepancies`` on the national node's /metrics, driven through the stubs.

The tree is the national node (clearing only) and one province (settlement and clearing),
on SQLite and PostgreSQL. Journal entries no treatment node recorded are delivered through
AppendJournalEntries, so each run finds them MISSING_AT_TREATMENT (an operator's case).
Taking them away again is a hole the API cannot make: the journal rows are deleted with
direct SQL at the national node.
"""

from __future__ import annotations

import itertools
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import clearing_service_pb2_grpc as api_grpc
from yidi.clearing.v1 import journal_pb2, reconciliation_pb2, statement_pb2
from yidi_harness.polling import eventually
from yidi_runtime.server import Node
from yidi_runtime.wire import date_message, timestamp_message
from yidi_services.clearing.models import JournalEntryRecord
from yidi_testing import NodeSpec, node_tree

NATIONAL, PROVINCE = "000000", "330000"
HOSPITAL = "H11010500001"
JAN_5 = date(2026, 1, 5)
METRIC = "yidi_reconciliation_open_discrepancies"
KINDS = {
    "missing_at_national",
    "missing_at_insured",
    "missing_at_treatment",
    "amount_differs",
    "reversal_mismatch",
    "stale_hold",
}
_SEQUENCE = itertools.count(1)
_REQUESTS = itertools.count(1)


@pytest.fixture
def tree(tmp_path: Path, database_factory: Callable[[], str | None]) -> Iterator[dict[str, Node]]:
    with node_tree(
        tmp_path,
        [
            NodeSpec(NATIONAL, "national", services=("clearing",)),
            NodeSpec(PROVINCE, "province", NATIONAL, services=("settlement", "clearing")),
        ],
        database_factory,
    ) as nodes:
        yield nodes


def scraped(node: Node) -> dict[str, dict[str, float]]:
    """Every family on the node's /metrics: sample label ``kind`` (or "") → value, per family name."""
    assert node.metrics_endpoint is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{node.metrics_endpoint.port}/metrics", timeout=10) as page:
        text = page.read().decode()
    return {
        family.name: {sample.labels.get("kind", ""): sample.value for sample in family.samples}
        for family in text_string_to_metric_families(text)
    }


def open_by_kind(node: Node) -> dict[str, float]:
    return scraped(node)[METRIC]


def journal_only_entry() -> journal_pb2.JournalEntry:
    number = next(_SEQUENCE)
    return journal_pb2.JournalEntry(
        msgid=f"{HOSPITAL}20260105100000{number:04d}",
        setl_id=f"110000SETL{number:020d}",
        kind=journal_pb2.JOURNAL_ENTRY_KIND_SETTLEMENT,
        mdtrt_id=f"110000MDTR{number:020d}",
        psn_no="131000000000000000000000000001",
        fixmedins_code=HOSPITAL,
        insuplc_admdvs="131000",
        mdtrtarea_admvs="110105",
        insutype="310",
        clr_type="11",
        medfee_sumamt_fen=1500,
        fund_pay_sumamt_fen=1000,
        psn_cash_pay_fen=500,
        setl_time=timestamp_message(datetime(2026, 1, 5, 2, 0, tzinfo=UTC)),
    )


def reconciled(clearing: api_grpc.ClearingServiceStub, admdvs: str = "") -> int:
    """Reconcile 5 January (optionally one province) and wait, bounded, for the run; its discrepancy count."""
    request_id = f"000000000000202601060{next(_REQUESTS):06d}"
    run = clearing.Reconcile(
        api.ReconcileRequest(request_id=request_id, start_date=date_message(JAN_5), admdvs=admdvs), timeout=20
    ).run

    def succeeded() -> reconciliation_pb2.ReconciliationRun | None:
        done = clearing.GetReconciliationRun(
            api.GetReconciliationRunRequest(run_id=run.run_id), timeout=20
        ).run
        if done.state == statement_pb2.JOB_STATE_FAILED:
            raise RuntimeError(f"reconciliation run {run.run_id} failed: {done.failure_reason}")
        return done if done.state == statement_pb2.JOB_STATE_SUCCEEDED else None

    return eventually(
        succeeded, within_s=30, what=f"reconciliation run {run.run_id} succeeded"
    ).discrepancy_count


def test_the_gauge_shows_what_the_latest_run_of_each_day_left_open(tree: dict[str, Node]) -> None:
    national = tree[NATIONAL]
    clearing = api_grpc.ClearingServiceStub(grpc.insecure_channel(national.address))
    assert open_by_kind(national) == dict.fromkeys(KINDS, 0.0)
    assert METRIC not in scraped(tree[PROVINCE]), "reconciliation is kept at the national node only"

    clearing.AppendJournalEntries(
        api.AppendJournalEntriesRequest(
            request_id="110000000000202601051000001",
            source_admdvs="110000",
            entries=[journal_only_entry(), journal_only_entry()],
        ),
        timeout=20,
    )
    assert reconciled(clearing) == 2
    assert open_by_kind(national) == dict.fromkeys(KINDS, 0.0) | {"missing_at_treatment": 2.0}

    assert reconciled(clearing) == 2
    assert open_by_kind(national)["missing_at_treatment"] == 2.0, (
        "a day reconciled again is not counted twice"
    )
    assert reconciled(clearing, admdvs="630000") == 0
    assert open_by_kind(national)["missing_at_treatment"] == 2.0, "a run over other provinces leaves them"

    clearing_database = next(s.database for s in national.services if s.group.name == "clearing")
    with clearing_database.unit_of_work(write=True) as uow:
        uow.session.execute(delete(JournalEntryRecord))
        uow.commit()
    assert reconciled(clearing) == 0
    assert open_by_kind(national) == dict.fromkeys(KINDS, 0.0)
