"""`yidi clearing` and `yidi reconcile` through typer's CliRunner, against nodes running in process.

The clearing commands run against a national node whose journal is fed through
AppendJournalEntries, as treatment nodes' outboxes feed it, with settlements of last month
(China time) so the month has ended and may be cleared. `yidi reconcile` runs on a small
federation where the Qinghai story's settlement was made at a Jiaxing hospital's window and
then lost on its way to the national journal and to the Qinghai node (``yidi_harness.faults``).
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import grpc
import pytest
import structlog
from typer.testing import CliRunner, Result

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import clearing_service_pb2_grpc as api_grpc
from yidi.clearing.v1 import journal_pb2
from yidi_cli.main import app
from yidi_core.codes import NATIONAL_REGION
from yidi_harness.faults import lose_settlement_on_the_way
from yidi_harness.federation import Federation, NodeSpec, Topology, load_sample_data, start_federation
from yidi_harness.stories import STORIES, Stage
from yidi_runtime.config import Role
from yidi_runtime.logs import configure_logging
from yidi_runtime.server import Node
from yidi_runtime.wire import CHINA_STANDARD_TIME, china_day, timestamp_message
from yidi_services.node import start_node
from yidi_testing import free_port, settings_for

_SEQUENCE = itertools.count(1)
runner = CliRunner()


@pytest.fixture(autouse=True)
def quiet_nodes() -> Iterator[None]:
    """The nodes run in this process: their logs must not land in the command's captured output."""
    configure_logging("error", "console", io.StringIO())
    yield
    structlog.reset_defaults()


def last_month() -> date:
    """The 10th of last month in China: a month that has ended, so it may be cleared."""
    first_of_this_month = china_day(datetime.now(UTC)).replace(day=1)
    return (first_of_this_month - timedelta(days=1)).replace(day=10)


def entry(insured: str, treatment: str, fund_fen: int, day: date) -> journal_pb2.JournalEntry:
    """A settlement as a treatment node's outbox delivers it (cash 10.00 on top of the fund payment)."""
    number = next(_SEQUENCE)
    return journal_pb2.JournalEntry(
        msgid=f"H{treatment[:4]}0500001{number:08d}",
        setl_id=f"SETL{number:08d}",
        kind=journal_pb2.JOURNAL_ENTRY_KIND_SETTLEMENT,
        mdtrt_id=f"MDTR{number:08d}",
        psn_no=f"PSN{number:08d}",
        fixmedins_code="H11010500001",
        insuplc_admdvs=insured,
        mdtrtarea_admvs=treatment,
        insutype="310",
        clr_type="21",
        medfee_sumamt_fen=fund_fen + 1000,
        fund_pay_sumamt_fen=fund_fen,
        psn_cash_pay_fen=1000,
        setl_time=timestamp_message(datetime(day.year, day.month, day.day, 10, tzinfo=CHINA_STANDARD_TIME)),
    )


@pytest.fixture
def national(tmp_path: Path, database_url: str | None) -> Iterator[Node]:
    """A national node running the clearing service, its journal holding last month's settlements.

    Qinghai's insured: 1,234.56 + 100.00 at Jiaxing hospitals; Zhejiang's: 50.00 in Qinghai;
    Hebei's: 300.00 in Beijing.
    """
    started = start_node(
        settings_for(
            tmp_path,
            database_url,
            role="national",
            region=NATIONAL_REGION,
            auto_migrate=True,
            services=("clearing",),
        )
    )
    day = last_month()
    batches = {
        "330000": [entry("630000", "330402", 123456, day), entry("630102", "330402", 10000, day)],
        "630000": [entry("330100", "630102", 5000, day)],
        "110000": [entry("131000", "110101", 30000, day)],
    }
    try:
        with grpc.insecure_channel(started.address) as channel:
            stub = api_grpc.ClearingServiceStub(channel)
            for source, entries in batches.items():
                stub.AppendJournalEntries(
                    api.AppendJournalEntriesRequest(
                        request_id=f"J-{source}", source_admdvs=source, entries=entries
                    ),
                    timeout=30,
                )
        yield started
    finally:
        started.stop(0)


def yidi(*arguments: str) -> Result:
    return runner.invoke(app, [*arguments, "--insecure"])


def period_of(day: date) -> str:
    return f"{day:%Y-%m}"


def test_clearing_run_prints_each_province_statement_and_nets_summing_to_zero(national: Node) -> None:
    period = period_of(last_month())
    run = yidi("clearing", "run", "--period", period, "--address", national.address)
    assert run.exit_code == 0, run.output
    out = run.stdout
    assert re.search(
        rf"clearing run \S+: {period} cleared, 4 journal entries counted, 4 statements issued", out
    )
    for province in ("110000", "130000", "330000", "630000"):
        assert f"Statement {period}/{province} · issued" in out
    qinghai = out.split(f"Statement {period}/630000", 1)[1]
    assert re.search(r"630000 → 330000\s*│ payable\s*│\s*2 │\s*1,?354\.56 │\s*1,?334\.56 │", qinghai)
    assert re.search(r"330000 → 630000\s*│ receivable\s*│\s*1 │\s*60\.00 │\s*50\.00 │", qinghai)
    assert re.search(r"│ net\s*│.*│\s*-1,?284\.56 │ the province pays", qinghai)
    overview = out.split(f"Clearing statements {period}", 1)[1]
    assert re.search(r"│ 330000\s*│ issued\s*│\s*50\.00 │\s*1,?334\.56 │\s*1,?284\.56 │", overview)
    assert re.search(r"│ all provinces\s*│.*│\s*0\.00 │", overview)
    assert "✓ the 4 net positions sum to 0.00" in out

    again = yidi("clearing", "run", "--period", period, "--address", national.address)
    assert again.exit_code == 0 and again.stdout == run.stdout, "the same period answers the same statements"


def test_statements_print_as_tables_and_export_one_csv_row_per_line(national: Node, tmp_path: Path) -> None:
    period = period_of(last_month())
    assert yidi("clearing", "run", "--period", period, "--address", national.address).exit_code == 0

    exported = tmp_path / "statements.csv"
    shown = yidi(
        "clearing", "statements", "--period", period, "--csv", str(exported), "--address", national.address
    )
    assert shown.exit_code == 0, shown.output
    assert f"Statement {period}/110000 · issued" in shown.stdout
    assert "✓ the 4 net positions sum to 0.00" in shown.stdout
    assert f"wrote 6 statement lines to {exported}" in shown.stdout
    rows = list(csv.DictReader(exported.open(encoding="utf-8")))

    piped = yidi("clearing", "statements", "--period", period, "--csv", "-", "--address", national.address)
    assert piped.exit_code == 0, piped.output
    assert list(csv.DictReader(io.StringIO(piped.stdout))) == rows, "only the CSV goes to standard output"

    assert {row["statement_id"] for row in rows} == {
        f"{period}/{p}" for p in ("110000", "130000", "330000", "630000")
    }
    assert all(row["period"] == period and row["state"] == "issued" for row in rows)
    by_line = {(row["province"], row["insured_province"], row["treatment_province"]): row for row in rows}
    qinghai_pays = by_line[("630000", "630000", "330000")]
    assert qinghai_pays == {
        "statement_id": f"{period}/630000",
        "period": period,
        "province": "630000",
        "state": "issued",
        "payable": "1334.56",
        "receivable": "50.00",
        "net": "-1284.56",
        "insured_province": "630000",
        "treatment_province": "330000",
        "side": "payable",
        "settlement_count": "2",
        "medfee_sumamt": "1354.56",
        "fund_pay_sumamt": "1334.56",
        "adjustment": "false",
        "adjustment_note": "",
    }
    assert by_line[("330000", "630000", "330000")]["side"] == "receivable"
    assert by_line[("110000", "130000", "110000")]["net"] == "300.00"
    nets = {row["province"]: row["net"] for row in rows}
    assert sum(int(net.replace(".", "")) for net in nets.values()) == 0

    one = yidi(
        "clearing", "statements", "--period", period, "--province", "130000", "--address", national.address
    )
    assert one.exit_code == 0 and f"{period}/130000" in one.stdout and f"{period}/110000" not in one.stdout


def test_advance_usage_alerts_then_clearing_leaves_a_ledger_summing_to_zero(national: Node) -> None:
    address, year = national.address, str(last_month().year)
    qinghai = ("--province", "630000", "--year", year, "--address", address)
    set_ = yidi("clearing", "advance", "set", "--amount", "1000.00", *qinghai)
    assert set_.exit_code == 0, set_.output
    assert f"Advance of 630000 for {year}" in set_.stdout
    assert re.search(r"│\s*1,?000\.00 │\s*1,?334\.56 │\s*1\.3346 │ red", set_.stdout), set_.stdout
    alerts = yidi("clearing", "alerts", "--province", "630000", "--active-only", "--address", address)
    assert alerts.exit_code == 0 and re.search(r"│ 630000\s*│ advance_usage\s*│ red\s*│ yes", alerts.stdout)
    bad = yidi("clearing", "advance", "set", "--amount", "1.001", *qinghai)
    assert bad.exit_code == 2 and "not a positive amount in yuan" in bad.output

    assert yidi("clearing", "run", "--period", period_of(last_month()), "--address", address).exit_code == 0
    ledger = yidi("clearing", "ledger", "--address", address)
    assert ledger.exit_code == 0, ledger.output
    assert re.search(r"│ 630000\s*│ payable\s*│\s*1,?334\.56 │", ledger.stdout)
    assert re.search(r"│ 330000\s*│ receivable\s*│\s*-1,?334\.56 │", ledger.stdout)
    assert re.search(r"│ 000000\s*│ advance\s*│\s*1,?000\.00 │", ledger.stdout)
    assert re.search(r"│ all accounts\s*│ balanced\s*│\s*0\.00 │", ledger.stdout)
    status = yidi("clearing", "advance", "status", *qinghai)
    assert status.exit_code == 0
    assert re.search(r"│\s*1,?000\.00 │\s*0\.00 │\s*0\.0000 │ none", status.stdout), "cleared: nothing used"


def test_refusals_name_the_stable_reason_and_an_unreachable_node_exits_3(national: Node) -> None:
    refused = yidi("clearing", "run", "--period", "2026-13", "--address", national.address)
    assert refused.exit_code == 1
    assert "refused: INVALID_ARGUMENT" in refused.stderr and "period:" in refused.stderr

    unfinished = period_of(china_day(datetime.now(UTC)))
    early = yidi("clearing", "run", "--period", unfinished, "--address", national.address)
    assert early.exit_code == 1 and "has not ended yet" in early.stderr

    unreachable = yidi("clearing", "ledger", "--address", f"127.0.0.1:{free_port()}")
    assert unreachable.exit_code == 3 and "node unreachable" in unreachable.stderr
    backwards = yidi("reconcile", "--date", "2026-11-25", "--to", "2026-11-24", "--address", national.address)
    assert backwards.exit_code == 2


# -- reconciliation on a federation ------------------------------------------------------------------

TOPOLOGY = Topology(
    (
        NodeSpec(NATIONAL_REGION, Role.NATIONAL, "national"),
        NodeSpec("330000", Role.PROVINCE, "zhejiang", NATIONAL_REGION),
        NodeSpec("630000", Role.PROVINCE, "qinghai", NATIONAL_REGION),
        NodeSpec("330400", Role.CITY, "jiaxing", "330000"),
    )
)


@pytest.fixture
def federation(tmp_path: Path, database_factory: Callable[[], str | None]) -> Iterator[Federation]:
    with start_federation(TOPOLOGY, tmp_path, database_factory) as started:
        load_sample_data(started)
        yield started


def test_reconcile_finds_the_lost_qinghai_settlement_and_repair_leaves_none_open(
    federation: Federation,
) -> None:
    stage = Stage(federation, datetime.now(UTC))
    story = STORIES[1].play(stage)
    assert story.ok and story.settlement is not None, story.steps
    msgid = story.settlement.medins_setl_id
    lose_settlement_on_the_way(federation, story.settlement.fixmedins_code, msgid, "630000")
    first, last = str(stage.today), str(china_day(datetime.now(UTC)))
    national = federation.address(NATIONAL_REGION)

    found = yidi("reconcile", "--date", first, "--to", last, "--address", national)
    assert found.exit_code == 4, found.output
    assert "1 differences" in found.stdout
    assert re.search(rf"MISSING_AT_NATIONAL\s*│ {msgid}", found.stdout)
    assert "MISSING_AT_INSURED" not in found.stdout  # the Qinghai node asked Jiaxing and confirmed it
    assert re.search(
        r"630000 → 330000\s*│ 390\s*│\s*1 · ([\d,.]+) │\s*0 · 0\.00 │\s*1 · \1 │\s*1 │", found.stdout
    )
    assert "`--repair` repairs" in found.stdout

    repaired = yidi("reconcile", "--date", first, "--to", last, "--repair", "--address", national)
    assert repaired.exit_code == 0, repaired.output
    assert "Repair: 1 repaired, 0 left for an operator" in repaired.stdout
    again = repaired.stdout.split("reconciling again after the repair", 1)[1]
    assert "0 differences" in again and "✓ reconciled: no difference open" in again

    clean = yidi("reconcile", "--date", first, "--to", last, "--address", national)
    assert clean.exit_code == 0 and "1 settlements compared, 0 differences" in clean.stdout
