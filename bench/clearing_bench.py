"""Monthly clearing at national scale: a month of 1,000,000 journal entries cleared through RunClearing.

Starts a clearing-only national node in process (SQLite in a temporary folder by default, or
``--database-url`` for an empty PostgreSQL database — e.g. on a throwaway server started the
way tests/conftest.py starts one). The month's journal is LOADED directly into the node's
database with SQLAlchemy core bulk inserts — the rows AppendJournalEntries would have
written (31 provinces, every pair, 2% reversals of settlements of the same month, a few
entries of the month before that arrived after it was cleared) — because a million outbox
deliveries would measure settlement, not clearing. Everything measured goes through the
generated stub: GetAdvanceStatus on the uncleared month, then RunClearing and GetClearingRun
polled until the run is done, then ListStatements and GetLedger to check that the nets sum
to zero and the ledger balances. Prints the figures and the machine, and records them under
the database's name in bench/results/clearing_bench.json.

The other half of month-end, reconciling a day of 100,000 settlements across the three
sides, is bench/reconcile_bench.py (it needs a federation, not one node).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import insert, text

from measure import database_name, machine, national_node
from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import clearing_service_pb2_grpc as api_grpc
from yidi.clearing.v1 import statement_pb2
from yidi_runtime.db import Database
from yidi_runtime.server import Node
from yidi_runtime.wire import wall_clock
from yidi_services.clearing.models import JournalEntryRecord
from yidi_services.clearing.periods import Period

RESULTS = Path(__file__).resolve().parent / "results"
PROVINCE_CODES = (
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65"
)
PROVINCES = [f"{code}0000" for code in PROVINCE_CODES.split()]
BATCH = 10_000
REVERSAL_SHARE = 0.02
LATE_SHARE = 0.001
DONE = (statement_pb2.JOB_STATE_SUCCEEDED, statement_pb2.JOB_STATE_FAILED)


def _row(serial: int, insured: str, treatment: str, at: datetime, fund: int, cash: int) -> dict[str, Any]:
    return {
        "msgid": f"H{treatment[:2]}0105000012026{serial:015d}",
        "content_sha256": f"{serial:064x}",
        "source_admdvs": treatment,
        "setl_id": f"{treatment}SETL{serial:020d}",
        "kind": "settlement",
        "reverses_msgid": None,
        "mdtrt_id": f"{treatment}MDTR{serial:020d}",
        "psn_no": f"{insured}{serial:024d}",
        "fixmedins_code": f"H{treatment[:2]}010500001",
        "insuplc_admdvs": insured[:2] + "0100",
        "mdtrtarea_admvs": treatment[:2] + "0100",
        "insured_province": insured,
        "treatment_province": treatment,
        "insutype": "310",
        "clr_type": "21",
        "medfee_sumamt_fen": fund + cash,
        "fund_pay_sumamt_fen": fund,
        "acct_pay_fen": 0,
        "psn_cash_pay_fen": cash,
        "setl_time": at,
        "record_time": at + timedelta(seconds=2),
        "payload_digest": b"",
        "signature": b"",
        "signer_admdvs": "",
        "cleared_period": None,
    }


def _reversed(original: dict[str, Any], serial: int) -> dict[str, Any]:
    row = dict(original)
    negated = {
        name: -original[name] for name in ("medfee_sumamt_fen", "fund_pay_sumamt_fen", "psn_cash_pay_fen")
    }
    moment = original["setl_time"] + timedelta(minutes=30)
    return (
        row
        | negated
        | {
            "msgid": f"R{serial:029d}",
            "content_sha256": f"{serial:064x}",
            "setl_id": f"{original['treatment_province']}SETL{serial:020d}",
            "kind": "reversal",
            "reverses_msgid": original["msgid"],
            "setl_time": moment,
            "record_time": moment,
        }
    )


def journal_rows(period: Period, rows: int, seed: int = 20261125) -> Iterator[list[dict[str, Any]]]:
    """The month's journal in batches, in arrival order: settlements through the month, some reversed, a few late."""
    rng = random.Random(seed)
    span = (period.end - period.start).total_seconds()
    previous = period.previous()
    batch: list[dict[str, Any]] = []
    reversible: list[dict[str, Any]] = []
    for serial in range(rows):
        if reversible and rng.random() < REVERSAL_SHARE:
            batch.append(_reversed(reversible.pop(rng.randrange(len(reversible))), serial))
        else:
            insured, treatment = rng.sample(PROVINCES, 2)
            late = rng.random() < LATE_SHARE
            # Entries arrive in settlement order, within seconds; a late one is from last month.
            offset = rng.random() if late else serial / rows
            at = (previous.start if late else period.start) + timedelta(seconds=offset * (span - 3600))
            row = _row(
                serial,
                insured,
                treatment,
                at.astimezone(UTC),
                rng.randint(1_000, 2_000_000),
                rng.randint(0, 50_000),
            )
            batch.append(row)
            if not late and len(reversible) < 1000:
                reversible.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def load(database: Database, period: Period, rows: int) -> float:
    """Bulk-load the journal (loading only: the measured work goes through the stub); seconds taken."""
    started = time.perf_counter()
    with database.engine.begin() as connection:
        for batch in journal_rows(period, rows):
            connection.execute(insert(JournalEntryRecord), batch)
    if database.dialect == "postgresql":
        with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            # What autovacuum does to a month of appends (PostgreSQL 13+ vacuums insert-only tables too).
            connection.execute(text("VACUUM ANALYZE clearing_journal"))
    return time.perf_counter() - started


def clear(stub: api_grpc.ClearingServiceStub, period: Period) -> dict[str, Any]:
    """Time RunClearing until done, sampling its progress."""
    started = time.perf_counter()
    run = stub.RunClearing(
        api.RunClearingRequest(request_id=f"BENCH{time.time_ns()}", period=str(period))
    ).run
    samples = []
    while run.state not in DONE:
        time.sleep(0.5)
        run = stub.GetClearingRun(api.GetClearingRunRequest(run_id=run.run_id), timeout=30).run
        samples.append((round(time.perf_counter() - started, 1), run.entries_counted))
    elapsed = time.perf_counter() - started
    if run.state != statement_pb2.JOB_STATE_SUCCEEDED:
        raise SystemExit(f"clearing failed: {run.failure_reason}")
    return {
        "clearing_s": round(elapsed, 2),
        "entries_counted": run.entries_counted,
        "entries_per_s": round(run.entries_counted / elapsed),
        "statements": len(run.statement_ids),
        "progress_samples": samples[:: max(1, len(samples) // 10)],
    }


def run(node: Node, rows: int) -> dict[str, Any]:
    period = Period.of(wall_clock()).previous()  # the month before this one (China time) has ended
    figures: dict[str, Any] = {"rows": rows, "period": str(period)}
    figures["load_s"] = round(load(node.services[0].database, period, rows), 1)
    with grpc.insecure_channel(node.address) as channel:
        stub = api_grpc.ClearingServiceStub(channel)
        stub.SetAdvance(
            api.SetAdvanceRequest(request_id="BENCHADV", admdvs="630000", year=period.year, amount_fen=10**12)
        )
        started = time.perf_counter()
        status = stub.GetAdvanceStatus(api.GetAdvanceStatusRequest(admdvs="630000", year=period.year)).status
        figures["advance_status_ms"] = round((time.perf_counter() - started) * 1000, 1)
        figures["advance_used_fen"] = status.used_fen
        figures |= clear(stub, period)
        statements = stub.ListStatements(
            api.ListStatementsRequest(period=str(period), page_size=100)
        ).statements
        ledger = stub.GetLedger(api.GetLedgerRequest())
        figures["nets_sum_fen"] = sum(statement.net_fen for statement in statements)
        figures["ledger_balanced"] = ledger.balanced
        figures["advance_used_after_fen"] = stub.GetAdvanceStatus(
            api.GetAdvanceStatusRequest(admdvs="630000", year=period.year)
        ).status.used_fen
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--database-url", default=None, help="empty PostgreSQL database (default: SQLite in a temp dir)"
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="journal entries in the month")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    database = database_name(args.database_url)
    with national_node("clearing", args.database_url) as node:
        figures = run(node, args.rows)
    print(
        f"{database}: loaded {figures['rows']:,} journal rows for {figures['period']} in {figures['load_s']} s (bulk insert)"
    )
    print(f"  GetAdvanceStatus over the uncleared month: {figures['advance_status_ms']} ms")
    print(
        f"  RunClearing: {figures['entries_counted']:,} entries cleared into {figures['statements']} statements "
        f"in {figures['clearing_s']} s ({figures['entries_per_s']:,} entries/s)"
    )
    print(f"  nets sum to {figures['nets_sum_fen']} fen; ledger balanced: {figures['ledger_balanced']}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "clearing_bench.json"
    document = json.loads(path.read_text()) if path.exists() else {}
    document[database] = {"machine": machine(), **figures}
    path.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
