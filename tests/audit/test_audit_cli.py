"""`yidi audit` against an in-process AuditService: a table, JSON lines, times, filters and refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import typer
from audit_support import Clock
from typer.testing import CliRunner

from yidi_cli.audit import parse_moment
from yidi_cli.main import app
from yidi_harness.federation import free_port
from yidi_runtime.audit import AuditTrail
from yidi_runtime.identity import parse_subject

SETTLEMENT = "yidi.settlement.v1.SettlementService"


@pytest.fixture
def yidi() -> typer.Typer:
    """The `yidi` command line itself (main.py), with `audit` among its commands."""
    return app


def fill(trail: AuditTrail, clock: Clock) -> None:
    """Three calls an hour apart from 2026-11-25 01:00 UTC."""
    for subject, method, code, reason in (
        ("institution/H33040200001", "Settle", grpc.StatusCode.OK, ""),
        (
            "operator/330000/zhang.wei",
            "RunClearing",
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_DENIED_ROLE",
        ),
        ("institution/H33040200001", "ReverseSettlement", grpc.StatusCode.OK, ""),
    ):
        trail.record(
            parse_subject(subject), SETTLEMENT, method, f"{method}-1", code, reason, "ipv4:10.1.2.3:5"
        )
        clock.advance(hours=1)


def test_json_lines_carry_every_field(
    yidi: typer.Typer, trail: AuditTrail, clock: Clock, audit_address: str
) -> None:
    fill(trail, clock)
    result = CliRunner().invoke(
        yidi, ["audit", "--since", "2026-11-25", "--address", audit_address, "--insecure", "--json"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["method"] for line in lines] == ["Settle", "RunClearing", "ReverseSettlement"]
    assert lines[1] == {
        "record_id": lines[1]["record_id"],
        "record_time": "2026-11-25T02:00:00Z",
        "node": "zhejiang",
        "node_region": "330000",
        "caller_role": "operator",
        "caller": "operator/330000/zhang.wei",
        "via": "certificate",
        "service": SETTLEMENT,
        "method": "RunClearing",
        "request_id": "RunClearing-1",
        "grpc_code": "PERMISSION_DENIED",
        "reason": "PERMISSION_DENIED_ROLE",
        "peer": "ipv4:10.1.2.3:5",
    }


def test_times_are_utc_unless_offset_and_filters_narrow(
    yidi: typer.Typer, trail: AuditTrail, clock: Clock, audit_address: str
) -> None:
    fill(trail, clock)

    def methods(*options: str) -> list[str]:
        result = CliRunner().invoke(
            yidi, ["audit", *options, "--address", audit_address, "--insecure", "--json"]
        )
        assert result.exit_code == 0, result.output
        return [json.loads(line)["method"] for line in result.output.splitlines()]

    assert methods("--since", "2026-11-25T02:00") == ["RunClearing", "ReverseSettlement"]
    assert methods("--since", "2026-11-25T10:00+08:00", "--until", "2026-11-25T03:00") == ["RunClearing"]
    assert methods("--since", "2026-11-25", "--caller", "institution/H33040200001") == [
        "Settle",
        "ReverseSettlement",
    ]
    assert methods("--since", "2026-11-25", "--method", "RunClearing") == ["RunClearing"]
    assert methods("--since", "2026-11-26") == []


def test_a_table_by_default(yidi: typer.Typer, trail: AuditTrail, clock: Clock, audit_address: str) -> None:
    fill(trail, clock)
    result = CliRunner().invoke(
        yidi, ["audit", "--since", "2026-11-25", "--address", audit_address, "--insecure"]
    )
    assert result.exit_code == 0, result.output
    assert "SettlementService/RunClearing" in result.output
    assert "operator/330000/zhang.wei" in result.output and "PERMISSION_DENIED_ROLE" in result.output
    assert "…" not in result.output
    assert "2026-11-25T01:00:00Z" in result.output and "3 records" in result.output


def test_relative_moments_count_back_from_now() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert parse_moment("30m", "--since", now) == now - timedelta(minutes=30)
    assert parse_moment("1h", "--since", now) == now - timedelta(hours=1)
    assert parse_moment("2d", "--since", now) == now - timedelta(days=2)
    assert parse_moment("2026-11-25", "--since") == datetime(2026, 11, 25, tzinfo=UTC)
    assert parse_moment("2026-11-25T08:00+08:00", "--since") == datetime(2026, 11, 25, tzinfo=UTC)


def test_bad_options_and_refusals_exit_with_their_codes(yidi: typer.Typer, audit_address: str) -> None:
    runner = CliRunner()
    dial = ["--address", audit_address, "--insecure"]
    bad = runner.invoke(yidi, ["audit", "--since", "yesterday", *dial])
    assert bad.exit_code == 2 and "--since" in bad.output
    backwards = runner.invoke(yidi, ["audit", "--since", "2026-11-25", "--until", "2026-11-24", *dial])
    assert backwards.exit_code == 2 and "--until" in backwards.output
    unset = dict.fromkeys(
        ("YIDI_CLIENT_CERT", "YIDI_CLIENT_KEY", "YIDI_CLIENT_CA", "YIDI_CLIENT_INSECURE", "YIDI_TOKEN")
    )
    anonymous = runner.invoke(yidi, ["audit", "--since", "1h", "--address", audit_address], env=unset)
    assert anonymous.exit_code == 2 and "--insecure" in anonymous.output
    unreachable = runner.invoke(
        yidi, ["audit", "--since", "1h", "--address", f"127.0.0.1:{free_port()}", "--insecure"]
    )
    assert unreachable.exit_code == 3
