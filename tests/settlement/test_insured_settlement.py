"""InsuredSettlementService at the insured node: apply, repeat, dry run, refusals and reverts.

One province node (Qinghai, 630000) runs filing, catalogue and settlement, on SQLite and on
PostgreSQL; the sample persons and a test policy are loaded through the stubs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from insured_builders import (
    LOCAL_TREATMENT,
    REMOTE_TREATMENT,
    RETIREE_CERTNO,
    SERVICE_DAY,
    Insured,
    Line,
    accumulators,
    apply_request,
    credential,
    credit,
    facts,
    insured_node,
    message_id,
    refusal,
    route,
)

from yidi.filing.v1 import filing_service_pb2, insured_person_pb2
from yidi.settlement.v1 import insured_settlement_service_pb2 as api
from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as api_grpc
from yidi.type.v1 import filing_category_pb2
from yidi.type.v1 import settlement_result_pb2 as result_pb
from yidi_services.settlement.models import Base

HOLD_S = 60.0
FP = grpc.StatusCode.FAILED_PRECONDITION


@pytest.fixture
def insured(tmp_path: Path, database_url: str | None) -> Iterator[Insured]:
    with insured_node(tmp_path, database_url, settlement_hold_timeout_s=HOLD_S) as running:
        yield running


def changes(result: result_pb.SettlementResult) -> list[tuple[str, str, int, int]]:
    return [
        (result_pb.AccumulatorKind.Name(c.kind), c.key, c.before_fen, c.delta_fen)
        for c in result.accumulator_changes
    ]


def test_apply_changes_the_accumulators_once_and_a_dry_run_changes_nothing(insured: Insured) -> None:
    stub, retiree = insured.stub, insured.retiree
    assert credit(stub, retiree, 50_000) == 50_000
    resolved = stub.ResolvePerson(
        api.ResolvePersonRequest(
            route=route(),
            credential=credential(RETIREE_CERTNO),
            treatment_admdvs=LOCAL_TREATMENT,
            service_date=SERVICE_DAY,
            med_type="11",
        )
    ).person
    assert (resolved.psn_no, resolved.has_personal_account, resolved.account_balance_fen) == (
        retiree,
        True,
        50_000,
    )

    request = apply_request(retiree, use_account=True)
    dry = api.ApplySettlementRequest()
    dry.CopyFrom(request)
    dry.request_id, dry.dry_run, dry.setl_id = message_id(), True, ""
    estimated = stub.ApplySettlement(dry)
    assert accumulators(stub, retiree) == {"account": 50_000}
    assert not estimated.HasField("hold_expires_at")

    applied = stub.ApplySettlement(request)
    amounts = applied.result.amounts
    # 300.00 in scope: 100.00 deductible, 50% of 200.00 from the fund; the account pays the rest.
    assert (amounts.medfee_sumamt_fen, amounts.act_pay_dedc_fen, amounts.hifp_pay_fen) == (
        35_000,
        10_000,
        10_000,
    )
    assert (amounts.acct_pay_fen, amounts.psn_cash_pay_fen, amounts.balc_fen) == (25_000, 0, 25_000)
    assert estimated.result.amounts == amounts
    assert applied.policy_version.startswith("630000/310@2022-01-01#")
    assert (applied.result.policy_version, applied.result.catalogue_version) == (
        applied.policy_version,
        request.catalogue_version,
    )
    assert applied.hold_expires_at.ToDatetime(tzinfo=UTC) == insured.clock.now + timedelta(seconds=HOLD_S)
    assert applied.person.psn_no == retiree and applied.person.account_balance_fen == 50_000
    assert changes(applied.result) == [
        ("ACCUMULATOR_KIND_DEDUCTIBLE", "outpatient", 0, 10_000),
        ("ACCUMULATOR_KIND_SEGMENT", "outpatient", 0, 20_000),
        ("ACCUMULATOR_KIND_CAP", "outpatient", 0, 10_000),
        ("ACCUMULATOR_KIND_ACCOUNT", "", 50_000, -25_000),
    ]
    after = {"deductible:outpatient": 10_000, "segment:outpatient": 20_000, "cap:outpatient": 10_000}
    assert accumulators(stub, retiree) == {**after, "account": 25_000}

    assert stub.ApplySettlement(request).SerializeToString() == applied.SerializeToString()
    assert accumulators(stub, retiree) == {**after, "account": 25_000}
    other = api.ApplySettlementRequest()
    other.CopyFrom(request)
    other.use_account = False
    assert refusal(lambda: stub.ApplySettlement(other))[:2] == (
        grpc.StatusCode.ALREADY_EXISTS,
        "DUPLICATE_REQUEST",
    )

    second = stub.ApplySettlement(apply_request(retiree, use_account=True)).result.amounts
    assert (second.act_pay_dedc_fen, second.hifp_pay_fen, second.acct_pay_fen) == (0, 15_000, 20_000)


def test_refusals_name_their_reason_and_field(insured: Insured) -> None:
    stub, employee = insured.stub, insured.employee
    shapeless = apply_request("", facts=facts(med_type="", treatment="99"))
    code, reason, fields = refusal(lambda: stub.ApplySettlement(shapeless))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert {"psn_no", "facts.med_type", "facts.mdtrtarea_admvs"} <= set(fields)

    wrong_total = apply_request(employee)
    wrong_total.totals.inscp_scp_amt_fen += 1
    assert refusal(lambda: stub.ApplySettlement(wrong_total))[1:] == (
        "AMOUNT_MISMATCH",
        ["totals.inscp_scp_amt_fen"],
    )
    wrong_line = apply_request(employee)
    wrong_line.items[0].inscp_scp_amt_fen -= 1
    wrong_line.totals.inscp_scp_amt_fen -= 1
    assert refusal(lambda: stub.ApplySettlement(wrong_line))[1:] == (
        "AMOUNT_MISMATCH",
        ["items[0].det_item_fee_sumamt_fen"],
    )
    assert refusal(lambda: stub.ApplySettlement(apply_request(employee, insutype="390")))[1:] == (
        "INVALID_ARGUMENT",
        ["insutype"],
    )
    remote = apply_request(employee, facts=facts(treatment=REMOTE_TREATMENT))
    assert refusal(lambda: stub.ApplySettlement(remote))[:2] == (FP, "NOT_FILED")
    rescued = stub.ApplySettlement(
        apply_request(employee, facts=facts(treatment=REMOTE_TREATMENT, emergency=True))
    )
    assert rescued.person.filing_category == filing_category_pb2.FILING_CATEGORY_EMERGENCY
    assert rescued.result.amounts.hifp_pay_fen == 8_000  # 40% (50% less the emergency adjustment) of 200.00

    insured.filing.UpdateInsuredStatus(
        filing_service_pb2.UpdateInsuredStatusRequest(
            request_id=message_id(),
            person=insured_person_pb2.PersonLookup(psn_no=employee),
            interrupted_from=SERVICE_DAY,
        )
    )
    assert refusal(lambda: stub.ApplySettlement(apply_request(employee)))[:2] == (
        FP,
        "CONTRIBUTION_INTERRUPTED",
    )

    assert refusal(lambda: credit(stub, "630000000000000000000000000999", 100))[1] == "PERSON_NOT_FOUND"
    missing = api.GetAccumulatorsRequest(psn_no="630000000000000000000000000999", year=2026)
    assert refusal(lambda: stub.GetAccumulators(missing))[1] == "PERSON_NOT_FOUND"
    credit(stub, employee, 1_000)
    assert refusal(lambda: credit(stub, employee, -1_001))[1:] == ("INVALID_ARGUMENT", ["amount_fen"])
    unknown = api.ConfirmSettlementRequest(
        request_id=message_id(), route=route(), original_request_id="never-applied", setl_id="x"
    )
    assert refusal(lambda: stub.ConfirmSettlement(unknown))[:2] == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")


def revert(
    stub: api_grpc.InsuredSettlementServiceStub, original: str, request_id: str = ""
) -> api.RevertSettlementResponse:
    return stub.RevertSettlement(
        api.RevertSettlementRequest(
            request_id=request_id or message_id(), route=route(), original_request_id=original
        )
    )


def test_revert_restores_exactly_and_a_revert_in_advance_refuses_the_apply_for_ever(insured: Insured) -> None:
    stub, retiree = insured.stub, insured.retiree
    credit(stub, retiree, 40_000)
    stub.ApplySettlement(apply_request(retiree, use_account=True))
    before = accumulators(stub, retiree)

    request = apply_request(retiree, (Line("1", 123_456),), use_account=True)
    applied = stub.ApplySettlement(request)
    assert accumulators(stub, retiree) != before
    revert_id = message_id()
    reverted = revert(stub, request.request_id, revert_id)
    assert reverted.reverted
    assert [(c.kind, c.key, c.delta_fen) for c in reverted.accumulator_changes] == [
        (c.kind, c.key, -c.delta_fen) for c in applied.result.accumulator_changes
    ]
    assert accumulators(stub, retiree) == before
    assert revert(stub, request.request_id, revert_id) == reverted
    assert revert(stub, request.request_id).accumulator_changes == []
    assert accumulators(stub, retiree) == before
    assert refusal(lambda: stub.ApplySettlement(request))[:2] == (FP, "CORRECTED")
    confirm = api.ConfirmSettlementRequest(
        request_id=message_id(),
        route=route(),
        original_request_id=request.request_id,
        setl_id=request.setl_id,
    )
    # A confirmation overtaken by the reversal is answered (nothing to do), never re-applied.
    assert stub.ConfirmSettlement(confirm).state == api.HOLD_STATE_VOIDED
    assert accumulators(stub, retiree) == before

    late = apply_request(retiree)
    assert not revert(stub, late.request_id).reverted
    assert refusal(lambda: stub.ApplySettlement(late))[:2] == (FP, "CORRECTED")
    assert accumulators(stub, retiree) == before


def _insured_only(item: Any, name: str | None, kind: str, _reflected: bool, _compare_to: Any) -> bool:
    """Only the insured side's tables (the treatment side's are another module's business)."""
    table = item.name if kind == "table" else getattr(getattr(item, "table", None), "name", "")
    return str(table).startswith("settlement_insured_")


def test_the_migration_creates_exactly_the_tables_the_insured_models_map(insured: Insured) -> None:
    database = next(
        service.database for service in insured.node.services if service.group.name == "settlement"
    )
    with database.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": _insured_only}
        )
        assert compare_metadata(context, Base.metadata) == []
