"""Holds (no 单边账) and concurrency at the insured node, on SQLite and PostgreSQL.

An applied settlement is a hold: confirmed, it stays; unconfirmed when its hold times out,
the worker asks its treatment node, and voids it (restoring the accumulators) only once that
node answered it never recorded it; a confirmation after a void changes nothing.
Concurrent applies for one person never overrun a cap, and an apply racing a revert of the
same id ends with exactly one winner.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from insured_builders import (
    LOCAL_TREATMENT,
    REMOTE_TREATMENT,
    Insured,
    Line,
    accumulators,
    apply_request,
    facts,
    insured_node,
    message_id,
    refusal,
    route,
)

from yidi.settlement.v1 import insured_settlement_service_pb2 as api
from yidi_harness.polling import eventually
from yidi_services.settlement.insured.expiry import HoldExpiry
from yidi_testing import error_details, worker_of

HOLD_S = 2.0


@pytest.fixture
def insured(tmp_path: Path, database_url: str | None) -> Iterator[Insured]:
    with insured_node(tmp_path, database_url, settlement_hold_timeout_s=HOLD_S) as running:
        yield running


def expiry(insured: Insured) -> HoldExpiry:
    """The node's hold worker: a test runs its passes by calling it (its thread runs as well)."""
    return worker_of(insured.node, HoldExpiry, "settlement")


def pending(insured: Insured) -> float | None:
    """The pending-holds gauge, refreshed from the table first."""
    expiry(insured).refresh_gauge()
    return metric(insured, "yidi_settlement_holds_pending")


def settles_at(insured: Insured, holds: int) -> None:
    """The pending gauge reads ``holds`` (retried: a pass of the worker's thread may set it late)."""
    eventually(lambda: pending(insured) == holds, within_s=5, what=f"the pending gauge reads {holds}")


def confirm(insured: Insured, request: api.ApplySettlementRequest) -> api.ConfirmSettlementResponse:
    return insured.stub.ConfirmSettlement(
        api.ConfirmSettlementRequest(
            request_id=message_id(),
            route=route(),
            original_request_id=request.request_id,
            setl_id=request.setl_id,
        )
    )


def metric(insured: Insured, name: str, **labels: str) -> float | None:
    return insured.node.metrics.registry.get_sample_value(name, labels)


def test_a_timed_out_hold_is_voided_only_once_its_treatment_node_fenced_it_and_never_comes_back(
    insured: Insured,
) -> None:
    """The node applied the holds as its own treatment node, which never recorded them: it answers
    NOT_RECORDED (fencing them), so they are voided; a confirmation after that changes nothing."""
    stub = insured.stub
    kept = apply_request(insured.retiree)
    stub.ApplySettlement(kept)
    assert confirm(insured, kept).state == api.HOLD_STATE_CONFIRMED
    kept_values = accumulators(stub, insured.retiree)

    lost = apply_request(insured.employee)
    held = stub.ApplySettlement(lost)
    assert (
        accumulators(stub, insured.employee)["cap:outpatient"] == held.result.amounts.hifp_pay_fen == 10_000
    )
    dropped = apply_request(insured.retiree)
    stub.ApplySettlement(dropped)
    settles_at(insured, 2)

    insured.clock.advance(HOLD_S + 1)
    expiry(insured).void_expired()
    assert set(accumulators(stub, insured.employee).values()) == {0}
    assert accumulators(stub, insured.retiree) == kept_values
    eventually(  # counted just after the void's commit, which may have been the thread's
        lambda: metric(insured, "yidi_settlement_holds_voided_total", cause="expired") == 2,
        within_s=5,
        what="both voids are counted",
    )
    settles_at(insured, 0)
    undone = stub.RevertSettlement(
        api.RevertSettlementRequest(
            request_id=message_id(), route=route(), original_request_id=dropped.request_id
        )
    )
    assert (undone.reverted, list(undone.accumulator_changes)) == (True, [])
    # A confirmation overtaken by a reversal or a void is answered, not refused (the outbox moves
    # on), and never applies anything again: no cap or balance can be pushed past its limit.
    assert confirm(insured, dropped).state == api.HOLD_STATE_VOIDED
    assert accumulators(stub, insured.retiree) == kept_values
    late = confirm(insured, lost)
    assert (late.state, late.reapplied) == (api.HOLD_STATE_VOIDED, False)
    assert set(accumulators(stub, insured.employee).values()) == {0}

    insured.clock.advance(10 * HOLD_S)
    expiry(insured).void_expired()  # nothing confirmed may be voided
    assert accumulators(stub, insured.retiree) == kept_values


def test_a_hold_whose_treatment_node_does_not_answer_is_kept_and_asked_about_again(insured: Insured) -> None:
    """Not voided blindly: while its treatment node (Jiaxing, no route from here) cannot answer, the hold
    stays applied and each unanswered question is counted."""
    stub = insured.stub
    remote = apply_request(
        insured.employee,
        route=route(origin=REMOTE_TREATMENT),
        facts=facts(treatment=REMOTE_TREATMENT, emergency=True, fixmedins_code="H33040200001"),
    )
    held = stub.ApplySettlement(remote)
    applied = accumulators(stub, insured.employee)
    assert applied["cap:outpatient"] == held.result.amounts.hifp_pay_fen > 0

    insured.clock.advance(HOLD_S + 1)
    expiry(insured).void_expired()
    assert (metric(insured, "yidi_settlement_holds_unresolved_total") or 0) >= 1
    assert accumulators(stub, insured.employee) == applied
    assert metric(insured, "yidi_settlement_holds_pending") == 1
    assert metric(insured, "yidi_settlement_holds_voided_total", cause="expired") == 0
    other = confirmation(remote)
    other.route.origin_admdvs = LOCAL_TREATMENT  # a node that did not apply it may not confirm it
    assert refusal(lambda: stub.ConfirmSettlement(other))[1] == "PERMISSION_DENIED_REGION"
    mine = confirmation(remote)
    mine.route.origin_admdvs = REMOTE_TREATMENT
    assert stub.ConfirmSettlement(mine).state == api.HOLD_STATE_CONFIRMED
    assert accumulators(stub, insured.employee) == applied


def test_concurrent_applies_never_overrun_the_cap_and_an_apply_racing_its_revert_has_one_winner(
    insured: Insured,
) -> None:
    stub = insured.stub
    requests = [apply_request(insured.employee) for _ in range(50)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda request: stub.ApplySettlement(request, timeout=60), requests))
    paid = [answer.result.amounts.hifp_pay_fen for answer in answers]
    # 100.00 once, then 150.00 a visit until the 1000.00 outpatient cap is reached.
    assert sum(paid) == 100_000 and sorted(paid, reverse=True)[:8] == [15_000] * 6 + [10_000, 0]
    assert accumulators(stub, insured.employee)["cap:outpatient"] == 100_000
    assert sum(answer.result.amounts.cap_exhausted for answer in answers) == 43

    def apply_or_refusal(request: api.ApplySettlementRequest) -> str:
        try:
            stub.ApplySettlement(request, timeout=60)
        except grpc.RpcError as refused:
            return str(error_details(refused)["ErrorInfo"].reason)
        return "APPLIED"

    racing = [apply_request(insured.retiree, (Line("1", 20_000 + index),)) for index in range(12)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        applies = [pool.submit(apply_or_refusal, request) for request in racing]
        reverts = [
            pool.submit(
                stub.RevertSettlement,
                api.RevertSettlementRequest(
                    request_id=message_id(), route=route(), original_request_id=request.request_id
                ),
                timeout=60,
            )
            for request in racing
        ]
        outcomes = [
            (apply.result(), revert.result().reverted) for apply, revert in zip(applies, reverts, strict=True)
        ]
    assert set(outcomes) <= {("APPLIED", True), ("CORRECTED", False)}
    assert set(accumulators(stub, insured.retiree).values()) <= {0}


def confirmation(request: api.ApplySettlementRequest) -> api.ConfirmSettlementRequest:
    return api.ConfirmSettlementRequest(
        request_id=message_id(),
        route=route(),
        original_request_id=request.request_id,
        setl_id=request.setl_id,
    )


def test_a_batch_of_confirmations_answers_each_on_its_own_and_once(insured: Insured) -> None:
    stub = insured.stub
    first, second = apply_request(insured.retiree), apply_request(insured.employee)
    for request in (first, second):
        stub.ApplySettlement(request)
    applied = accumulators(stub, insured.employee)
    never_applied = api.ConfirmSettlementRequest(
        request_id=message_id(), route=route(), original_request_id=message_id(), setl_id="330402" + "1" * 24
    )
    wrong_settlement = confirmation(second)  # refused after it took the person's lock
    wrong_settlement.setl_id = "330402" + "2" * 24
    batch = api.ConfirmSettlementsRequest(
        request_id=message_id(),
        route=route(),
        confirmations=[confirmation(first), never_applied, wrong_settlement, confirmation(second)],
    )

    for _ in range(2):  # a batch sent again is answered the same, each confirmation once
        outcomes = stub.ConfirmSettlements(batch).outcomes
        assert [outcome.request_id for outcome in outcomes] == [c.request_id for c in batch.confirmations]
        assert [outcome.WhichOneof("outcome") for outcome in outcomes] == [
            "answer",
            "refusal",
            "refusal",
            "answer",
        ]
        assert {outcomes[0].answer.state, outcomes[3].answer.state} == {api.HOLD_STATE_CONFIRMED}
        assert outcomes[1].refusal.reason == "NOT_FOUND" and outcomes[1].refusal.message
        assert outcomes[2].refusal.reason == "INVALID_ARGUMENT"
    assert metric(insured, "yidi_settlement_holds_pending") in (None, 0.0)
    insured.clock.advance(10 * HOLD_S)
    expiry(insured).void_expired()  # nothing the batch confirmed may be voided
    assert accumulators(stub, insured.employee) == applied


def test_a_batch_repeating_an_id_answers_its_repeat_the_same_and_refuses_it_for_other_content(
    insured: Insured,
) -> None:
    """A confirmation recorded earlier in the same batch is replayed like one logged by an earlier call."""
    stub = insured.stub
    first, second = apply_request(insured.retiree), apply_request(insured.employee)
    for request in (first, second):
        stub.ApplySettlement(request)
    once = confirmation(first)
    reused = confirmation(second)
    reused.request_id = once.request_id  # the id again, for another hold
    batch = api.ConfirmSettlementsRequest(
        request_id=message_id(), route=route(), confirmations=[once, once, reused]
    )
    outcomes = stub.ConfirmSettlements(batch).outcomes
    assert outcomes[0].answer.state == api.HOLD_STATE_CONFIRMED
    assert outcomes[1].answer == outcomes[0].answer
    assert outcomes[2].refusal.reason == "DUPLICATE_REQUEST"
    insured.clock.advance(10 * HOLD_S)
    expiry(insured).void_expired()  # the refused confirmation left the second hold unconfirmed
    assert set(accumulators(stub, insured.employee).values()) == {0}
    assert set(accumulators(stub, insured.retiree).values()) != {0}


def test_a_batch_longer_than_one_transaction_confirms_every_item(insured: Insured) -> None:
    applied = apply_request(insured.employee)
    insured.stub.ApplySettlement(applied)
    repeats = [confirmation(applied) for _ in range(120)]  # several transactions' worth
    batch = api.ConfirmSettlementsRequest(request_id=message_id(), route=route(), confirmations=repeats)
    outcomes = insured.stub.ConfirmSettlements(batch).outcomes
    assert [outcome.request_id for outcome in outcomes] == [c.request_id for c in repeats]
    assert {outcome.answer.state for outcome in outcomes} == {api.HOLD_STATE_CONFIRMED}


@pytest.mark.parametrize(
    ("confirmations", "field"),
    [
        (0, "confirmations"),
        (501, "confirmations"),
        (-1, "confirmations[1].route.destination_admdvs"),
    ],
)
def test_a_malformed_batch_is_refused_whole_and_confirms_nothing(
    insured: Insured, confirmations: int, field: str
) -> None:
    stub = insured.stub
    applied = apply_request(insured.employee)
    stub.ApplySettlement(applied)
    items = [confirmation(applied) for _ in range(max(confirmations, 0))]
    if confirmations < 0:  # the second one is routed to another region
        items = [confirmation(applied), confirmation(applied)]
        items[1].route.destination_admdvs = "650000"
    batch = api.ConfirmSettlementsRequest(request_id=message_id(), route=route(), confirmations=items)
    assert refusal(lambda: stub.ConfirmSettlements(batch)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        [field],
    )
    insured.clock.advance(HOLD_S + 1)  # unconfirmed, the hold expires and is voided
    expiry(insured).void_expired()
    assert set(accumulators(stub, insured.employee).values()) == {0}
