"""Any sequence of settle / reverse / clear / claw back / top up / confirm keeps the money right.

A settlement may be reversed after part of it was clawed back: its reversal refunds all of
it, and the run that clears the reversal returns the clawbacks, so the settlement is undone
exactly once (a clawback returned appears in the model as a negative clawback).

A hypothesis state machine drives a national node through the stub, month after month,
with a model of what each journal entry's clearing period must be. After every step: the
ledger sums to zero, every period's statements net to zero, each statement's payable and
receivable are what the model cleared into it, every entry is cleared exactly once (in
the first run at or after its month, never moved afterwards), and advance usage is the
uncleared fund payments of the province's insured.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path

from clearing_support import Clock, National, beijing, national_node, next_id, reversal_of, settlement
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import journal_pb2, statement_pb2
from yidi_services.clearing.periods import Period

REGIONS = ("630100", "330400", "110105", "131000")
YEAR = 2026
ADVANCE_FEN = 300_000


@dataclass
class Modelled:
    """What the model knows of one journal entry."""

    entry: journal_pb2.JournalEntry
    period: Period
    cleared: str = ""

    @property
    def insured(self) -> str:
        return self.entry.insuplc_admdvs[:2] + "0000"

    @property
    def treatment(self) -> str:
        return self.entry.mdtrtarea_admvs[:2] + "0000"


@dataclass
class ModelledClawback:
    """A clawback the model expects in the first run at or after its adjustment period."""

    insured: str
    treatment: str
    amount_fen: int
    adjustment: str
    cleared: str = ""


class ClearingMachine(RuleBasedStateMachine):
    """One national node, January 2026 onwards; ``month`` is the month "now" is in."""

    def __init__(self, open_node: Callable[[Clock], National], stack: ExitStack) -> None:
        super().__init__()
        self.month = Period(YEAR, 1)
        self.clock = Clock(beijing(YEAR, 1, 15))
        self.national = stack.enter_context(open_node(self.clock))  # type: ignore[arg-type]
        self.entries: dict[str, Modelled] = {}
        self.reversed: set[str] = set()
        self.clawed: defaultdict[str, int] = defaultdict(int)
        self.clawbacks: list[ModelledClawback] = []
        self.cleared_periods: list[str] = []
        for region in REGIONS:
            self.national.stub.SetAdvance(
                api.SetAdvanceRequest(
                    request_id=next_id("A"), admdvs=region[:2] + "0000", year=YEAR, amount_fen=ADVANCE_FEN
                ),
                timeout=30,
            )

    def _deliver(self, entry: journal_pb2.JournalEntry, period: Period) -> None:
        assert self.national.deliver(entry).appended_count == 1
        self.entries[entry.msgid] = Modelled(entry, period)

    @rule(
        pair=st.permutations(REGIONS).map(lambda regions: regions[:2]),
        fund=st.integers(0, 120_000),
        day=st.integers(1, 28),
        late=st.booleans(),
    )
    def settle(self, pair: list[str], fund: int, day: int, late: bool) -> None:
        """A settlement made this month, or (late) last month and delivered only now."""
        period = self.month.previous() if late else self.month
        self._deliver(settlement(pair[0], pair[1], fund, beijing(period.year, period.month, day)), period)

    def _reversible(self) -> list[str]:
        return sorted(
            msgid
            for msgid, known in self.entries.items()
            if known.entry.kind == journal_pb2.JOURNAL_ENTRY_KIND_SETTLEMENT and msgid not in self.reversed
        )

    @precondition(lambda self: self._reversible())
    @rule(data=st.data(), day=st.integers(1, 28))
    def reverse(self, data: st.DataObject, day: int) -> None:
        """A refund made this month of any settlement (cleared or not)."""
        msgid = data.draw(st.sampled_from(self._reversible()))
        self.reversed.add(msgid)
        original = self.entries[msgid]
        made = original.entry.setl_time.ToDatetime(tzinfo=UTC) + timedelta(minutes=1)
        moment = max(beijing(self.month.year, self.month.month, day), made)
        self._deliver(reversal_of(original.entry, moment), Period.of(moment))

    def _clawable(self) -> list[str]:
        return sorted(
            msgid
            for msgid in self._reversible() + sorted(self.clawed)
            if msgid not in self.reversed
            and self.entries[msgid].entry.fund_pay_sumamt_fen > self.clawed[msgid]
        )

    @precondition(lambda self: self._clawable())
    @rule(data=st.data())
    def claw_back(self, data: st.DataObject) -> None:
        """Supervision claws back part of a settlement's fund payment."""
        msgid = data.draw(st.sampled_from(self._clawable()))
        known = self.entries[msgid]
        amount = data.draw(st.integers(1, known.entry.fund_pay_sumamt_fen - self.clawed[msgid]))
        answer = self.national.stub.RecordClawback(
            api.RecordClawbackRequest(
                request_id=next_id("CB"),
                msgid=msgid,
                fixmedins_code=known.entry.fixmedins_code,
                amount_fen=amount,
                reason="追回",
            ),
            timeout=30,
        )
        last = Period.parse(self.cleared_periods[-1]) if self.cleared_periods else None
        expected = known.period if last is None or last < known.period else last.next()
        assert answer.adjustment_period == str(expected)
        self.clawed[msgid] += amount
        self.clawbacks.append(ModelledClawback(known.insured, known.treatment, amount, str(expected)))

    @rule()
    def clear(self) -> None:
        """The month ends; the national node clears it."""
        period = self.month
        self.clock.now = beijing(period.next().year, period.next().month, 2)
        run = self.national.clear(str(period))
        assert run.state == statement_pb2.JOB_STATE_SUCCEEDED, run.failure_reason
        counted = 0
        for known in self.entries.values():
            if not known.cleared and known.period <= period:
                known.cleared = str(period)
                counted += 1
        for clawback in self.clawbacks:
            if not clawback.cleared and clawback.adjustment <= str(period):
                clawback.cleared = str(period)
        for known in self.entries.values():  # a reversal cleared now returns its settlement's clawbacks
            target = known.entry.reverses_msgid
            if known.cleared == str(period) and target and self.clawed[target]:
                self.clawbacks.append(
                    ModelledClawback(
                        known.insured, known.treatment, -self.clawed[target], str(period), str(period)
                    )
                )
        assert run.entries_counted == counted
        self.cleared_periods.append(str(period))
        self.month = period.next()
        self.clock.now = beijing(self.month.year, self.month.month, 15)

    @rule(region=st.sampled_from(REGIONS), fen=st.integers(1, 100_000))
    def top_up(self, region: str, fen: int) -> None:
        """An emergency top-up of a province's advance."""
        request = api.TopUpAdvanceRequest(
            request_id=next_id("T"), admdvs=region[:2] + "0000", year=YEAR, amount_fen=fen, reason="紧急调增"
        )
        self.national.stub.TopUpAdvance(request, timeout=30)

    @precondition(lambda self: self.cleared_periods)
    @rule(data=st.data())
    def confirm_and_pay(self, data: st.DataObject) -> None:
        """A province confirms its oldest issued statement and the net moves."""
        issued = self.national.statements(state=statement_pb2.STATEMENT_STATE_ISSUED)
        if not issued:
            return
        statement = data.draw(st.sampled_from(issued))
        self.national.stub.ConfirmStatement(
            api.ConfirmStatementRequest(request_id=next_id("CF"), statement_id=statement.statement_id),
            timeout=30,
        )
        if statement.net_fen:
            self.national.stub.RecordTransfer(
                api.RecordTransferRequest(
                    request_id=next_id("TR"),
                    statement_id=statement.statement_id,
                    transfer=statement_pb2.Transfer(amount_fen=abs(statement.net_fen), bank_reference="BANK"),
                ),
                timeout=30,
            )

    @invariant()
    def the_ledger_sums_to_zero(self) -> None:
        self.national.balances()

    @invariant()
    def every_entry_is_cleared_exactly_once_where_the_model_says(self) -> None:
        listed = {entry.msgid: entry.cleared_period for entry in self.national.journal()}
        assert listed == {msgid: known.cleared for msgid, known in self.entries.items()}

    @invariant()
    def statements_net_to_zero_and_carry_what_was_cleared(self) -> None:
        payable: defaultdict[tuple[str, str], int] = defaultdict(int)
        receivable: defaultdict[tuple[str, str], int] = defaultdict(int)
        for known in self.entries.values():
            if known.cleared:
                payable[known.cleared, known.insured] += known.entry.fund_pay_sumamt_fen
                receivable[known.cleared, known.treatment] += known.entry.fund_pay_sumamt_fen
        for clawback in self.clawbacks:
            if clawback.cleared:
                payable[clawback.cleared, clawback.insured] -= clawback.amount_fen
                receivable[clawback.cleared, clawback.treatment] -= clawback.amount_fen
        nets: defaultdict[str, int] = defaultdict(int)
        for statement in self.national.statements():
            key = (statement.period, statement.admdvs)
            assert (statement.payable_fen, statement.receivable_fen) == (payable[key], receivable[key])
            assert statement.net_fen == statement.receivable_fen - statement.payable_fen
            nets[statement.period] += statement.net_fen
        assert set(nets.values()) <= {0}

    @invariant()
    def advance_usage_is_the_uncleared_fund_payments(self) -> None:
        used: defaultdict[str, int] = defaultdict(int)
        for known in self.entries.values():
            if not known.cleared and known.period.year == YEAR:
                used[known.insured] += known.entry.fund_pay_sumamt_fen
        for region in REGIONS[:2]:
            province = region[:2] + "0000"
            status = self.national.stub.GetAdvanceStatus(
                api.GetAdvanceStatusRequest(admdvs=province, year=YEAR), timeout=30
            ).status
            assert status.used_fen == used[province]


def test_any_sequence_of_clearing_operations_keeps_the_money_right(
    tmp_path: Path, database_factory: Callable[[], str | None]
) -> None:
    examples = iter(range(10_000))

    def open_node(clock: Clock) -> object:
        return national_node(tmp_path / f"example-{next(examples)}", database_factory(), clock)

    def machine() -> ClearingMachine:
        stack = ExitStack()
        built = ClearingMachine(open_node, stack)  # type: ignore[arg-type]
        built.teardown = stack.close  # type: ignore[method-assign]
        return built

    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=8,
            stateful_step_count=22,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )
