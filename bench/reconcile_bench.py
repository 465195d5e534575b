"""Three-way reconciliation of one day of cross-province settlements: Reconcile and RepairDiscrepancies time.

Starts a federation in process — the national node, a treatment province (Zhejiang) and an
insured province (Qinghai) — and writes one day (yesterday in China) of ``--count``
settlements straight into their tables, as if made through the HIS: the treatment node's
settlement records, the insured node's confirmed applications, the national journal. One
in a thousand is then made to differ (journal entry missing, insured hold voided, amounts
changed). Timed through the ClearingService stub: Reconcile of that day until the run
succeeds (every node asked page by page, the journal read, the comparison), and the repair
of what it found; the run's report lines (ListReconciliationLines) are printed.

    .venv/bin/python bench/reconcile_bench.py                      # 100,000 on SQLite files
    .venv/bin/python bench/reconcile_bench.py --postgres-url postgresql+psycopg://user@127.0.0.1:5432

With ``--postgres-url`` (a server, no database name) each node gets a fresh database,
dropped afterwards. Figures are printed and written to bench/results/reconcile_bench.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, update

from measure import machine
from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import clearing_service_pb2_grpc as api_grpc
from yidi.clearing.v1 import statement_pb2
from yidi.type.v1 import settlement_result_pb2
from yidi_codec.documents import settlement_result_columns
from yidi_core.codes import NATIONAL_REGION
from yidi_harness.federation import Federation, NodeSpec, Topology, start_federation
from yidi_harness.polling import eventually
from yidi_harness.postgres_server import fresh_databases
from yidi_runtime.config import Role
from yidi_runtime.db import Database
from yidi_runtime.logs import configure_logging
from yidi_runtime.peers import message_id
from yidi_runtime.wire import china_day, date_message
from yidi_services.clearing.models import JournalEntryRecord
from yidi_services.settlement.insured.models import ApplicationRow
from yidi_services.settlement.treatment.models import SettlementRow

RESULTS = Path(__file__).resolve().parent / "results"
TOPOLOGY = Topology(
    (
        NodeSpec(NATIONAL_REGION, Role.NATIONAL, "national"),
        NodeSpec("330000", Role.PROVINCE, "zhejiang", NATIONAL_REGION),
        NodeSpec("630000", Role.PROVINCE, "qinghai", NATIONAL_REGION),
    )
)
HOSPITAL = "H33010200001"
_BATCH = 10_000
_PLANT_EVERY = 1_000
_RUN_WITHIN_S = 1800.0
"""How long a reconciliation run may take before the bench gives up on it."""


def _database(federation: Federation, region: str, service: str) -> Database:
    return next(s.database for s in federation.nodes[region].services if s.group.name == service)


def _rows(count: int, day_start: datetime) -> Iterator[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """The treatment record, the insured application and the journal entry of each settlement."""
    spacing = timedelta(days=1) / count
    for number in range(count):
        msgid = f"{HOSPITAL}{number:018d}"
        setl_id, mdtrt_id = f"330000S{number:023d}", f"330000M{number:023d}"
        psn_no = f"630000{number % 5000:024d}"
        fund, cash = 1_000 + number % 9_000, 500 + number % 700
        at = day_start + spacing * number
        amounts = settlement_result_pb2.SettlementAmounts(
            medfee_sumamt_fen=fund + cash, fund_pay_sumamt_fen=fund, psn_cash_pay_fen=cash
        )
        money = {
            "medfee_sumamt_fen": fund + cash,
            "fund_pay_sumamt_fen": fund,
            "acct_pay_fen": 0,
            "psn_cash_pay_fen": cash,
        }
        places = {"psn_no": psn_no, "insuplc_admdvs": "630000", "mdtrtarea_admvs": "330102"}
        yield (
            {
                **places,
                "setl_id": setl_id,
                "medins_setl_id": msgid,
                "insured_request_id": f"{msgid}:apply",
                "mdtrt_id": mdtrt_id,
                "fixmedins_code": HOSPITAL,
                "insutype": "390",
                "med_type": "21",
                "clr_type": "21",
                "pay_loc": "4",
                "invono": "",
                "setl_time": at,
                **settlement_result_columns(settlement_result_pb2.SettlementResult(amounts=amounts)),
                "audit_flag": False,
                "reversed": False,
                "reverses_setl_id": None,
            },
            {
                **money,
                "request_id": f"{msgid}:apply",
                "state": "confirmed",
                "psn_no": psn_no,
                "year": at.year,
                "setl_id": setl_id,
                "policy_version": "630000/390@2026-01-01#1",
                "changes": [],
                "account_delta_fen": 0,
                "created_at": at - timedelta(milliseconds=50),
                "hold_expires_at": at + timedelta(minutes=5),
                "confirmed_at": at,
                "voided_at": None,
            },
            {
                **places,
                **money,
                "msgid": msgid,
                "content_sha256": "0" * 64,
                "source_admdvs": "330000",
                "setl_id": setl_id,
                "kind": "settlement",
                "reverses_msgid": None,
                "mdtrt_id": mdtrt_id,
                "fixmedins_code": HOSPITAL,
                "insured_province": "630000",
                "treatment_province": "330000",
                "insutype": "390",
                "clr_type": "21",
                "setl_time": at,
                "record_time": at,
                "payload_digest": b"",
                "signature": b"",
                "signer_admdvs": "",
                "cleared_period": None,
            },
        )


def _seed(federation: Federation, count: int, day_start: datetime) -> int:
    """Write the day, then make one in a thousand differ; how many differences were planted."""
    targets = (
        (_database(federation, "330000", "settlement"), SettlementRow),
        (_database(federation, "630000", "settlement"), ApplicationRow),
        (_database(federation, NATIONAL_REGION, "clearing"), JournalEntryRecord),
    )
    batches: list[list[dict[str, Any]]] = [[], [], []]

    def flush() -> None:
        for (database, model), batch in zip(targets, batches, strict=True):
            if batch:
                with database.engine.begin() as connection:
                    connection.execute(insert(model), batch)
                batch.clear()

    for rows in _rows(count, day_start):
        for batch, row in zip(batches, rows, strict=True):
            batch.append(row)
        if len(batches[0]) >= _BATCH:
            flush()
    flush()
    planted = [f"{HOSPITAL}{number:018d}" for number in range(0, count, _PLANT_EVERY)]
    lost, voided, changed = planted[0::3], planted[1::3], planted[2::3]
    journal = targets[2][0]
    with journal.engine.begin() as connection:
        connection.execute(JournalEntryRecord.__table__.delete().where(JournalEntryRecord.msgid.in_(lost)))
        connection.execute(
            update(JournalEntryRecord)
            .where(JournalEntryRecord.msgid.in_(changed))
            .values(fund_pay_sumamt_fen=JournalEntryRecord.fund_pay_sumamt_fen + 1)
        )
    with targets[1][0].engine.begin() as connection:
        connection.execute(
            update(ApplicationRow)
            .where(ApplicationRow.request_id.in_([f"{msgid}:apply" for msgid in voided]))
            .values(state="expired", voided_at=day_start)
        )
    return len(planted)


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    answer = call()
    return answer, round(time.perf_counter() - started, 3)


def _reconciled(stub: api_grpc.ClearingServiceStub, day: datetime) -> Any:
    run = stub.Reconcile(
        api.ReconcileRequest(request_id=message_id(NATIONAL_REGION), start_date=date_message(china_day(day))),
        timeout=60,
    ).run

    def finished() -> Any:
        got = stub.GetReconciliationRun(api.GetReconciliationRunRequest(run_id=run.run_id), timeout=60).run
        return (
            got if got.state in (statement_pb2.JOB_STATE_SUCCEEDED, statement_pb2.JOB_STATE_FAILED) else None
        )

    run = eventually(finished, within_s=_RUN_WITHIN_S, what=f"reconciliation run {run.run_id} finishes")
    if run.state != statement_pb2.JOB_STATE_SUCCEEDED:
        raise SystemExit(f"the reconciliation run failed: {run}")
    return run


@contextmanager
def _databases(postgres_url: str | None) -> Iterator[Callable[[], str | None] | None]:
    """A fresh PostgreSQL database per node (dropped afterwards), or None for SQLite files."""
    if postgres_url is None:
        yield None
        return
    with fresh_databases(postgres_url, "yidi_bench") as create:
        yield create


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100_000, help="settlements in the day (bounded)")
    parser.add_argument("--postgres-url", help="PostgreSQL server URL without a database name")
    args = parser.parse_args()
    count = max(1_000, min(args.count, 1_000_000))
    configure_logging("warning")
    print(machine())
    yesterday = china_day(datetime.now(UTC)) - timedelta(days=1)
    day_start = datetime.combine(yesterday, datetime.min.time(), UTC) - timedelta(hours=8)
    with (
        tempfile.TemporaryDirectory(prefix="yidi-reconcile-bench-") as folder,
        _databases(args.postgres_url) as database_for,
        start_federation(TOPOLOGY, Path(folder), database_for, log_level="warning") as federation,
    ):
        planted, seeded_s = _timed(lambda: _seed(federation, count, day_start))
        print(f"seeded {count:,} settlements on three sides in {seeded_s} s; {planted} made to differ")
        stub = api_grpc.ClearingServiceStub(federation.channel(NATIONAL_REGION))
        run, reconcile_s = _timed(lambda: _reconciled(stub, day_start))
        print(
            f"Reconcile: {run.compared_count:,} compared, {run.discrepancy_count} discrepancies in "
            f"{reconcile_s} s ({run.compared_count / reconcile_s:,.0f} settlements/s)"
        )
        for line in stub.ListReconciliationLines(
            api.ListReconciliationLinesRequest(run_id=run.run_id), timeout=60
        ).lines:
            print(
                f"  report {line.insured_province}→{line.treatment_province} {line.insutype}: settlements "
                f"treatment {line.treatment.count:,}, national {line.national.count:,}, "
                f"insured {line.insured.count:,}; {line.discrepancy_count} discrepancies"
            )
        repaired, repair_s = _timed(
            lambda: stub.RepairDiscrepancies(
                api.RepairDiscrepanciesRequest(request_id=message_id(NATIONAL_REGION), run_id=run.run_id),
                timeout=600,
            )
        )
        print(
            f"RepairDiscrepancies: {repaired.repaired_count} repaired, {repaired.failed_count} left in {repair_s} s"
        )
        again, again_s = _timed(lambda: _reconciled(stub, day_start))
        print(f"Reconcile again: {again.discrepancy_count} discrepancies in {again_s} s")
    report = {
        "machine": machine(),
        "database": "postgresql" if args.postgres_url else "sqlite",
        "count": count,
        "planted": planted,
        "seed_s": seeded_s,
        "reconcile_s": reconcile_s,
        "discrepancies": run.discrepancy_count,
        "repair_s": repair_s,
        "repaired": repaired.repaired_count,
        "left_open": repaired.failed_count,
        "reconcile_again_s": again_s,
        "discrepancies_after_repair": again.discrepancy_count,
    }
    RESULTS.mkdir(exist_ok=True)
    name = f"reconcile_bench_{report['database']}.json"
    (RESULTS / name).write_text(json.dumps(report, indent=2))
    print(f"written to {RESULTS / name}")


if __name__ == "__main__":
    main()
