"""Statements owned by the provinces: each province's operator lists, reads, confirms and disputes its own
statements through its own node, within the calendar's confirmation days; the national node sees states and
deadlines, counts the overdue confirmations, and records transfers only against confirmed statements.

One small federation (national, Hebei, Zhejiang) per database, on mutual TLS: a relayed call reaches the
national node with the vouch of the node that authenticated its caller, as in production. Two provinces'
treatment nodes deliver September's settlements, sealed, to the national journal; the national node, its
clearing clock moved to 1 October, clears the month: confirm by 15 October, transfer by 25 October (the
default calendar).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from clearing_support import DONE, beijing, refusal, stamp
from google.protobuf.message import Message
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner, Result

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import clearing_service_pb2_grpc as api_grpc
from yidi.clearing.v1 import journal_pb2, ledger_pb2, statement_pb2
from yidi_cli.main import app
from yidi_core.codes import NATIONAL_REGION
from yidi_harness.federation import (
    DEMO_TOPOLOGY,
    NATIONAL_OPERATOR,
    Federation,
    Topology,
    init_demo_pki,
    region_operator,
    start_federation,
)
from yidi_harness.month_end import ClearingClock
from yidi_harness.polling import eventually
from yidi_runtime.certs import Pki
from yidi_runtime.config import NodeSettings
from yidi_runtime.identity import CallerRole, Principal
from yidi_runtime.integrity import NodeIntegrity

PERIOD = "2026-09"
HEBEI, ZHEJIANG = "130000", "330000"
HEBEI_STATEMENT, ZHEJIANG_STATEMENT = f"{PERIOD}/{HEBEI}", f"{PERIOD}/{ZHEJIANG}"
HEBEI_OPERATOR, ZHEJIANG_OPERATOR = region_operator(HEBEI), region_operator(ZHEJIANG)
DENIED = grpc.StatusCode.PERMISSION_DENIED
REFUSED_STATE = grpc.StatusCode.FAILED_PRECONDITION
ISSUED, CONFIRMED, DISPUTED, SETTLED = (
    statement_pb2.STATEMENT_STATE_ISSUED,
    statement_pb2.STATEMENT_STATE_CONFIRMED,
    statement_pb2.STATEMENT_STATE_DISPUTED,
    statement_pb2.STATEMENT_STATE_SETTLED,
)


def entry(
    msgid: str, insured: str, treatment: str, fixmedins_code: str, fund: int
) -> journal_pb2.JournalEntry:
    """A settlement of 15 September made at ``treatment`` for a person insured in ``insured``."""
    return journal_pb2.JournalEntry(
        msgid=msgid,
        setl_id=f"{treatment[:2]}0000{msgid}",
        kind=journal_pb2.JOURNAL_ENTRY_KIND_SETTLEMENT,
        mdtrt_id=f"MDTR{msgid}",
        psn_no=f"PSN{msgid}",
        fixmedins_code=fixmedins_code,
        insuplc_admdvs=insured,
        mdtrtarea_admvs=treatment,
        insutype="310",
        clr_type="21",
        medfee_sumamt_fen=fund + 1000,
        fund_pay_sumamt_fen=fund,
        psn_cash_pay_fen=1000,
        setl_time=stamp(beijing(2026, 9, 15)),
    )


TREE = Topology(
    tuple(spec for spec in DEMO_TOPOLOGY.nodes if spec.region in (NATIONAL_REGION, HEBEI, ZHEJIANG))
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_demo_pki(tmp_path_factory.mktemp("pki"), TREE)


@pytest.fixture
def federation(
    tmp_path: Path, database_factory: Callable[[], str | None], pki: Pki
) -> Iterator[tuple[Federation, ClearingClock]]:
    """The three nodes with September delivered and cleared on 1 October (China time)."""
    clock = ClearingClock()
    with start_federation(
        TREE, tmp_path, database_factory, start=clock.start_node, pki=pki, metrics_port=0
    ) as started:
        clock.move_to(beijing(2026, 10, 1))
        deliveries = {
            ZHEJIANG: [entry("H3304020000100000001", HEBEI, "330402", "H33040200001", 50_000)],
            HEBEI: [entry("H1310020000100000001", ZHEJIANG, "131002", "H13100200001", 20_000)],
        }
        for source, entries in deliveries.items():
            treatment_node = Principal(CallerRole.NODE, source, source)
            sealer = NodeIntegrity(NodeSettings(region=source, tls=pki.node(source)), CollectorRegistry())
            for sealed in entries:
                sealer.seal(sealed)
            stub(started, NATIONAL_REGION, treatment_node).AppendJournalEntries(
                api.AppendJournalEntriesRequest(
                    request_id=f"J{source}", source_admdvs=source, entries=entries
                ),
                timeout=30,
            )
        national = stub(started, NATIONAL_REGION)
        run = national.RunClearing(api.RunClearingRequest(request_id="C1", period=PERIOD), timeout=30).run

        def finished() -> statement_pb2.ClearingRun | None:
            now = national.GetClearingRun(api.GetClearingRunRequest(run_id=run.run_id), timeout=30).run
            return now if now.state in DONE else None

        done = eventually(finished, within_s=60, interval_s=0.05, what="September's clearing run is done")
        assert done.state == statement_pb2.JOB_STATE_SUCCEEDED, done.failure_reason
        yield started, clock


def stub(
    federation: Federation, region: str, as_: Principal = NATIONAL_OPERATOR
) -> api_grpc.ClearingServiceStub:
    return api_grpc.ClearingServiceStub(federation.channel(region, as_=as_))


def listed(clearing: api_grpc.ClearingServiceStub, **filters: Any) -> dict[str, statement_pb2.Statement]:
    page = clearing.ListStatements(api.ListStatementsRequest(page_size=100, **filters), timeout=30)
    assert not page.next_page_token
    return {statement.statement_id: statement for statement in page.statements}


def confirm(
    clearing: api_grpc.ClearingServiceStub, statement_id: str, request_id: str
) -> statement_pb2.Statement:
    request = api.ConfirmStatementRequest(request_id=request_id, statement_id=statement_id)
    return clearing.ConfirmStatement(request, timeout=30).statement


def transfer(statement_id: str, amount_fen: int, request_id: str) -> api.RecordTransferRequest:
    return api.RecordTransferRequest(
        request_id=request_id,
        statement_id=statement_id,
        transfer=statement_pb2.Transfer(amount_fen=amount_fen, bank_reference=f"BANK-{request_id}"),
    )


def reason_of(call: Callable[..., Any], request: Message) -> tuple[grpc.StatusCode, str]:
    code, reason, _ = refusal(call, request)
    return code, reason


def overdue_gauge(federation: Federation) -> dict[str, float]:
    """``yidi_clearing_statements_overdue`` by province, as the national node's /metrics shows it now."""
    node = federation.nodes[NATIONAL_REGION]
    assert node.metrics_endpoint is not None
    url = f"http://{node.settings.host}:{node.metrics_endpoint.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode("utf-8")
    return {
        sample.labels["admdvs"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "yidi_clearing_statements_overdue"
        for sample in family.samples
    }


def active_alerts(national: api_grpc.ClearingServiceStub, kind: int) -> list[str]:
    """The provinces of the active alerts of ``kind`` (ListAlerts brings them up to date first)."""
    page = national.ListAlerts(api.ListAlertsRequest(active_only=True, page_size=100), timeout=30)
    return sorted(alert.admdvs for alert in page.alerts if alert.kind == kind)


def test_each_province_answers_for_its_own_statements_within_its_confirmation_days(
    federation: tuple[Federation, ClearingClock],
) -> None:
    started, clock = federation
    national = stub(started, NATIONAL_REGION)
    hebei = stub(started, HEBEI, HEBEI_OPERATOR)
    zhejiang = stub(started, ZHEJIANG, ZHEJIANG_OPERATOR)

    # The national node sees every statement, issued, with its deadlines.
    everything = listed(national, period=PERIOD)
    assert sorted(everything) == [HEBEI_STATEMENT, ZHEJIANG_STATEMENT]
    for statement in everything.values():
        assert statement.state == ISSUED
        assert (statement.confirm_by.year, statement.confirm_by.month, statement.confirm_by.day) == (
            2026,
            10,
            15,
        )
        assert (statement.transfer_by.year, statement.transfer_by.month, statement.transfer_by.day) == (
            2026,
            10,
            25,
        )
    assert everything[HEBEI_STATEMENT].net_fen == -30_000 and everything[ZHEJIANG_STATEMENT].net_fen == 30_000

    # Each province's operator, at its own node, sees only its own statement.
    assert list(listed(hebei)) == [HEBEI_STATEMENT]
    assert list(listed(zhejiang, period=PERIOD)) == [ZHEJIANG_STATEMENT]
    assert (
        hebei.GetStatement(api.GetStatementRequest(statement_id=HEBEI_STATEMENT), timeout=30).statement
        == everything[HEBEI_STATEMENT]
    )
    # ... and nothing of another province's, whether it exists or not, at its node or at the other's.
    assert reason_of(zhejiang.ListStatements, api.ListStatementsRequest(admdvs=HEBEI)) == (
        DENIED,
        "PERMISSION_DENIED_REGION",
    )
    assert reason_of(zhejiang.GetStatement, api.GetStatementRequest(statement_id=HEBEI_STATEMENT)) == (
        DENIED,
        "PERMISSION_DENIED_REGION",
    )
    assert reason_of(zhejiang.GetStatement, api.GetStatementRequest(statement_id="2026-08/130000")) == (
        DENIED,
        "PERMISSION_DENIED_REGION",
    )
    for foreign in (
        api.ConfirmStatementRequest(request_id="ZJ-X1", statement_id=HEBEI_STATEMENT),
        api.DisputeStatementRequest(request_id="ZJ-X2", statement_id=HEBEI_STATEMENT, reason="not ours"),
    ):
        call = (
            zhejiang.ConfirmStatement
            if isinstance(foreign, api.ConfirmStatementRequest)
            else zhejiang.DisputeStatement
        )
        assert reason_of(call, foreign) == (DENIED, "PERMISSION_DENIED_REGION")
    at_hebei_node = stub(started, HEBEI, ZHEJIANG_OPERATOR)
    assert reason_of(at_hebei_node.ListStatements, api.ListStatementsRequest()) == (
        DENIED,
        "PERMISSION_DENIED_REGION",
    )
    # Transfers are the national node's to record.
    assert reason_of(hebei.RecordTransfer, transfer(HEBEI_STATEMENT, 30_000, "HB-T0"))[0] == DENIED

    # Zhejiang disputes its statement with a reason: no transfer until it is confirmed.
    dispute = api.DisputeStatementRequest(request_id="ZJ-D1", statement_id=ZHEJIANG_STATEMENT, reason="")
    assert refusal(zhejiang.DisputeStatement, dispute) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        ["reason"],
    )
    dispute.reason = "x" * 201
    assert refusal(zhejiang.DisputeStatement, dispute)[2] == ["reason"]
    dispute.reason = "Hangzhou's August inpatient claims are missing"
    disputed = zhejiang.DisputeStatement(dispute, timeout=30).statement
    assert disputed.state == DISPUTED and disputed.dispute_reason == dispute.reason
    assert disputed.disputed_by == "operator/330000/ops" and disputed.HasField("dispute_time")
    assert zhejiang.DisputeStatement(dispute, timeout=30).statement == disputed, "a repeat answers the same"
    dispute.request_id = "ZJ-D2"
    assert reason_of(zhejiang.DisputeStatement, dispute) == (REFUSED_STATE, "STATEMENT_STATE")
    assert reason_of(national.RecordTransfer, transfer(ZHEJIANG_STATEMENT, 30_000, "T1")) == (
        REFUSED_STATE,
        "STATEMENT_STATE",
    )
    # An issued statement takes no transfer either.
    assert reason_of(national.RecordTransfer, transfer(HEBEI_STATEMENT, 30_000, "T2")) == (
        REFUSED_STATE,
        "STATEMENT_STATE",
    )

    # Hebei confirms on the last of its confirmation days (China time), once per request id.
    clock.move_to(beijing(2026, 10, 15, hour=23))
    confirmed = confirm(hebei, HEBEI_STATEMENT, "HB-C1")
    assert confirmed.state == CONFIRMED and confirmed.confirmed_by == "operator/130000/ops"
    assert confirm(hebei, HEBEI_STATEMENT, "HB-C1") == confirmed
    settled = national.RecordTransfer(transfer(HEBEI_STATEMENT, 30_000, "T3"), timeout=30).statement
    assert settled.state == SETTLED and [t.amount_fen for t in settled.transfers] == [30_000]

    # The next day Zhejiang's days are over: it can neither confirm nor dispute; the national node sees it overdue.
    clock.move_to(beijing(2026, 10, 16, hour=1))
    assert reason_of(
        zhejiang.ConfirmStatement,
        api.ConfirmStatementRequest(request_id="ZJ-C1", statement_id=ZHEJIANG_STATEMENT),
    ) == (
        REFUSED_STATE,
        "CONFIRMATION_OVERDUE",
    )
    assert active_alerts(national, ledger_pb2.ALERT_KIND_CONFIRMATION_OVERDUE) == [ZHEJIANG]
    assert overdue_gauge(started) == {ZHEJIANG: 1.0}
    assert list(listed(national, confirmation_overdue=True)) == [ZHEJIANG_STATEMENT]
    assert listed(zhejiang, confirmation_overdue=True)[ZHEJIANG_STATEMENT].dispute_reason == dispute.reason

    # The national node resolves it: its confirmation is accepted after the days; the alert and the count clear.
    resolved = confirm(national, ZHEJIANG_STATEMENT, "NAT-C1")
    assert resolved.state == CONFIRMED and resolved.dispute_reason == dispute.reason
    assert active_alerts(national, ledger_pb2.ALERT_KIND_CONFIRMATION_OVERDUE) == []
    assert overdue_gauge(started) == {ZHEJIANG: 0.0}
    assert listed(national, confirmation_overdue=True) == {}

    # Hebei's operator with the CLI at its node: its own statement only (no zero-sum check on one province).
    shown = hebei_cli(started, "statements", "--period", PERIOD)
    assert shown.exit_code == 0, shown.output
    assert (
        HEBEI_STATEMENT in shown.output
        and ZHEJIANG_STATEMENT not in shown.output
        and "settled" in shown.output
    )
    late = hebei_cli(started, "dispute", "--statement", HEBEI_STATEMENT, "--reason", "too late")
    assert late.exit_code == 1 and "STATEMENT_STATE" in late.output
    foreign = hebei_cli(started, "confirm", "--statement", ZHEJIANG_STATEMENT)
    assert foreign.exit_code == 1 and "PERMISSION_DENIED_REGION" in foreign.output


def hebei_cli(federation: Federation, *arguments: str) -> Result:
    """``yidi clearing …`` as Hebei's operator against the Hebei node."""
    assert federation.pki is not None
    files = federation.pki.files(HEBEI_OPERATOR)
    tls = ("--cert", str(files.cert), "--key", str(files.key), "--ca", str(files.ca))
    return CliRunner().invoke(app, ["clearing", *arguments, "--address", federation.address(HEBEI), *tls])
