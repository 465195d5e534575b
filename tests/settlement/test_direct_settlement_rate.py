"""The direct-settlement rate (应结尽结): what became of a Beijing hospital's visits for Langfang patients.

Through the stubs, on the Beijing tree (SQLite and PostgreSQL): the filed retiree settles
directly; the unfiled employee is refused NOT_FILED at pre-settlement, and refused again on
another visit whose full bill the hospital then uploads for manual reimbursement; another bill
names no visit; a visit nobody tried to settle is pending; a request the HIS got wrong is not a
refusal. The report counts each case once, per institution and region, `yidi report` prints
it, and the node exports this month's cases and the refusals by reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from google.type.date_pb2 import Date
from loading import BEIJING, LANGFANG, SERVICE_DAY, beijing_tree, load_insured, psn_no_of
from treatment_his import (
    DRUGS,
    DRUGS_FEN,
    HOSPITAL,
    NEIGHBOUR,
    diabetes_visit,
    envelope,
    id_card,
    lines,
    msgid,
    open_visit,
    refusal,
    settle_request,
    upload,
)

from yidi.settlement.v1 import settlement_pb2
from yidi.settlement.v1 import settlement_service_pb2 as api
from yidi.settlement.v1 import settlement_service_pb2_grpc as api_grpc
from yidi.type.v1 import visit_pb2
from yidi_runtime.server import Node
from yidi_runtime.wire import china_day

YIDI = Path(sys.executable).with_name("yidi")
EMPLOYEE_CERTNO = "131000198309180289"  # 样例廊二: insured in Langfang, never filed
JULY = (Date(year=2022, month=7, day=1), Date(year=2022, month=7, day=31))


@pytest.fixture(scope="module")
def nodes(
    tmp_path_factory: pytest.TempPathFactory, module_database_factory: Callable[[], str | None]
) -> Iterator[dict[str, Node]]:
    with beijing_tree(tmp_path_factory.mktemp("rate"), module_database_factory) as started:
        yield started


@pytest.fixture(scope="module")
def stub(nodes: dict[str, Node]) -> Iterator[api_grpc.SettlementServiceStub]:
    with grpc.insecure_channel(nodes[BEIJING].address) as channel:
        yield api_grpc.SettlementServiceStub(channel)


def yidi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(YIDI), *args], capture_output=True, text=True, timeout=60, check=False)


def _bill(mdtrt_id: str = "") -> api.UploadSelfPayBillRequest:
    return api.UploadSelfPayBillRequest(
        request_id=msgid(),
        envelope=envelope(),
        bill=settlement_pb2.SelfPayBill(
            credential=id_card(EMPLOYEE_CERTNO),
            insuplc_admdvs=LANGFANG,
            facts=visit_pb2.VisitFacts(med_type="14", service_date=SERVICE_DAY, diagnoses=["E11.900"]),
            items=lines(DRUGS),
            medfee_sumamt_fen=DRUGS_FEN,
            invoice_numbers=["FP0002"],
            direct_settlement_failure_reason="NOT_FILED",
            service_date=SERVICE_DAY,
            mdtrt_id=mdtrt_id,
        ),
    )


def _report(stub: api_grpc.SettlementServiceStub, **fields: object) -> api.GetDirectSettlementReportResponse:
    start, end = JULY
    values: dict[str, object] = {"envelope": envelope(), "start_date": start, "end_date": end, **fields}
    return stub.GetDirectSettlementReport(api.GetDirectSettlementReportRequest(**values), timeout=20)


def _counts(tally: api.DirectSettlementTally) -> tuple[int, int, int, int, int, int]:
    return (
        tally.case_count,
        tally.direct_count,
        tally.refused_count,
        tally.manual_count,
        tally.pending_count,
        tally.direct_rate_bp,
    )


@pytest.fixture(scope="module")
def played(nodes: dict[str, Node], stub: api_grpc.SettlementServiceStub) -> dict[str, str]:
    """The visits of the story, by what became of them."""
    retiree = load_insured(nodes)
    employee = psn_no_of(nodes, EMPLOYEE_CERTNO)
    direct = open_visit(stub, retiree)
    stub.Settle(settle_request(direct), timeout=20)

    refused = open_visit(stub, employee, credential=id_card(EMPLOYEE_CERTNO))
    pre = api.PreSettleRequest(envelope=envelope(), mdtrt_id=refused, medfee_sumamt_fen=DRUGS_FEN)
    assert refusal(lambda: stub.PreSettle(pre, timeout=20))[1] == "NOT_FILED"

    billed = open_visit(stub, employee, credential=id_card(EMPLOYEE_CERTNO))
    assert refusal(lambda: stub.Settle(settle_request(billed), timeout=20))[1] == "NOT_FILED"
    assert stub.UploadSelfPayBill(_bill(billed), timeout=20).bill.mdtrt_id == billed
    again = settle_request(billed)
    assert refusal(lambda: stub.Settle(again, timeout=20))[1] == "BILLED_FOR_REIMBURSEMENT"
    stub.UploadSelfPayBill(_bill(), timeout=20)

    pending = open_visit(stub, retiree)
    wrong_total = settle_request(pending, medfee_sumamt_fen=DRUGS_FEN + 1)
    assert refusal(lambda: stub.Settle(wrong_total, timeout=20))[1] == "AMOUNT_MISMATCH"
    return {"direct": direct, "refused": refused, "billed": billed, "pending": pending}


def test_each_case_counts_once_per_institution_and_region(
    stub: api_grpc.SettlementServiceStub, played: dict[str, str]
) -> None:
    report = _report(stub)
    # Cases: 1 direct, 1 refused (NOT_FILED), 2 manual (the billed visit through its bill, and a
    # bill naming no visit); the visit with the wrong total is pending, not refused.
    assert _counts(report.total) == (4, 1, 1, 2, 1, 2500)
    assert [(reason.outcome, reason.reason, reason.count) for reason in report.total.reasons] == [
        ("manual", "NOT_FILED", 2),
        ("refused", "NOT_FILED", 1),
    ]
    assert [tally.key for tally in report.institutions] == [HOSPITAL]
    assert _counts(report.institutions[0]) == _counts(report.total)
    assert [tally.key for tally in report.treatment_regions] == ["110101"]
    assert [tally.key for tally in report.insured_regions] == [LANGFANG]

    assert _counts(_report(stub, insuplc_admdvs="130000").total) == _counts(report.total)
    assert _counts(_report(stub, insuplc_admdvs="440000").total) == (0, 0, 0, 0, 0, 0)
    later = _report(stub, start_date=Date(year=2022, month=7, day=2))
    assert _counts(later.total) == (0, 0, 0, 0, 0, 0)


def test_a_bill_names_only_an_open_visit_of_the_caller_and_the_report_only_the_callers_own(
    stub: api_grpc.SettlementServiceStub, played: dict[str, str]
) -> None:
    assert (
        refusal(lambda: stub.UploadSelfPayBill(_bill(played["direct"]), timeout=20))[1] == "ALREADY_SETTLED"
    )
    assert refusal(lambda: stub.UploadSelfPayBill(_bill("NO-SUCH-VISIT"), timeout=20))[1] == "NOT_FOUND"
    other = envelope(institution=NEIGHBOUR, area="110105")
    foreign = _bill(played["pending"])
    foreign.envelope.CopyFrom(other)
    assert refusal(lambda: stub.UploadSelfPayBill(foreign, timeout=20))[1] == "PERMISSION_DENIED_REGION"

    assert refusal(lambda: _report(stub, fixmedins_code=NEIGHBOUR))[1] == "PERMISSION_DENIED_REGION"
    assert _report(stub, envelope=other).total.case_count == 0
    code, reason, fields = refusal(lambda: _report(stub, end_date=Date(year=2022, month=6, day=30)))
    assert (code, reason, fields) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", ["end_date"])
    code, reason, fields = refusal(lambda: _report(stub, start_date=Date(), insuplc_admdvs="13"))
    assert (reason, sorted(fields)) == ("INVALID_ARGUMENT", ["insuplc_admdvs", "start_date"])


def test_yidi_report_prints_the_rate_and_the_node_exports_this_months_cases(
    nodes: dict[str, Node], stub: api_grpc.SettlementServiceStub, played: dict[str, str]
) -> None:
    address = nodes[BEIJING].address
    window = ["--address", address, "--insecure", "--from", "2022-07-01", "--to", "2022-07-31"]
    printed = yidi("report", *window)
    assert printed.returncode == 0, printed.stderr
    assert "25.00% of 4 cases settled directly (1 refused, 2 reimbursed manually, 1 visits pending)" in (
        printed.stdout
    )
    assert HOSPITAL in printed.stdout and "NOT_FILED (manual) 2" in printed.stdout
    assert json.loads(yidi("report", *window, "--json").stdout)["total"]["direct_rate_bp"] == 2500
    backwards = yidi("report", *window[:3], "--from", "2022-07-31", "--to", "2022-07-01")
    assert backwards.returncode == 1 and "end_date" in backwards.stderr

    # A visit of today, refused (the employee's contributions stopped in 2026): this month's gauges count it, and the refusal counter moved.
    registry = nodes[BEIJING].metrics.registry
    before = registry.get_sample_value(
        "yidi_settlement_refusals_total", {"reason": "CONTRIBUTION_INTERRUPTED"}
    )
    today = china_day(datetime.now(UTC))
    day = Date(year=today.year, month=today.month, day=today.day)
    employee = psn_no_of(nodes, EMPLOYEE_CERTNO)
    visit = diabetes_visit(employee, credential=id_card(EMPLOYEE_CERTNO))
    visit.facts.service_date.CopyFrom(day)
    visit.begin_time.FromDatetime(datetime.now(UTC).replace(microsecond=0))
    mdtrt_id = stub.RegisterVisit(visit, timeout=20).visit.mdtrt_id
    upload(stub, mdtrt_id)
    pre = api.PreSettleRequest(envelope=envelope(), mdtrt_id=mdtrt_id, medfee_sumamt_fen=0)
    assert refusal(lambda: stub.PreSettle(pre, timeout=20))[1] == "CONTRIBUTION_INTERRUPTED"
    assert (
        registry.get_sample_value("yidi_settlement_refusals_total", {"reason": "CONTRIBUTION_INTERRUPTED"})
        == (before or 0) + 1
    )
    assert (
        registry.get_sample_value(
            "yidi_direct_settlement_cases", {"outcome": "refused", "reason": "CONTRIBUTION_INTERRUPTED"}
        )
        == 1
    )
    assert registry.get_sample_value("yidi_direct_settlement_rate") == 0.0
