"""Holds in any order: apply / confirm / time out (resolve) / revert / credit never break a cap, a balance or the record.

A hypothesis state machine drives an insured node through its stub, the node also being the
treatment node of what it applies (the route's origin is its own region), whose treatment
side never recorded these settlements: so a hold that is resolved — as its timeout would —
is answered NOT_RECORDED there, fenced, and voided. After every step, for each person: the
accumulators and account are the starting values plus exactly the changes of the
applications still in force, the outpatient cap is never passed, the account never goes
below zero, and the insured side's records show each application in the state the model
says. A confirmation after a void or a revert never applies anything again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from insured_builders import Insured, Line, accumulators, apply_request, insured_node, message_id, route

from yidi.settlement.v1 import insured_settlement_service_pb2 as api
from yidi.settlement.v1 import settlement_pb2
from yidi.type.v1 import settlement_result_pb2
from yidi_runtime.wire import timestamp_message

OUTPATIENT_CAP_FEN = 100_000
"""The test policy's annual outpatient cap (tests/settlement/insured_builders.sample_policy)."""
LIVE = (api.HOLD_STATE_HELD, api.HOLD_STATE_CONFIRMED)


@dataclass
class Hold:
    """An application as the model knows it: whose, its changes (``kind:key`` → fen), its state."""

    request: api.ApplySettlementRequest
    psn_no: str
    changes: dict[str, int]
    state: int = api.HOLD_STATE_HELD


@dataclass
class Model:
    """Per person, the values before the machine started and what was credited since; the holds."""

    baseline: dict[str, dict[str, int]]
    credited: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    holds: list[Hold] = field(default_factory=list)

    def expected(self, psn_no: str) -> dict[str, int]:
        values = defaultdict(int, self.baseline[psn_no])
        values["account"] += self.credited[psn_no]
        for hold in self.holds:
            if hold.psn_no == psn_no and hold.state in LIVE:
                for name, fen in hold.changes.items():
                    values[name] += fen
        return {name: fen for name, fen in values.items() if fen}


def change_name(change: settlement_result_pb2.AccumulatorChange) -> str:
    kind = settlement_result_pb2.AccumulatorKind.Name(change.kind).removeprefix("ACCUMULATOR_KIND_").lower()
    return "account" if kind == "account" else f"{kind}:{change.key}"


class HoldMachine(RuleBasedStateMachine):
    """One insured node; its retiree and employee."""

    insured: Insured

    def __init__(self) -> None:
        super().__init__()
        self.stub = self.insured.stub
        self.people = (self.insured.retiree, self.insured.employee)
        self.model = Model({psn_no: self._present(psn_no) for psn_no in self.people})

    def _present(self, psn_no: str) -> dict[str, int]:
        return {name: fen for name, fen in accumulators(self.stub, psn_no).items() if fen}

    @rule(
        person=st.integers(0, 1),
        fen=st.integers(1, 60_000),
        use_account=st.booleans(),
        self_pay=st.booleans(),
    )
    def apply(self, person: int, fen: int, use_account: bool, self_pay: bool) -> None:
        psn_no = self.people[person]
        lines = (Line("1", fen), Line("2", 1_000, in_scope=False)) if self_pay else (Line("1", fen),)
        request = apply_request(psn_no, lines, use_account=use_account)
        answer = self.stub.ApplySettlement(request, timeout=30)
        changes: dict[str, int] = defaultdict(int)
        for change in answer.result.accumulator_changes:
            changes[change_name(change)] += change.delta_fen
        self.model.holds.append(Hold(request, psn_no, dict(changes)))

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        hold = data.draw(st.sampled_from(self.model.holds))
        answer = self.stub.ConfirmSettlement(
            api.ConfirmSettlementRequest(
                request_id=message_id(),
                route=route(),
                original_request_id=hold.request.request_id,
                setl_id=hold.request.setl_id,
            ),
            timeout=30,
        )
        if hold.state == api.HOLD_STATE_HELD:
            hold.state = api.HOLD_STATE_CONFIRMED
        assert answer.state == hold.state and not answer.reapplied

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data())
    def time_out(self, data: st.DataObject) -> None:
        """The hold's timeout, now: its treatment node (this one) never recorded it, so a held one is voided."""
        hold = data.draw(st.sampled_from(self.model.holds))
        answer = self.stub.ResolveHold(
            api.ResolveHoldRequest(
                request_id=message_id(), route=route(), application_request_id=hold.request.request_id
            ),
            timeout=30,
        )
        if hold.state == api.HOLD_STATE_HELD:
            hold.state = api.HOLD_STATE_VOIDED
        assert answer.state == hold.state

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data())
    def revert(self, data: st.DataObject) -> None:
        hold = data.draw(st.sampled_from(self.model.holds))
        answer = self.stub.RevertSettlement(
            api.RevertSettlementRequest(
                request_id=message_id(), route=route(), original_request_id=hold.request.request_id
            ),
            timeout=30,
        )
        assert answer.reverted  # an application that exists is undone (or was already)
        if hold.state in LIVE:
            undone = {change_name(change): change.delta_fen for change in answer.accumulator_changes}
            assert {name: -fen for name, fen in undone.items() if fen} == {
                name: fen for name, fen in hold.changes.items() if fen
            }
        hold.state = api.HOLD_STATE_VOIDED

    @rule(person=st.integers(0, 1), fen=st.integers(1, 50_000))
    def credit(self, person: int, fen: int) -> None:
        psn_no = self.people[person]
        self.stub.CreditAccount(
            api.CreditAccountRequest(
                request_id=message_id(), insuplc_admdvs="630000", psn_no=psn_no, amount_fen=fen
            ),
            timeout=30,
        )
        self.model.credited[psn_no] += fen

    @invariant()
    def values_are_the_start_plus_exactly_the_applications_in_force(self) -> None:
        for psn_no in self.people:
            assert self._present(psn_no) == self.model.expected(psn_no)

    @invariant()
    def no_cap_is_passed_and_no_account_is_overdrawn(self) -> None:
        for psn_no in self.people:
            values = accumulators(self.stub, psn_no)
            assert values.get("cap:outpatient", 0) <= OUTPATIENT_CAP_FEN
            assert values["account"] >= 0

    @invariant()
    def the_insured_record_shows_each_application_as_the_model_does(self) -> None:
        if not self.model.holds:
            return
        now = self.insured.clock()
        listed = self.stub.ListSettlementRecords(
            api.ListSettlementRecordsRequest(
                route=settlement_pb2.Route(origin_admdvs="630000", destination_admdvs="630000"),
                side=api.RECORD_SIDE_INSURED,
                start_time=timestamp_message(now - timedelta(days=1)),
                end_time=timestamp_message(now + timedelta(days=1)),
                page_size=10_000,
            ),
            timeout=30,
        ).records
        states = {(record.fixmedins_code, record.msgid): record.hold_state for record in listed}
        for hold in self.model.holds:
            code, _, rest = hold.request.request_id.partition("/")
            assert states[code, rest.removesuffix(":apply")] == hold.state


@pytest.fixture
def insured(tmp_path: Path, database_url: str | None) -> Iterator[Insured]:
    with insured_node(tmp_path, database_url, settlement_hold_timeout_s=3600) as running:
        yield running


def test_holds_in_any_order_keep_caps_balances_and_records_right(insured: Insured) -> None:
    HoldMachine.insured = insured
    run_state_machine_as_test(
        HoldMachine,
        settings=settings(
            max_examples=15,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
