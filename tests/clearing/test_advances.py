"""Advances (预付金) through the stub: set, top up, usage, and the yellow / red alerts with metric and log line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from clearing_support import (
    Clock,
    National,
    beijing,
    national_node,
    next_id,
    refusal,
    reversal_of,
    settlement,
)
from structlog.testing import capture_logs

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import ledger_pb2

QINGHAI = "630000"
YELLOW, RED, NONE = (
    ledger_pb2.ALERT_LEVEL_YELLOW,
    ledger_pb2.ALERT_LEVEL_RED,
    ledger_pb2.ALERT_LEVEL_UNSPECIFIED,
)
USAGE = ledger_pb2.ALERT_KIND_ADVANCE_USAGE


@pytest.fixture
def national(tmp_path: Path, database_url: str | None) -> Iterator[National]:
    """A national node on 20 May 2026 whose background alert pass waits an hour (calls evaluate)."""
    with national_node(
        tmp_path, database_url, Clock(beijing(2026, 5, 20)), clearing_alert_interval_s=3600
    ) as started:
        yield started


def set_advance(national: National, fen: int, admdvs: str = QINGHAI, year: int = 2026) -> api.AdvanceStatus:
    request = api.SetAdvanceRequest(request_id=next_id("ADV"), admdvs=admdvs, year=year, amount_fen=fen)
    return national.stub.SetAdvance(request, timeout=10).status


def status(national: National, year: int = 2026) -> api.AdvanceStatus:
    return national.stub.GetAdvanceStatus(api.GetAdvanceStatusRequest(admdvs=QINGHAI, year=year)).status


def usage_alerts(national: National, **filters: object) -> list[tuple[int, bool]]:
    """(level, active) of the province's usage alerts, oldest first."""
    found = national.alerts(admdvs=QINGHAI, **filters)
    return [(alert.level, alert.active) for alert in reversed(found) if alert.kind == USAGE]


def gauge(national: National, name: str) -> float | None:
    return national.node.metrics.registry.get_sample_value(name, {"admdvs": QINGHAI})


def test_an_advance_is_set_and_changed_and_the_ledger_holds_it_for_the_province(national: National) -> None:
    request = api.SetAdvanceRequest(
        request_id=next_id("ADV"), admdvs=QINGHAI, year=2026, amount_fen=1_000_000
    )
    first = national.stub.SetAdvance(request, timeout=10).status
    assert (first.advance_fen, first.used_fen, first.usage_ratio, first.alert_level) == (
        1_000_000,
        0,
        "0.0000",
        NONE,
    )
    assert national.stub.SetAdvance(request, timeout=10).status == first
    changed = api.SetAdvanceRequest()
    changed.CopyFrom(request)
    changed.amount_fen = 2
    assert refusal(national.stub.SetAdvance, changed)[:2] == (
        grpc.StatusCode.ALREADY_EXISTS,
        "DUPLICATE_REQUEST",
    )

    assert set_advance(national, 800_000).advance_fen == 800_000
    balances = national.balances()
    assert balances[QINGHAI, ledger_pb2.ACCOUNT_KIND_ADVANCE] == -800_000
    assert balances["000000", ledger_pb2.ACCOUNT_KIND_ADVANCE] == 800_000
    entries = national.ledger_entries(admdvs=QINGHAI)
    assert [[p.amount_fen for p in entry.postings if p.admdvs == QINGHAI] for entry in entries] == [
        [-1_000_000],
        [200_000],
    ]
    assert entries[0].source_id == request.request_id and entries[0].entry_id


def test_bad_requests_and_unknown_advances_are_refused(national: National) -> None:
    bad = api.SetAdvanceRequest(request_id=next_id("ADV"), admdvs="630100", year=1999, amount_fen=0)
    code, reason, fields = refusal(national.stub.SetAdvance, bad)
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CODE")
    assert fields == ["admdvs", "year", "amount_fen"]
    assert (
        refusal(
            national.stub.SetAdvance,
            api.SetAdvanceRequest(request_id=next_id("A"), admdvs="000000", year=2026, amount_fen=1),
        )[1]
        == "INVALID_CODE"
    )
    assert refusal(national.stub.SetAdvance, api.SetAdvanceRequest(admdvs=QINGHAI, year=2026, amount_fen=1))[
        2
    ] == ["request_id"]
    top_up = api.TopUpAdvanceRequest(
        request_id=next_id("TOP"), admdvs=QINGHAI, year=2026, amount_fen=1, reason="红色预警"
    )
    assert refusal(national.stub.TopUpAdvance, top_up)[:2] == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    missing = api.GetAdvanceStatusRequest(admdvs=QINGHAI, year=2026)
    assert refusal(national.stub.GetAdvanceStatus, missing)[:2] == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    assert national.balances() == {}


def test_usage_crossing_70_and_90_percent_raises_yellow_then_red_and_settlement_goes_on(
    national: National,
) -> None:
    set_advance(national, 100_000)
    assert gauge(national, "yidi_clearing_advance_usage_ratio") == 0.0
    with capture_logs() as logs:
        national.deliver(settlement("630100", "330400", 69_999, beijing(2026, 5, 3)))
        assert status(national).alert_level == NONE and usage_alerts(national) == []
        national.deliver(settlement("630102", "110105", 1, beijing(2026, 5, 4)))
        assert usage_alerts(national) == [(YELLOW, True)]
        assert (status(national).usage_ratio, status(national).alert_level) == ("0.7000", YELLOW)
        assert gauge(national, "yidi_clearing_advance_alert_level") == 1
        # Beyond the whole advance: never refused, only red.
        over = settlement("630100", "330400", 60_000, beijing(2026, 5, 5))
        assert national.deliver(over).appended_count == 1
        red = status(national)
        assert (red.used_fen, red.usage_ratio, red.alert_level) == (130_000, "1.3000", RED)
        assert usage_alerts(national) == [(YELLOW, False), (RED, True)]
        assert usage_alerts(national, active_only=True) == [(RED, True)]
    raised = [line for line in logs if line["event"] == "clearing alert raised"]
    assert [(line["level"], line["admdvs"]) for line in raised] == [("yellow", QINGHAI), ("red", QINGHAI)]
    assert gauge(national, "yidi_clearing_advance_usage_ratio") == 1.3
    assert gauge(national, "yidi_clearing_advance_alert_level") == 2

    top_up = api.TopUpAdvanceRequest(
        request_id=next_id("TOP"), admdvs=QINGHAI, year=2026, amount_fen=100_000, reason="红色预警，紧急调增"
    )
    topped = national.stub.TopUpAdvance(top_up, timeout=10).status
    assert (topped.advance_fen, topped.usage_ratio, topped.alert_level) == (200_000, "0.6500", NONE)
    assert usage_alerts(national, active_only=True) == []
    assert "紧急调增" in national.ledger_entries(admdvs=QINGHAI)[-1].description

    # A refund lowers usage; clearing the month empties it.
    national.deliver(reversal_of(over, beijing(2026, 5, 6)))
    assert status(national).used_fen == 70_000
    national.clock.now = beijing(2026, 6, 1)
    national.clear("2026-05")
    assert (status(national).used_fen, status(national).alert_level) == (0, NONE)


def test_usage_counts_the_year_of_the_settlement_and_what_is_not_yet_cleared(national: National) -> None:
    set_advance(national, 10_000, year=2025)
    set_advance(national, 10_000, year=2026)
    national.deliver(
        settlement("630100", "330400", 9_500, beijing(2025, 12, 31, hour=23)),
        settlement("630100", "330400", 1_000, beijing(2026, 1, 1, hour=0)),
        settlement("330100", "630100", 5_000, beijing(2026, 1, 2)),  # Qinghai treats: not its usage
    )
    assert (status(national, 2025).used_fen, status(national, 2025).alert_level) == (9_500, RED)
    assert status(national, 2026).used_fen == 1_000
    assert national.stub.ListAlerts(api.ListAlertsRequest(admdvs="000000")).alerts == []
