"""The national double-entry ledger through the stub, its zero-sum health signal, and the clearing configuration."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from clearing_support import Clock, National, beijing, national_node, next_id, refusal, settlement
from grpc_health.v1 import health_pb2
from sqlalchemy import insert

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import clearing_service_pb2_grpc as api_grpc
from yidi.clearing.v1 import ledger_pb2
from yidi_runtime.config import ConfigError, load_settings
from yidi_services.clearing import ledger
from yidi_services.clearing.ledger import AccountKind, Posting, UnbalancedEntry
from yidi_services.clearing.models import LedgerEntryRecord, LedgerPostingRecord
from yidi_testing import NodeSpec, health_of, node_tree

QINGHAI, ZHEJIANG = "630000", "330000"
IMBALANCE = ledger_pb2.ALERT_KIND_LEDGER_IMBALANCE


@pytest.fixture
def national(tmp_path: Path, database_url: str | None) -> Iterator[National]:
    with national_node(tmp_path, database_url, Clock(beijing(2026, 6, 3))) as started:
        yield started


def test_every_entry_balances_and_the_accounts_follow_the_postings_scheme(national: National) -> None:
    empty = national.stub.GetLedger(api.GetLedgerRequest(), timeout=10)
    assert (list(empty.accounts), empty.total_fen, empty.balanced) == ([], 0, True)
    national.stub.SetAdvance(
        api.SetAdvanceRequest(request_id=next_id("A"), admdvs=QINGHAI, year=2026, amount_fen=500_000)
    )
    national.deliver(
        settlement("630100", "330400", 120_000, beijing(2026, 5, 3)),
        settlement("330100", "630100", 20_000, beijing(2026, 5, 4)),
    )
    national.clear("2026-05")
    balances = national.balances()
    assert balances == {
        ("000000", ledger_pb2.ACCOUNT_KIND_ADVANCE): 500_000,
        (QINGHAI, ledger_pb2.ACCOUNT_KIND_ADVANCE): -500_000,
        (QINGHAI, ledger_pb2.ACCOUNT_KIND_PAYABLE): 120_000,
        (QINGHAI, ledger_pb2.ACCOUNT_KIND_RECEIVABLE): -20_000,
        (ZHEJIANG, ledger_pb2.ACCOUNT_KIND_PAYABLE): 20_000,
        (ZHEJIANG, ledger_pb2.ACCOUNT_KIND_RECEIVABLE): -120_000,
    }
    national.stub.ConfirmStatement(
        api.ConfirmStatementRequest(request_id=next_id("C"), statement_id="2026-05/630000")
    )
    qinghai = national.stub.GetLedger(api.GetLedgerRequest(admdvs=QINGHAI), timeout=10)
    assert {(a.kind, a.balance_fen) for a in qinghai.accounts} == {
        (ledger_pb2.ACCOUNT_KIND_ADVANCE, -500_000),
        (ledger_pb2.ACCOUNT_KIND_PAYABLE, 0),
        (ledger_pb2.ACCOUNT_KIND_RECEIVABLE, 0),
        (ledger_pb2.ACCOUNT_KIND_CLEARING_TRANSIT, 100_000),
    }
    assert qinghai.balanced and qinghai.total_fen == 0

    entries = national.ledger_entries()
    assert len(entries) == 3
    assert all(
        sum(p.amount_fen for p in entry.postings) == 0 and entry.HasField("post_time") for entry in entries
    )
    assert entries[1].source_id.startswith("CR-2026-05") and "2026-05" in entries[1].description
    paged, token = [], ""
    while True:
        page = national.stub.ListLedgerEntries(api.ListLedgerEntriesRequest(page_size=1, page_token=token))
        paged += page.entries
        token = page.next_page_token
        if not token:
            break
    assert paged == entries
    assert [e.entry_id for e in national.ledger_entries(admdvs=ZHEJIANG)] == [entries[1].entry_id]
    assert len(national.ledger_entries(admdvs="000000")) == 1
    assert refusal(national.stub.GetLedger, api.GetLedgerRequest(admdvs="630100"))[1] == "INVALID_CODE"
    bad_token = api.ListLedgerEntriesRequest(page_token=token or "bm90LWEtdG9rZW4")
    assert refusal(national.stub.ListLedgerEntries, bad_token)[2] == ["page_token"]


def test_an_unbalanced_entry_is_never_written(national: National) -> None:
    database = national.node.services[0].database
    with database.unit_of_work(write=True) as uow, pytest.raises(UnbalancedEntry):
        ledger.post(
            uow.session,
            "broken",
            "one side only",
            [Posting(QINGHAI, AccountKind.PAYABLE, 10), Posting(ZHEJIANG, AccountKind.RECEIVABLE, -9)],
            datetime.now(UTC),
        )
    assert national.ledger_entries() == []


def test_a_ledger_that_stops_summing_to_zero_raises_an_alert_and_the_gauge(national: National) -> None:
    registry = national.node.metrics.registry
    national.alerts()
    assert registry.get_sample_value("yidi_clearing_ledger_imbalance_fen") == 0
    database = national.node.services[0].database
    with database.unit_of_work(write=True) as uow:  # tampering, below the service
        seq = uow.session.execute(
            insert(LedgerEntryRecord)
            .values(source_id="tamper", description="", post_time=datetime.now(UTC))
            .returning(LedgerEntryRecord.seq)
        ).scalar_one()
        uow.session.execute(
            insert(LedgerPostingRecord).values(entry_seq=seq, admdvs=QINGHAI, kind="payable", amount_fen=7)
        )
        uow.commit()
    broken = national.stub.GetLedger(api.GetLedgerRequest(), timeout=10)
    assert (broken.total_fen, broken.balanced) == (7, False)
    alerts = [alert for alert in national.alerts(active_only=True) if alert.kind == IMBALANCE]
    assert [(alert.admdvs, alert.level) for alert in alerts] == [("000000", ledger_pb2.ALERT_LEVEL_RED)]
    assert registry.get_sample_value("yidi_clearing_ledger_imbalance_fen") == 7
    # …and the clearing service's gRPC health says so, while the rest of the node serves.
    national.node.check_health()
    with grpc.insecure_channel(national.node.address) as channel:
        assert (
            health_of(channel, "yidi.clearing.v1.ClearingService")
            == health_pb2.HealthCheckResponse.NOT_SERVING
        )


def test_the_calendar_is_configuration_with_environment_overrides(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('[clearing]\nissue_day = 8\nadvance_yellow_ratio = "0.75"\n', encoding="utf-8")
    settings = load_settings(
        path, environ={"YIDI_CLEARING_ADVANCE_RED_RATIO": "0.95", "YIDI_CLEARING_CONFIRMATION_DAYS": "7"}
    )
    assert (
        settings.clearing_issue_day,
        settings.clearing_confirmation_days,
        settings.clearing_transfer_deadline_day,
    ) == (8, 7, 25)
    assert (str(settings.clearing_advance_yellow_ratio), str(settings.clearing_advance_red_ratio)) == (
        "0.75",
        "0.95",
    )
    for environ, key in (
        ({"YIDI_CLEARING_ISSUE_DAY": "29"}, "YIDI_CLEARING_ISSUE_DAY"),
        ({"YIDI_CLEARING_ADVANCE_RED_RATIO": "1.5"}, "YIDI_CLEARING_ADVANCE_RED_RATIO"),
        ({"YIDI_CLEARING_ADVANCE_RED_RATIO": "abc"}, "YIDI_CLEARING_ADVANCE_RED_RATIO"),
        ({"YIDI_CLEARING_ADVANCE_RED_RATIO": "0.70"}, "clearing.advance_red_ratio"),
    ):
        with pytest.raises(ConfigError) as caught:
            load_settings(environ=environ)
        assert caught.value.key == key


def test_a_province_node_passes_clearing_calls_to_the_national_node(
    tmp_path: Path, database_factory: Callable[[], str | None]
) -> None:
    specs = [
        NodeSpec("000000", "national", services=("clearing",)),
        NodeSpec(QINGHAI, "province", "000000", services=("clearing",)),
    ]
    with (
        node_tree(tmp_path, specs, database_factory) as nodes,
        grpc.insecure_channel(nodes[QINGHAI].address) as channel,
    ):
        province = api_grpc.ClearingServiceStub(channel)
        status = province.SetAdvance(
            api.SetAdvanceRequest(request_id=next_id("A"), admdvs=QINGHAI, year=2026, amount_fen=9),
            timeout=20,
        ).status
        assert status.advance_fen == 9
        assert province.GetLedger(api.GetLedgerRequest(), timeout=20).balanced
        assert (
            province.GetClearingCalendar(api.GetClearingCalendarRequest(), timeout=20).calendar.issue_day
            == 10
        )
        code, reason, _ = refusal(
            province.GetStatement, api.GetStatementRequest(statement_id="2026-05/630000")
        )
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
