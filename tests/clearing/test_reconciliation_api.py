"""Reconciliation's surface on a small tree: runs as jobs, refusals, and the institution checks (3201 / 3202).

The tree is a national node (clearing only) and one province node (settlement and clearing),
on SQLite and PostgreSQL; journal entries are delivered through AppendJournalEntries as a
treatment node's outbox would.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import Message

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import clearing_service_pb2_grpc as api_grpc
from yidi.clearing.v1 import journal_pb2, reconciliation_pb2, statement_pb2
from yidi_harness.polling import eventually
from yidi_runtime.server import Node
from yidi_runtime.wire import date_message, timestamp_message
from yidi_testing import NodeSpec, error_details, node_tree

NATIONAL, PROVINCE = "000000", "330000"
HOSPITAL = "H11010500001"
SETTLED_AT = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
"""10:00 on 5 January 2026 in China."""
JAN_5 = date(2026, 1, 5)
_SEQUENCE = itertools.count(1)


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


def stub(nodes: dict[str, Node], region: str) -> api_grpc.ClearingServiceStub:
    return api_grpc.ClearingServiceStub(grpc.insecure_channel(nodes[region].address))


def refusal(call: Callable[..., Message], request: Message) -> tuple[grpc.StatusCode, str, set[str]]:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=20)
    details = error_details(caught.value)
    fields = {v.field for v in details["BadRequest"].field_violations} if "BadRequest" in details else set()
    return caught.value.code(), details["ErrorInfo"].reason, fields


def finished(clearing: api_grpc.ClearingServiceStub, run_id: str) -> reconciliation_pb2.ReconciliationRun:
    """The run once it is no longer pending or running (bounded wait)."""

    def done() -> reconciliation_pb2.ReconciliationRun | None:
        run = clearing.GetReconciliationRun(api.GetReconciliationRunRequest(run_id=run_id), timeout=20).run
        return (
            run if run.state in (statement_pb2.JOB_STATE_SUCCEEDED, statement_pb2.JOB_STATE_FAILED) else None
        )

    return eventually(done, within_s=30, what=f"reconciliation run {run_id} finished")


def entry(
    *, fund: int, cash: int, clr_type: str = "11", at: datetime = SETTLED_AT, **fields: object
) -> journal_pb2.JournalEntry:
    number = next(_SEQUENCE)
    values: dict[str, object] = {
        "msgid": f"{HOSPITAL}20260105100000{number:04d}",
        "setl_id": f"110000SETL{number:020d}",
        "kind": journal_pb2.JOURNAL_ENTRY_KIND_SETTLEMENT,
        "mdtrt_id": f"110000MDTR{number:020d}",
        "psn_no": "131000000000000000000000000001",
        "fixmedins_code": HOSPITAL,
        "insuplc_admdvs": "131000",
        "mdtrtarea_admvs": "110105",
        "insutype": "310",
        "clr_type": clr_type,
        "medfee_sumamt_fen": fund + cash,
        "fund_pay_sumamt_fen": fund,
        "psn_cash_pay_fen": cash,
        "setl_time": timestamp_message(at),
    }
    return journal_pb2.JournalEntry(**(values | fields))


def reversal_of(original: journal_pb2.JournalEntry) -> journal_pb2.JournalEntry:
    return entry(
        fund=-original.fund_pay_sumamt_fen,
        cash=-original.psn_cash_pay_fen,
        kind=journal_pb2.JOURNAL_ENTRY_KIND_REVERSAL,
        reverses_msgid=original.msgid,
        at=SETTLED_AT + timedelta(hours=2),
    )


def test_a_reconcile_asked_anywhere_runs_once_at_the_national_node(tree: dict[str, Node]) -> None:
    province = stub(tree, PROVINCE)
    request = api.ReconcileRequest(request_id="330000000000202601060000001", start_date=date_message(JAN_5))
    run = province.Reconcile(request, timeout=20).run
    assert run.run_id and (run.start_date, run.end_date) == (date_message(JAN_5), date_message(JAN_5))
    assert province.Reconcile(request, timeout=20).run.run_id == run.run_id

    done = finished(stub(tree, NATIONAL), run.run_id)
    assert done.state == statement_pb2.JOB_STATE_SUCCEEDED
    assert (done.compared_count, done.discrepancy_count) == (0, 0)
    assert done.end_time.ToDatetime() >= done.start_time.ToDatetime()
    listed = province.ListDiscrepancies(api.ListDiscrepanciesRequest(run_id=run.run_id), timeout=20)
    assert list(listed.discrepancies) == []


def test_a_run_fails_when_a_node_of_the_tree_does_not_answer(tree: dict[str, Node]) -> None:
    tree[PROVINCE].stop(0)
    national = stub(tree, NATIONAL)
    run = national.Reconcile(
        api.ReconcileRequest(request_id="000000000000202601060000002", start_date=date_message(JAN_5)),
        timeout=20,
    ).run
    failed = finished(national, run.run_id)
    assert failed.state == statement_pb2.JOB_STATE_FAILED
    assert "330000" in failed.failure_reason


def test_bad_requests_are_refused_naming_the_field(tree: dict[str, Node]) -> None:
    national = stub(tree, NATIONAL)
    day = date_message(JAN_5)
    assert refusal(
        national.Reconcile,
        api.ReconcileRequest(request_id="r1", start_date=day, end_date=date_message(date(2026, 1, 4))),
    ) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", {"end_date"})
    assert refusal(
        national.Reconcile,
        api.ReconcileRequest(request_id="r2", start_date=day, end_date=date_message(date(2026, 2, 5))),
    ) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", {"end_date"})
    assert refusal(
        national.Reconcile, api.ReconcileRequest(request_id="r3", start_date=day, admdvs="330400")
    ) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_CODE",
        {"admdvs"},
    )
    assert refusal(national.Reconcile, api.ReconcileRequest(request_id="r4"))[2] == {"start_date"}
    assert refusal(national.GetReconciliationRun, api.GetReconciliationRunRequest(run_id="RCnone"))[:2] == (
        grpc.StatusCode.NOT_FOUND,
        "NOT_FOUND",
    )
    assert refusal(
        national.RepairDiscrepancies,
        api.RepairDiscrepanciesRequest(request_id="r5", discrepancy_ids=["nope"]),
    )[:2] == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    assert refusal(national.RepairDiscrepancies, api.RepairDiscrepanciesRequest(request_id="r6"))[2] == {
        "run_id"
    }
    assert refusal(national.ListReconciliationLines, api.ListReconciliationLinesRequest(run_id="RCnone"))[
        :2
    ] == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    assert refusal(national.ListReconciliationLines, api.ListReconciliationLinesRequest())[2] == {"run_id"}
    assert refusal(
        national.ListReconciliationLines, api.ListReconciliationLinesRequest(run_id="RCnone", page_size=-1)
    )[2] == {"page_size"}


def test_a_runs_report_lists_each_day_province_pair_and_insurance_type_page_by_page(
    tree: dict[str, Node],
) -> None:
    national, province = stub(tree, NATIONAL), stub(tree, PROVINCE)
    kept = entry(fund=4889, cash=1540, acct_pay_fen=300, medfee_sumamt_fen=6729)
    refunded = entry(fund=1000, cash=500)
    resident = entry(fund=300, cash=200, insutype="390")
    next_day = entry(fund=700, cash=300, at=SETTLED_AT + timedelta(days=1))
    national.AppendJournalEntries(
        api.AppendJournalEntriesRequest(
            request_id="110000000000202601051000003",
            source_admdvs="110000",
            entries=[kept, refunded, reversal_of(refunded), resident, next_day],
        ),
        timeout=20,
    )
    run = province.Reconcile(
        api.ReconcileRequest(
            request_id="330000000000202601070000001",
            start_date=date_message(JAN_5),
            end_date=date_message(JAN_5 + timedelta(days=1)),
        ),
        timeout=20,
    ).run
    done = finished(national, run.run_id)
    assert (done.state, done.failure_reason) == (statement_pb2.JOB_STATE_SUCCEEDED, "")
    assert (done.compared_count, done.discrepancy_count) == (5, 5), "only the journal holds these"

    lines: list[reconciliation_pb2.ReconciliationLine] = []
    token, pages = "", 0
    while True:
        page = province.ListReconciliationLines(
            api.ListReconciliationLinesRequest(run_id=run.run_id, page_size=1, page_token=token), timeout=20
        )
        lines += page.lines
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert [(line.day, line.insured_province, line.treatment_province, line.insutype) for line in lines] == [
        (date_message(JAN_5), "130000", "110000", "310"),
        (date_message(JAN_5), "130000", "110000", "390"),
        (date_message(JAN_5 + timedelta(days=1)), "130000", "110000", "310"),
    ]
    nothing = reconciliation_pb2.SideTotals()
    assert (lines[0].treatment, lines[0].insured) == (nothing, nothing)
    assert lines[0].national == reconciliation_pb2.SideTotals(
        count=1, medfee_sumamt_fen=6729, fund_pay_sumamt_fen=4889
    ), "a reversal counts -1 with its amounts negated"
    assert [line.discrepancy_count for line in lines] == [3, 1, 1]
    assert refusal(
        national.ListReconciliationLines,
        api.ListReconciliationLinesRequest(run_id="RCother", page_token=page_token_of(national, run.run_id)),
    )[2] == {"page_token"}

    listed = national.ListDiscrepancies(api.ListDiscrepanciesRequest(run_id=run.run_id), timeout=20)
    found = next(d for d in listed.discrepancies if d.msgid == kept.msgid)
    assert found.kind == reconciliation_pb2.DISCREPANCY_KIND_MISSING_AT_TREATMENT
    assert (found.day, found.insured_province, found.treatment_province, found.insutype) == (
        date_message(JAN_5),
        "130000",
        "110000",
        "310",
    )
    assert not found.treatment.present and not found.insured.present
    side = found.national
    assert (side.setl_id, side.medfee_sumamt_fen, side.fund_pay_sumamt_fen) == (kept.setl_id, 6729, 4889)
    assert (side.acct_pay_fen, side.psn_cash_pay_fen, side.record_time) == (300, 1540, kept.setl_time)
    assert not side.confirmed and not found.HasField("repair_time")


def page_token_of(clearing: api_grpc.ClearingServiceStub, run_id: str) -> str:
    """A token ListReconciliationLines issued for ``run_id``."""
    page = clearing.ListReconciliationLines(
        api.ListReconciliationLinesRequest(run_id=run_id, page_size=1), timeout=20
    )
    assert page.next_page_token
    return page.next_page_token


def test_institution_totals_3201_count_net_of_reversals_per_group(tree: dict[str, Node]) -> None:
    national = stub(tree, NATIONAL)
    kept, refunded = entry(fund=4889, cash=1540), entry(fund=1000, cash=500)
    inpatient = entry(fund=20_000, cash=3_000, clr_type="21")
    next_day = entry(fund=700, cash=300, at=SETTLED_AT + timedelta(days=1))
    national.AppendJournalEntries(
        api.AppendJournalEntriesRequest(
            request_id="110000000000202601051000001",
            source_admdvs="110000",
            entries=[kept, refunded, reversal_of(refunded), inpatient, next_day],
        ),
        timeout=20,
    )
    group = api.TotalsGroup(insutype="310", clr_type="11", setl_optins="110000")

    def check(**theirs: int) -> api.CheckInstitutionTotalsResponse:
        return national.CheckInstitutionTotals(
            api.CheckInstitutionTotalsRequest(
                fixmedins_code=HOSPITAL,
                group=group,
                start_date=date_message(JAN_5),
                end_date=date_message(JAN_5),
                **theirs,
            ),
            timeout=20,
        )

    agreed = check(medfee_sumamt_fen=6429, fund_pay_sumamt_fen=4889, fixmedins_setl_cnt=1)
    assert agreed.balanced and agreed.description == "balanced"
    assert (agreed.medfee_sumamt_fen, agreed.fund_pay_sumamt_fen, agreed.acct_pay_fen, agreed.setl_cnt) == (
        6429,
        4889,
        0,
        1,
    )
    differs = check(medfee_sumamt_fen=7929, fund_pay_sumamt_fen=5889, fixmedins_setl_cnt=2)
    assert not differs.balanced
    assert "fund_pay_sumamt_fen: node 4889, institution 5889" in differs.description
    assert "setl_cnt: node 1, institution 2" in differs.description
    assert refusal(
        national.CheckInstitutionTotals,
        api.CheckInstitutionTotalsRequest(
            fixmedins_code="H1", group=api.TotalsGroup(insutype="999", clr_type="11", setl_optins="110000")
        ),
    )[2] == {"fixmedins_code", "group.insutype"}


def test_institution_details_3202_name_each_differing_settlement_with_its_msgid(
    tree: dict[str, Node],
) -> None:
    national = stub(tree, NATIONAL)
    kept, refunded, unknown_to_them = (
        entry(fund=4889, cash=1540),
        entry(fund=1000, cash=500),
        entry(fund=5, cash=5),
    )
    undo = reversal_of(refunded)
    national.AppendJournalEntries(
        api.AppendJournalEntriesRequest(
            request_id="110000000000202601051000002",
            source_admdvs="110000",
            entries=[kept, refunded, undo, unknown_to_them],
        ),
        timeout=20,
    )

    def row(source: journal_pb2.JournalEntry, **changes: object) -> api.InstitutionDetailRow:
        values: dict[str, object] = {
            "setl_id": source.setl_id,
            "mdtrt_id": source.mdtrt_id,
            "psn_no": source.psn_no,
            "medfee_sumamt_fen": abs(source.medfee_sumamt_fen),
            "fund_pay_sumamt_fen": abs(source.fund_pay_sumamt_fen),
            "refd_setl_flag": source.kind == journal_pb2.JOURNAL_ENTRY_KIND_REVERSAL,
        }
        return api.InstitutionDetailRow(**(values | changes))

    answer = national.CheckInstitutionDetails(
        api.CheckInstitutionDetailsRequest(
            fixmedins_code=HOSPITAL,
            start_date=date_message(JAN_5),
            end_date=date_message(JAN_5),
            rows=[
                row(kept, fund_pay_sumamt_fen=4800),
                row(refunded),
                row(undo),
                api.InstitutionDetailRow(setl_id="110000SETL99999999999999999999", medfee_sumamt_fen=100),
            ],
        ),
        timeout=20,
    )
    assert not answer.balanced
    by_setl_id = {(m.node_row.setl_id or m.institution_row.setl_id): m for m in answer.mismatches}
    assert set(by_setl_id) == {kept.setl_id, unknown_to_them.setl_id, "110000SETL99999999999999999999"}
    assert by_setl_id[kept.setl_id].msgid == kept.msgid
    assert by_setl_id[kept.setl_id].memo == "fund_pay_sumamt_fen: node 4889, institution 4800"
    assert by_setl_id[unknown_to_them.setl_id].msgid == unknown_to_them.msgid
    assert not by_setl_id[unknown_to_them.setl_id].HasField("institution_row")
    assert not by_setl_id["110000SETL99999999999999999999"].HasField("node_row")
