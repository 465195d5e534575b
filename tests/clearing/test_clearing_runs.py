"""Monthly clearing through the stub: statements per province, reruns, adjustments, confirmation and transfers."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
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
from yidi.clearing.v1 import ledger_pb2, statement_pb2
from yidi_runtime.wire import date_message
from yidi_services.clearing import clearing_runs
from yidi_services.clearing.periods import Period

QINGHAI, ZHEJIANG, BEIJING, HEBEI = "630000", "330000", "110000", "130000"
SUCCEEDED = statement_pb2.JOB_STATE_SUCCEEDED
ISSUED, CONFIRMED, SETTLED = (
    statement_pb2.STATEMENT_STATE_ISSUED,
    statement_pb2.STATEMENT_STATE_CONFIRMED,
    statement_pb2.STATEMENT_STATE_SETTLED,
)
PAYABLE, RECEIVABLE, TRANSIT = (
    ledger_pb2.ACCOUNT_KIND_PAYABLE,
    ledger_pb2.ACCOUNT_KIND_RECEIVABLE,
    ledger_pb2.ACCOUNT_KIND_CLEARING_TRANSIT,
)


@pytest.fixture
def national(tmp_path: Path, database_url: str | None) -> Iterator[National]:
    """A national node whose clock stands at 3 June 2026 (May has ended), calendar 10 / 5 days / 25."""
    with national_node(tmp_path, database_url, Clock(beijing(2026, 6, 3))) as started:
        yield started


def may_activity(national: National) -> dict[str, object]:
    """Four provinces' May: Qinghai patients in Jiaxing and Beijing, Hebei in Beijing, Beijing in Zhejiang."""
    qinghai_in_jiaxing = [
        settlement("630100", "330400", fund, beijing(2026, 5, day))
        for fund, day in ((100_000, 3), (50_000, 31))
    ]
    refunded = settlement("630100", "330400", 7_000, beijing(2026, 5, 10))
    late_night = settlement("630100", "110105", 30_000, beijing(2026, 5, 31, hour=23))
    hebei = [settlement("131000", "110105", 2_000 * n, beijing(2026, 5, n)) for n in range(1, 6)]
    beijing_in_zhejiang = settlement("110101", "330100", 40_000, beijing(2026, 5, 20))
    june = settlement("630100", "330400", 99_999, beijing(2026, 6, 1, hour=0))
    national.deliver(*qinghai_in_jiaxing, refunded, late_night, *hebei, beijing_in_zhejiang, june)
    national.deliver(reversal_of(refunded, beijing(2026, 5, 12)))
    return {"june": june}


def test_a_month_of_several_provinces_is_cleared_into_one_statement_each(national: National) -> None:
    planted = may_activity(national)
    run = national.clear("2026-05")
    assert run.state == SUCCEEDED, run.failure_reason
    assert run.entries_counted == 11
    assert list(run.statement_ids) == [f"2026-05/{p}" for p in (BEIJING, HEBEI, ZHEJIANG, QINGHAI)]

    found = {statement.admdvs: statement for statement in national.statements(period="2026-05")}
    assert set(found) == {BEIJING, HEBEI, ZHEJIANG, QINGHAI}
    assert sum(statement.net_fen for statement in found.values()) == 0
    qinghai = found[QINGHAI]
    assert (qinghai.payable_fen, qinghai.receivable_fen, qinghai.net_fen) == (180_000, 0, -180_000)
    lines = {(line.insured_admdvs, line.treatment_admdvs): line for line in qinghai.lines}
    assert set(lines) == {(QINGHAI, ZHEJIANG), (QINGHAI, BEIJING)}
    # The refund nets into its line: 3 settlements − 1 reversal, 150,000 fen.
    jiaxing = lines[QINGHAI, ZHEJIANG]
    assert (jiaxing.settlement_count, jiaxing.fund_pay_sumamt_fen) == (2, 150_000)
    assert jiaxing.medfee_sumamt_fen == 150_000 + 2 * 1000
    assert not any(line.adjustment for line in qinghai.lines)
    beijing_statement = found[BEIJING]
    assert (beijing_statement.payable_fen, beijing_statement.receivable_fen) == (40_000, 60_000)
    assert {(line.insured_admdvs, line.treatment_admdvs) for line in beijing_statement.lines} == {
        (BEIJING, ZHEJIANG),
        (QINGHAI, BEIJING),
        (HEBEI, BEIJING),
    }
    assert found[ZHEJIANG].net_fen == 150_000 + 40_000
    assert all(statement.state == ISSUED for statement in found.values())
    # Calendar: issued 3 June, the issue day is the 10th: confirm by the 15th, pay by the 25th.
    assert qinghai.confirm_by == date_message(date(2026, 6, 15))
    assert qinghai.transfer_by == date_message(date(2026, 6, 25))

    cleared = {entry.msgid: entry.cleared_period for entry in national.journal()}
    june = planted["june"]
    assert cleared.pop(june.msgid) == ""  # type: ignore[attr-defined]
    assert set(cleared.values()) == {"2026-05"}

    single = national.stub.GetStatement(api.GetStatementRequest(statement_id="2026-05/630000"), timeout=10)
    assert single.statement == qinghai


def test_running_a_period_again_yields_the_same_statements(national: National) -> None:
    may_activity(national)
    request_id = next_id("C")
    first = national.clear("2026-05", request_id)
    before = national.statements(period="2026-05")
    again = national.clear("2026-05")
    assert again.run_id == first.run_id and again.statement_ids == first.statement_ids
    replayed = national.stub.RunClearing(api.RunClearingRequest(request_id=request_id, period="2026-05"))
    assert replayed.run.run_id == first.run_id
    assert national.statements(period="2026-05") == before
    ledger_before = national.balances()
    assert national.balances() == ledger_before


def test_a_period_must_have_ended_and_one_before_the_last_cleared_is_closed(national: National) -> None:
    run_clearing = national.stub.RunClearing
    assert refusal(run_clearing, api.RunClearingRequest(request_id=next_id("C"), period="2026-06"))[1:] == (
        "INVALID_ARGUMENT",
        ["period"],
    )
    assert refusal(run_clearing, api.RunClearingRequest(request_id=next_id("C"), period="2026-13"))[2] == [
        "period"
    ]
    assert refusal(run_clearing, api.RunClearingRequest(request_id=next_id("C")))[2] == ["period"]
    national.deliver(settlement("630100", "330400", 500, beijing(2026, 4, 1)))
    national.clear("2026-05")
    assert national.statements(period="2026-05")[0].lines[0].adjustment  # April carried forward
    code, reason, _ = refusal(run_clearing, api.RunClearingRequest(request_id=next_id("C"), period="2026-04"))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PERIOD_CLOSED")
    missing = api.GetClearingRunRequest(run_id="CR-1999-01-1")
    assert refusal(national.stub.GetClearingRun, missing)[:2] == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")


def test_late_entries_and_clawbacks_become_adjustment_lines_and_the_closed_period_never_changes(
    national: National,
) -> None:
    april = settlement("630100", "330400", 80_000, beijing(2026, 4, 28))
    may = settlement("630100", "330400", 100_000, beijing(2026, 5, 3))
    clawed = settlement("131000", "110105", 60_000, beijing(2026, 5, 4))
    national.deliver(april, may, clawed)
    national.clock.now = beijing(2026, 5, 2)
    national.clear("2026-04")
    national.clock.now = beijing(2026, 6, 2)
    national.clear("2026-05")
    may_statements = national.statements(period="2026-05")

    late_reversal = reversal_of(may, beijing(2026, 5, 30))  # made in May, delivered after May was cleared
    june_reversal = reversal_of(april, beijing(2026, 6, 5))  # a June refund of an April settlement
    late_settlement = settlement("630100", "110105", 3_000, beijing(2026, 5, 31, hour=22))
    in_june = settlement("630100", "330400", 5_000, beijing(2026, 6, 6))
    national.clock.now = beijing(2026, 6, 7)
    national.deliver(late_reversal, june_reversal, late_settlement, in_june)
    clawback = national.stub.RecordClawback(
        api.RecordClawbackRequest(
            request_id=next_id("CB"),
            msgid=clawed.msgid,
            fixmedins_code=clawed.fixmedins_code,
            amount_fen=20_000,
            reason="虚假住院 (fictitious stay)",
        ),
        timeout=10,
    )
    assert clawback.adjustment_period == "2026-06" and clawback.clawback_id

    national.clock.now = beijing(2026, 7, 1)
    run = national.clear("2026-06")
    assert run.state == SUCCEEDED and run.entries_counted == 4
    assert national.statements(period="2026-05") == may_statements

    june = {statement.admdvs: statement for statement in national.statements(period="2026-06")}
    assert sum(statement.net_fen for statement in june.values()) == 0
    qinghai_lines = [
        (
            line.treatment_admdvs,
            line.fund_pay_sumamt_fen,
            line.settlement_count,
            line.adjustment,
            line.adjustment_note,
        )
        for line in june[QINGHAI].lines
    ]
    assert qinghai_lines[0] == (ZHEJIANG, 5_000, 1, False, "")
    adjustments = {
        (treatment, note.split(":")[0]): (fen, count)
        for treatment, fen, count, adjustment, note in qinghai_lines
        if adjustment
    }
    assert adjustments == {
        (ZHEJIANG, "2026-04"): (-80_000, -1),  # reversal of a settlement cleared in April
        (ZHEJIANG, "2026-05"): (-100_000, -1),  # journalled after May was cleared
        (BEIJING, "2026-05"): (3_000, 1),
    }
    notes = [note for *_, adjustment, note in qinghai_lines if adjustment]
    assert "reversals of settlements cleared in 2026-04" in notes[0]
    assert any("journalled after 2026-05 was cleared" in note for note in notes)
    hebei = june[HEBEI]
    assert [(line.fund_pay_sumamt_fen, line.adjustment) for line in hebei.lines] == [(-20_000, True)]
    assert "2026-05" in hebei.lines[0].adjustment_note and "虚假住院" in hebei.lines[0].adjustment_note
    assert clawback.clawback_id in hebei.lines[0].adjustment_note
    assert hebei.net_fen == 20_000 and june[BEIJING].net_fen == -20_000 + 3_000
    assert all(entry.cleared_period for entry in national.journal())


def test_a_settlement_reversed_after_a_clawback_is_refunded_exactly_once(national: National) -> None:
    """Clawed back 20,000 of 60,000 and cleared in June, then refunded in full in July: July returns the
    clawback, so over the two months the insured province pays nothing for it and is paid nothing back twice."""
    clawed = settlement("131000", "110105", 60_000, beijing(2026, 5, 4))
    national.deliver(clawed)
    national.clock.now = beijing(2026, 6, 2)
    national.clear("2026-05")
    national.clock.now = beijing(2026, 6, 10)
    national.stub.RecordClawback(
        api.RecordClawbackRequest(
            request_id=next_id("CB"),
            msgid=clawed.msgid,
            fixmedins_code=clawed.fixmedins_code,
            amount_fen=20_000,
            reason="超标准收费",
        ),
        timeout=10,
    )
    national.clock.now = beijing(2026, 7, 1)
    national.clear("2026-06")
    national.deliver(reversal_of(clawed, beijing(2026, 7, 3)))
    national.clock.now = beijing(2026, 8, 1)
    national.clear("2026-07")

    paid = {
        period: {s.admdvs: s.payable_fen for s in national.statements(period=period)}
        for period in ("2026-05", "2026-06", "2026-07")
    }
    assert [paid[period].get(HEBEI, 0) for period in paid] == [60_000, -20_000, -40_000]
    july = next(s for s in national.statements(period="2026-07") if s.admdvs == HEBEI)
    notes = {line.adjustment_note.split(":")[0]: line.fund_pay_sumamt_fen for line in july.lines}
    assert notes == {"2026-05": -60_000, "2026-07": 20_000}  # the reversal, and the clawback returned
    assert sum(s.net_fen for s in national.statements(period="2026-07")) == 0
    national.balances()


def test_clawbacks_are_refused_for_unknown_reversed_or_exhausted_settlements(national: National) -> None:
    paid = settlement("630100", "330400", 10_000, beijing(2026, 5, 3))
    refunded = settlement("630100", "330400", 10_000, beijing(2026, 5, 3))
    undo = reversal_of(refunded, beijing(2026, 5, 4))
    national.deliver(paid, refunded, undo)
    claw = national.stub.RecordClawback

    def request(msgid: str, fen: int, reason: str = "超标准收费") -> api.RecordClawbackRequest:
        return api.RecordClawbackRequest(
            request_id=next_id("CB"),
            msgid=msgid,
            fixmedins_code="H11010500001",
            amount_fen=fen,
            reason=reason,
        )

    assert refusal(claw, request("H00000000", 1))[:2] == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    assert refusal(claw, request(refunded.msgid, 1))[1] == "ALREADY_REVERSED"
    assert refusal(claw, request(undo.msgid, 1))[2] == ["msgid"]
    assert refusal(claw, request("", 0, ""))[2] == ["msgid", "amount_fen", "reason"]
    first = claw(request(paid.msgid, 6_000), timeout=10)
    assert first.adjustment_period == "2026-05"  # May is still open: it carries the clawback itself
    assert refusal(claw, request(paid.msgid, 4_001))[2] == ["amount_fen"]
    claw(request(paid.msgid, 4_000), timeout=10)
    national.clear("2026-05")
    qinghai = national.stub.GetStatement(api.GetStatementRequest(statement_id="2026-05/630000")).statement
    assert qinghai.payable_fen == 10_000 - 6_000 - 4_000
    assert [line.adjustment for line in qinghai.lines] == [False, True, True]


def test_a_clawback_sent_again_is_answered_as_the_first_time_and_recorded_once(national: National) -> None:
    paid = settlement("630100", "330400", 10_000, beijing(2026, 5, 3))
    national.deliver(paid)
    request = api.RecordClawbackRequest(
        request_id=next_id("CB"),
        msgid=paid.msgid,
        fixmedins_code="H11010500001",
        amount_fen=3_000,
        reason="重复收费",
    )
    with capture_logs() as logs:
        first = national.stub.RecordClawback(request, timeout=10)
        assert national.stub.RecordClawback(request, timeout=10) == first
    recorded = [line for line in logs if line["event"] == "clawback recorded"]
    assert [(line["clawback_id"], line["amount_fen"]) for line in recorded] == [(first.clawback_id, 3_000)]
    national.clear("2026-05")
    qinghai = national.stub.GetStatement(api.GetStatementRequest(statement_id="2026-05/630000")).statement
    assert qinghai.payable_fen == 10_000 - 3_000


def test_statements_move_from_issued_to_confirmed_to_settled_and_the_ledger_follows(
    national: National,
) -> None:
    may_activity(national)
    national.clear("2026-05")
    qinghai, zhejiang = "2026-05/630000", "2026-05/330000"

    def transfer(statement_id: str, fen: int, reference: str = "") -> api.RecordTransferRequest:
        return api.RecordTransferRequest(
            request_id=next_id("T"),
            statement_id=statement_id,
            transfer=statement_pb2.Transfer(amount_fen=fen, bank_reference=reference or next_id("BANK")),
        )

    code, reason, _ = refusal(national.stub.RecordTransfer, transfer(qinghai, 1))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "STATEMENT_STATE")
    confirm = api.ConfirmStatementRequest(
        request_id=next_id("CF"), statement_id=qinghai, confirmed_by="青海医保局"
    )
    confirmed = national.stub.ConfirmStatement(confirm, timeout=10).statement
    assert confirmed.state == CONFIRMED and confirmed.HasField("confirm_time")
    assert national.stub.ConfirmStatement(confirm, timeout=10).statement == confirmed
    again = api.ConfirmStatementRequest(request_id=next_id("CF"), statement_id=qinghai)
    assert refusal(national.stub.ConfirmStatement, again)[1] == "STATEMENT_STATE"
    missing = api.ConfirmStatementRequest(request_id=next_id("CF"), statement_id="2026-05/650000")
    assert refusal(national.stub.ConfirmStatement, missing)[1] == "NOT_FOUND"
    balances = national.balances()
    assert balances[QINGHAI, TRANSIT] == 180_000 and balances.get((QINGHAI, PAYABLE), 0) == 0

    assert refusal(national.stub.RecordTransfer, transfer(qinghai, 180_001))[2] == ["transfer.amount_fen"]
    assert refusal(national.stub.RecordTransfer, transfer(qinghai, 0))[2] == ["transfer.amount_fen"]
    part = national.stub.RecordTransfer(transfer(qinghai, 100_000), timeout=10).statement
    assert part.state == CONFIRMED and [t.amount_fen for t in part.transfers] == [100_000]
    done = national.stub.RecordTransfer(transfer(qinghai, 80_000), timeout=10).statement
    assert done.state == SETTLED
    assert refusal(national.stub.RecordTransfer, transfer(qinghai, 1))[1] == "STATEMENT_STATE"

    for statement in national.statements(period="2026-05"):
        if statement.state == ISSUED:
            national.stub.ConfirmStatement(
                api.ConfirmStatementRequest(request_id=next_id("CF"), statement_id=statement.statement_id)
            )
        if statement.statement_id not in (qinghai,) and statement.net_fen:
            national.stub.RecordTransfer(transfer(statement.statement_id, abs(statement.net_fen)))
    assert {s.state for s in national.statements(period="2026-05")} == {SETTLED}
    assert (
        national.stub.GetStatement(api.GetStatementRequest(statement_id=zhejiang)).statement.net_fen
        == 190_000
    )
    # Every payable, receivable and transit account is back to zero; only the ledger's history remains.
    assert set(national.balances().values()) == {0}
    entries = national.ledger_entries()
    assert all(sum(p.amount_fen for p in entry.postings) == 0 for entry in entries)
    assert {entry.source_id for entry in national.ledger_entries(admdvs=QINGHAI)} >= {confirm.request_id}


def test_a_statement_with_nothing_to_move_is_settled_on_confirmation(national: National) -> None:
    national.deliver(
        settlement("630100", "330400", 1_000, beijing(2026, 5, 3)),
        settlement("330100", "630100", 1_000, beijing(2026, 5, 4)),
    )
    national.clear("2026-05")
    for statement_id in ("2026-05/630000", "2026-05/330000"):
        confirmed = national.stub.ConfirmStatement(
            api.ConfirmStatementRequest(request_id=next_id("CF"), statement_id=statement_id)
        ).statement
        assert (confirmed.net_fen, confirmed.state) == (0, SETTLED)
    assert (
        national.stub.ListStatements(api.ListStatementsRequest(state=SETTLED)).statements[0].period
        == "2026-05"
    )


def test_overdue_confirmations_and_transfers_raise_alerts_until_done(
    tmp_path: Path, database_url: str | None
) -> None:
    clock = Clock(beijing(2026, 6, 12))
    with national_node(
        tmp_path, database_url, clock, clearing_confirmation_days=3, clearing_transfer_deadline_day=20
    ) as national:
        calendar = national.stub.GetClearingCalendar(api.GetClearingCalendarRequest()).calendar
        assert (calendar.issue_day, calendar.confirmation_days, calendar.transfer_deadline_day) == (10, 3, 20)
        assert (calendar.yellow_threshold, calendar.red_threshold) == ("0.70", "0.90")
        national.deliver(settlement("630100", "330400", 9_000, beijing(2026, 5, 3)))
        national.clear("2026-05")
        qinghai = national.stub.GetStatement(api.GetStatementRequest(statement_id="2026-05/630000")).statement
        assert (qinghai.confirm_by, qinghai.transfer_by) == (
            date_message(date(2026, 6, 15)),
            date_message(date(2026, 6, 20)),
        )

        def active(kind: int) -> set[str]:
            return {alert.admdvs for alert in national.alerts(active_only=True) if alert.kind == kind}

        clock.now = beijing(2026, 6, 15, hour=23)
        assert active(ledger_pb2.ALERT_KIND_CONFIRMATION_OVERDUE) == set()
        clock.now = beijing(2026, 6, 16)
        assert active(ledger_pb2.ALERT_KIND_CONFIRMATION_OVERDUE) == {QINGHAI, ZHEJIANG}
        national.stub.ConfirmStatement(
            api.ConfirmStatementRequest(request_id=next_id("CF"), statement_id=qinghai.statement_id)
        )
        assert active(ledger_pb2.ALERT_KIND_CONFIRMATION_OVERDUE) == {ZHEJIANG}
        clock.now = beijing(2026, 6, 21)
        assert active(ledger_pb2.ALERT_KIND_TRANSFER_OVERDUE) == {QINGHAI, ZHEJIANG}
        national.stub.RecordTransfer(
            api.RecordTransferRequest(
                request_id=next_id("T"),
                statement_id=qinghai.statement_id,
                transfer=statement_pb2.Transfer(amount_fen=9_000, bank_reference="BOC-1"),
            )
        )
        assert active(ledger_pb2.ALERT_KIND_TRANSFER_OVERDUE) == {ZHEJIANG}
        resolved = [a for a in national.alerts(admdvs=QINGHAI) if not a.active]
        assert {a.kind for a in resolved} == {
            ledger_pb2.ALERT_KIND_CONFIRMATION_OVERDUE,
            ledger_pb2.ALERT_KIND_TRANSFER_OVERDUE,
        }
        assert {a.level for a in national.alerts(admdvs=ZHEJIANG)} == {
            ledger_pb2.ALERT_LEVEL_YELLOW,
            ledger_pb2.ALERT_LEVEL_RED,
        }


def test_concurrent_requests_for_one_period_share_one_run(national: National) -> None:
    may_activity(national)
    requests = [api.RunClearingRequest(request_id=next_id("C"), period="2026-05") for _ in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(lambda request: national.stub.RunClearing(request, timeout=30).run, requests))
    assert len({run.run_id for run in runs}) == 1
    assert national.finished(runs[0].run_id).state == SUCCEEDED
    assert len(national.statements(period="2026-05")) == 4


def test_a_run_left_unfinished_by_a_stopped_node_runs_when_it_starts_again(
    tmp_path: Path, database_url: str | None
) -> None:
    clock = Clock(beijing(2026, 6, 3))
    with national_node(tmp_path, database_url, clock) as first:
        first.deliver(settlement("630100", "330400", 4_000, beijing(2026, 5, 3)))
        database = first.node.services[0].database
        with database.unit_of_work(write=True) as uow:  # recorded, as RunClearing does, but never worked
            pending = clearing_runs.start(uow.session, Period(2026, 5), clock())
            uow.commit()
    with national_node(tmp_path, database_url, clock) as again:
        run = again.finished(pending.run_id)
        assert (run.state, list(run.statement_ids)) == (SUCCEEDED, ["2026-05/330000", "2026-05/630000"])
