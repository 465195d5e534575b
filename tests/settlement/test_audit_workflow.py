"""The large-bill audit as a workflow (大额协查, issue 21): queued at the treatment node, decided once by its
operators; an adjustment reaches the insured node and the national node's next clearing.

One federation per database: national, Zhejiang, Jiaxing (330400) and Qinghai (630000), with mutual
TLS so every caller is who it says. Story 2 settles a Qinghai patient's 30,220-yuan stay at a Jiaxing
hospital (audit-flagged); a second stay of the same patient makes a second case.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import pytest
from federation.federation_support import open_visit, topology
from prometheus_client.parser import text_string_to_metric_families

from yidi.clearing.v1 import clearing_service_pb2, clearing_service_pb2_grpc
from yidi.settlement.v1 import audit_case_service_pb2 as api
from yidi.settlement.v1 import audit_case_service_pb2_grpc as api_grpc
from yidi.settlement.v1 import settlement_pb2, settlement_service_pb2
from yidi_core.codes import NATIONAL_REGION
from yidi_harness.federation import (
    Federation,
    init_demo_pki,
    institution,
    load_sample_data,
    region_operator,
    start_federation,
)
from yidi_harness.polling import eventually
from yidi_harness.stories import QINGHAI_RESIDENT, STORIES, BillLine, Encounter, Stage, refusal_reason
from yidi_runtime.identity import Principal
from yidi_testing import error_details

JIAXING, QINGHAI = "330400", "630000"
HOSPITAL = "H33040200001"
DEADLINE_S = 20.0


@dataclass(frozen=True)
class Played:
    """The federation after story 2 and a second large stay: two open cases at Jiaxing."""

    federation: Federation
    first: settlement_pb2.Settlement
    second: settlement_pb2.Settlement
    reversed: settlement_pb2.Settlement
    """A third large stay, reversed by the hospital: its case stays open but cannot be adjusted."""

    def audit(self, region: str = JIAXING, as_: Principal | None = None) -> api_grpc.AuditCaseServiceStub:
        """AuditCaseService at ``region``'s node, by default as its operator."""
        return api_grpc.AuditCaseServiceStub(self.federation.channel(region, as_ or region_operator(region)))


@pytest.fixture(scope="module")
def played(
    module_database_factory: Callable[[], str | None], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Played]:
    tree = topology(NATIONAL_REGION, "330000", JIAXING, QINGHAI)
    pki = init_demo_pki(tmp_path_factory.mktemp("pki"), tree)
    with start_federation(
        tree, tmp_path_factory.mktemp("audit"), module_database_factory, pki=pki, metrics_port=0
    ) as federation:
        load_sample_data(federation)
        stage = Stage(federation, datetime.now(UTC))
        story = STORIES[1].play(stage)
        assert story.settlement is not None, story.failure
        again = Encounter(
            patient=QINGHAI_RESIDENT,
            fixmedins_code=HOSPITAL,
            med_type="21",
            service_date=stage.today,
            begin_time=stage.earlier_today(5),
            end_time=stage.now,
            diagnoses=("I21.000",),
            bill=(BillLine("003106050020000", "经皮冠状动脉支架置入术", "1", "31000.00"),),
        )
        window = stage.window(HOSPITAL)
        second = window.settle(open_visit(window, again)[1])
        third = window.settle(open_visit(window, again)[1])
        window.stub.ReverseSettlement(
            settlement_service_pb2.ReverseSettlementRequest(
                request_id=window.request_id(),
                envelope=window.envelope(QINGHAI),
                setl_id=third.setl_id,
                mdtrt_id=third.mdtrt_id,
                psn_no=third.psn_no,
            ),
            timeout=DEADLINE_S,
        )
        yield Played(federation, story.settlement, second, third)


def _gauges(played: Played) -> dict[str, float]:
    """Jiaxing's audit gauges, as its /metrics endpoint shows them now."""
    node = played.federation.nodes[JIAXING]
    assert node.metrics_endpoint is not None
    url = f"http://{node.settings.host}:{node.metrics_endpoint.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode("utf-8")
    return {
        family.name: family.samples[0].value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("yidi_settlement_audit_cases_")
    }


def _refused(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code(), refusal_reason(raised.value)


def _decide(
    setl_id: str,
    request_id: str,
    decision: api.AuditDecision.ValueType,
    disallowed_fen: int = 0,
    reason: str = "",
) -> api.DecideAuditCaseRequest:
    return api.DecideAuditCaseRequest(
        request_id=request_id,
        setl_id=setl_id,
        decision=decision,
        disallowed_fen=disallowed_fen,
        reason=reason,
    )


def test_the_large_bills_wait_in_jiaxings_queue(played: Played) -> None:
    listed = played.audit().ListAuditCases(
        api.ListAuditCasesRequest(state=api.AUDIT_CASE_STATE_OPEN, page_size=1), timeout=DEADLINE_S
    )
    rest = played.audit().ListAuditCases(
        api.ListAuditCasesRequest(state=api.AUDIT_CASE_STATE_OPEN, page_token=listed.next_page_token),
        timeout=DEADLINE_S,
    )
    cases = [*listed.cases, *rest.cases]
    assert [case.setl_id for case in cases] == [
        played.first.setl_id,
        played.second.setl_id,
        played.reversed.setl_id,
    ]
    first = played.audit().GetAuditCase(
        api.GetAuditCaseRequest(setl_id=played.first.setl_id), timeout=DEADLINE_S
    )
    case = first.audit_case
    assert (case.insuplc_admdvs, case.fixmedins_code, case.medfee_sumamt_fen) == (
        QINGHAI,
        HOSPITAL,
        played.first.result.amounts.medfee_sumamt_fen,
    )
    assert case.fund_pay_sumamt_fen == played.first.result.amounts.fund_pay_sumamt_fen
    assert case.due_date.year and not case.overdue
    overdue = played.audit().ListAuditCases(api.ListAuditCasesRequest(overdue_only=True), timeout=DEADLINE_S)
    assert not overdue.cases
    assert _gauges(played) == {
        "yidi_settlement_audit_cases_open": 3,
        "yidi_settlement_audit_cases_overdue": 0,
    }


def test_only_the_treatment_regions_operators_decide(played: Played) -> None:
    request = _decide(played.first.setl_id, "AUD-X", api.AUDIT_DECISION_ACCEPT)
    for as_ in (region_operator(QINGHAI), institution(HOSPITAL)):
        stub = played.audit(JIAXING, as_)
        code, _ = _refused(lambda: stub.DecideAuditCase(request, timeout=DEADLINE_S))  # noqa: B023 (called at once)
        assert code is grpc.StatusCode.PERMISSION_DENIED
    code, _ = _refused(
        lambda: played.audit(JIAXING, institution(HOSPITAL)).ListAuditCases(
            api.ListAuditCasesRequest(), timeout=DEADLINE_S
        )
    )
    assert code is grpc.StatusCode.PERMISSION_DENIED
    code, reason = _refused(
        lambda: played.audit().DecideAuditCase(
            _decide(played.first.setl_id, "AUD-BAD", api.AUDIT_DECISION_ADJUST), timeout=DEADLINE_S
        )
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    over = played.first.result.amounts.fund_pay_sumamt_fen + 1
    with pytest.raises(grpc.RpcError) as raised:
        played.audit().DecideAuditCase(
            _decide(played.first.setl_id, "AUD-OVER", api.AUDIT_DECISION_ADJUST, over, "x"),
            timeout=DEADLINE_S,
        )
    [violation] = error_details(raised.value)["BadRequest"].field_violations
    assert violation.field == "disallowed_fen"
    state = played.audit().GetAuditCase(
        api.GetAuditCaseRequest(setl_id=played.first.setl_id), timeout=DEADLINE_S
    )
    assert state.audit_case.state == api.AUDIT_CASE_STATE_OPEN


def test_an_adjustment_reaches_the_insured_node_and_the_next_clearing(played: Played) -> None:
    fund = played.first.result.amounts.fund_pay_sumamt_fen
    disallowed = 120_000
    request = _decide(
        played.first.setl_id, "AUD-1", api.AUDIT_DECISION_ADJUST, disallowed, "支架数量与病历不符"
    )
    decided = played.audit().DecideAuditCase(request, timeout=DEADLINE_S).audit_case
    assert (decided.state, decided.disallowed_fen) == (api.AUDIT_CASE_STATE_ADJUSTED, disallowed)
    assert decided.decided_by == f"operator/{JIAXING}/ops"
    assert played.audit().DecideAuditCase(request, timeout=DEADLINE_S).audit_case == decided  # replayed
    code, reason = _refused(
        lambda: played.audit().DecideAuditCase(
            _decide(played.first.setl_id, "AUD-2", api.AUDIT_DECISION_ACCEPT), timeout=DEADLINE_S
        )
    )
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "AUDIT_CASE_DECIDED")

    at_qinghai = played.audit(QINGHAI)
    listing = api.ListAuditAdjustmentsRequest(
        route=settlement_pb2.Route(destination_admdvs=QINGHAI), setl_id=played.first.setl_id
    )

    def recorded() -> list[api.AuditAdjustment] | None:
        return list(at_qinghai.ListAuditAdjustments(listing, timeout=DEADLINE_S).adjustments) or None

    found = eventually(recorded, within_s=30, interval_s=0.1, what="the adjustment reaches Qinghai")
    assert found is not None
    [adjustment] = found
    assert (adjustment.treatment_admdvs, adjustment.disallowed_fen) == (JIAXING, disallowed)
    assert adjustment.psn_no == played.first.psn_no
    code, _ = _refused(lambda: played.audit().ListAuditAdjustments(listing, timeout=DEADLINE_S))
    assert code is grpc.StatusCode.PERMISSION_DENIED  # Qinghai's ledger is its own operators' to read

    # The national node holds the clawback: what is left to claw back is the fund payment less it.
    national = clearing_service_pb2_grpc.ClearingServiceStub(
        played.federation.channel(NATIONAL_REGION, region_operator(NATIONAL_REGION))
    )
    too_much = clearing_service_pb2.RecordClawbackRequest(
        request_id="CB-PROBE",
        msgid=played.first.medins_setl_id,
        amount_fen=fund - disallowed + 1,
        reason="probe",
        fixmedins_code=HOSPITAL,
    )

    def left() -> str | None:
        """What the national node says is left to claw back, once it says fund − disallowed."""
        with pytest.raises(grpc.RpcError) as refused:
            national.RecordClawback(too_much, timeout=DEADLINE_S)
        details = str(refused.value.details())
        return details if details.endswith(f"{fund - disallowed} fen") else None

    eventually(left, within_s=30, interval_s=0.1, what="the clawback is recorded at the national node")


def test_an_accepted_case_sends_nothing(played: Played) -> None:
    request = _decide(played.second.setl_id, "AUD-3", api.AUDIT_DECISION_ACCEPT, reason="病历相符")
    decided = played.audit().DecideAuditCase(request, timeout=DEADLINE_S).audit_case
    assert (decided.state, decided.disallowed_fen) == (api.AUDIT_CASE_STATE_ACCEPTED, 0)
    accepted = played.audit().ListAuditCases(
        api.ListAuditCasesRequest(state=api.AUDIT_CASE_STATE_ACCEPTED), timeout=DEADLINE_S
    )
    assert [case.setl_id for case in accepted.cases] == [played.second.setl_id]
    assert _gauges(played)["yidi_settlement_audit_cases_open"] == 1  # the reversed one


def test_an_adjustment_is_within_the_fund_payment_of_a_settlement_not_reversed(played: Played) -> None:
    fund = played.reversed.result.amounts.fund_pay_sumamt_fen
    adjust = played.audit().DecideAuditCase
    code, reason = _refused(
        lambda: adjust(
            _decide(played.reversed.setl_id, "AUD-4", api.AUDIT_DECISION_ADJUST, 100, "x"), timeout=DEADLINE_S
        )
    )
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_REVERSED")
    code, reason = _refused(
        lambda: adjust(
            _decide(played.first.setl_id, "AUD-5", api.AUDIT_DECISION_ADJUST, fund + 1, "x"),
            timeout=DEADLINE_S,
        )
    )
    assert code is grpc.StatusCode.FAILED_PRECONDITION  # decided already: the first decision stands
    code, reason = _refused(
        lambda: played.audit().GetAuditCase(
            api.GetAuditCaseRequest(setl_id="330400NOSUCHCASE"), timeout=DEADLINE_S
        )
    )
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    case = played.audit().GetAuditCase(
        api.GetAuditCaseRequest(setl_id=played.reversed.setl_id), timeout=DEADLINE_S
    )
    assert case.audit_case.state == api.AUDIT_CASE_STATE_OPEN
    listing = api.ListAuditAdjustmentsRequest(
        route=settlement_pb2.Route(destination_admdvs=QINGHAI), setl_id=played.second.setl_id
    )
    assert not played.audit(QINGHAI).ListAuditAdjustments(listing, timeout=DEADLINE_S).adjustments
