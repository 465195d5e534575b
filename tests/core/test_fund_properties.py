"""Property tests of the further funds and 门诊共济 (settlement-rules.md, "Further funds after the
basic fund"), through the core's public API, on the strategies of ``test_properties``.

Every fund is non-negative; together they never pay more than the in-scope amount, nor the
further ones more than the basic fund left; the family account pays only from its balance
and what the patient still owes; each fund's annual cap holds whatever the order of visits
and reversals; settling then reversing restores every accumulator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from core.test_properties import (
    CAP_KEYS,
    Scenario,
    all_keys,
    cap_amounts,
    catalogues,
    fee_items,
    money,
    open_policies,
    persons,
    ratios,
    segments,
    shared_key_policies,
    visits,
)
from hypothesis import given, settings, stateful
from hypothesis import strategies as st

from yidi_core.accumulators import AccumulatorKind, Accumulators, reverse_changes
from yidi_core.funds import ASSISTANCE, SERIOUS_ILLNESS, SERIOUS_ILLNESS_PAID, SUPPLEMENTARY
from yidi_core.policy import Assistance, CivilServant, Funds, LowIncome, Policy, SeriousIllness, Supplementary
from yidi_core.settlement import Person, Settlement

ZERO = Decimal("0.00")
CATEGORIES = ("dibao", "tekun", "other")
FUND_SETTINGS = settings(max_examples=150, deadline=None)
FURTHER = ("hifob_pay", "hifmi_pay", "cvlserv_pay", "maf_pay")

optional_caps = st.none() | cap_amounts
low_incomes = st.none() | st.builds(
    LowIncome,
    threshold_factor=ratios,
    ratio_bonus=st.sampled_from([Decimal(v) for v in ("0", "0.05", "0.5", "1")]),
    cap=optional_caps,
)
funds = st.builds(
    Funds,
    supplementary=st.none() | st.builds(Supplementary, ratio=ratios, cap=optional_caps),
    serious_illness=st.none()
    | st.builds(
        SeriousIllness,
        threshold=money(0, 30_000),
        segments=segments,
        cap=optional_caps,
        low_income=low_incomes,
    ),
    civil_servant=st.none() | st.builds(CivilServant, deductible_ratio=ratios, selfpay_ratio=ratios),
    assistance=st.none()
    | st.builds(
        Assistance, ratio=ratios, cap=optional_caps, categories=st.sampled_from([("dibao",), CATEGORIES[:2]])
    ),
)
fund_tables = st.dictionaries(
    st.sampled_from((SUPPLEMENTARY, SERIOUS_ILLNESS, SERIOUS_ILLNESS_PAID, ASSISTANCE)), money(0, 400_000)
)


@st.composite
def fund_persons(draw: st.DrawFn) -> Person:
    return replace(
        draw(persons),
        low_income=draw(st.booleans()),
        civil_servant=draw(st.booleans()),
        assistance_category=draw(st.none() | st.sampled_from(CATEGORIES)),
        family_account_balance=draw(money(0, 5000)),
        use_family_account=draw(st.booleans()),
    )


def with_funds(policy: Policy, drawn: Funds, family_account: bool) -> Policy:
    return replace(policy, funds=drawn, family_account=family_account)


@st.composite
def fund_scenarios(draw: st.DrawFn) -> Scenario:
    items = draw(fee_items())
    return Scenario(
        visit=draw(visits),
        person=draw(fund_persons()),
        catalogue=draw(catalogues(items)),
        policy=with_funds(draw(open_policies), draw(funds), draw(st.booleans())),
        items=items,
        accumulators=Accumulators(fund=draw(fund_tables)),
    )


def further(s: Settlement) -> Decimal:
    return sum((getattr(s, name) for name in FURTHER), ZERO)


@FUND_SETTINGS
@given(fund_scenarios())
def test_funds_are_non_negative_and_never_pay_more_than_the_in_scope_amount(sc: Scenario) -> None:
    s = sc.settle()
    assert all(getattr(s, name) >= ZERO for name in (*FURTHER, "hifp_pay", "acct_mulaid_pay"))
    assert s.fund_pay_sumamt == s.hifp_pay + further(s)
    assert s.fund_pay_sumamt <= s.inscp_scp_amt
    assert further(s) <= s.inscp_scp_amt - s.hifp_pay
    assert s.medfee_sumamt == s.fund_pay_sumamt + s.psn_part_amt
    assert s.psn_part_amt == s.acct_pay + s.acct_mulaid_pay + s.psn_cash_pay
    assert s.psn_cash_pay >= ZERO


@FUND_SETTINGS
@given(fund_scenarios())
def test_a_fund_pays_only_when_named_and_the_person_is_eligible(sc: Scenario) -> None:
    s, named, person = sc.settle(), sc.policy.funds, sc.person
    if named.supplementary is None:
        assert s.hifob_pay == ZERO
    if named.serious_illness is None:
        assert s.hifmi_pay == ZERO
    if named.civil_servant is None or not person.civil_servant:
        assert s.cvlserv_pay == ZERO
    if named.assistance is None or person.assistance_category not in named.assistance.categories:
        assert s.maf_pay == ZERO
    if sc.policy.family_account and person.use_family_account:
        owed = s.psn_part_amt - s.acct_pay
        assert s.acct_mulaid_pay == min(person.family_account_balance, owed)
    else:
        assert s.acct_mulaid_pay == ZERO


@FUND_SETTINGS
@given(fund_scenarios())
def test_each_fund_stays_within_its_annual_room(sc: Scenario) -> None:
    s, named, used = sc.settle(), sc.policy.funds, sc.accumulators.value
    room_of = {
        "hifob_pay": (named.supplementary, SUPPLEMENTARY),
        "maf_pay": (named.assistance, ASSISTANCE),
    }
    for name, (fund, key) in room_of.items():
        if fund is not None and fund.cap is not None:
            assert getattr(s, name) <= max(ZERO, fund.cap - used(AccumulatorKind.FUND, key))
    illness = named.serious_illness
    if illness is not None:
        cap = illness.low_income.cap if sc.person.low_income and illness.low_income else illness.cap
        if cap is not None:
            assert s.hifmi_pay <= max(ZERO, cap - used(AccumulatorKind.FUND, SERIOUS_ILLNESS_PAID))


@FUND_SETTINGS
@given(fund_scenarios())
def test_settling_then_reversing_restores_every_fund_accumulator(sc: Scenario) -> None:
    s = sc.settle()
    after = sc.accumulators.applied(s.changes)
    restored = after.applied(reverse_changes(s.changes))
    for kind, key in all_keys(sc.accumulators, after, restored):
        assert restored.value(kind, key) == sc.accumulators.value(kind, key), (kind, key)
    assert after.value(AccumulatorKind.FUND, SUPPLEMENTARY) - sc.accumulators.value(
        AccumulatorKind.FUND, SUPPLEMENTARY
    ) == (s.hifob_pay if sc.policy.funds.supplementary else ZERO)


@FUND_SETTINGS
@given(fund_scenarios())
def test_a_policy_without_funds_keeps_no_fund_figures(sc: Scenario) -> None:
    """The funds' absence is no fund at all: the basic fund is the whole fund payment, no fund accumulator."""
    s = replace(sc, policy=replace(sc.policy, funds=Funds(), family_account=False)).settle()
    assert further(s) == ZERO and s.acct_mulaid_pay == ZERO
    assert s.fund_pay_sumamt == s.hifp_pay
    assert not any(change.kind is AccumulatorKind.FUND for change in s.changes)
    assert not s.funds_named


@dataclass
class Visited:
    scenario: Scenario
    settlement: Settlement


class FundCapsInAnyOrder(stateful.RuleBasedStateMachine):
    """Settle bills of one person in any order under one policy with funds, reverse some: every
    fund's cap holds and each fund accumulator is the sum of the live settlements' payments."""

    def __init__(self) -> None:
        super().__init__()
        self.policy: Policy | None = None
        self.person: Person | None = None
        self.accumulators = Accumulators()
        self.active: list[Visited] = []

    @stateful.initialize(policy=shared_key_policies(), drawn=funds, person=fund_persons())
    def start_the_year(self, policy: Policy, drawn: Funds, person: Person) -> None:
        self.policy, self.person = with_funds(policy, drawn, True), person

    @stateful.rule(data=st.data())
    def settle_a_bill(self, data: st.DataObject) -> None:
        assert self.policy is not None and self.person is not None
        items = data.draw(fee_items())
        sc = Scenario(
            data.draw(visits),
            self.person,
            data.draw(catalogues(items)),
            self.policy,
            items,
            self.accumulators,
        )
        s = sc.settle()
        self.accumulators = self.accumulators.applied(s.changes)
        self.active.append(Visited(sc, s))

    @stateful.precondition(lambda self: bool(self.active))
    @stateful.rule(data=st.data())
    def reverse_an_earlier_settlement(self, data: st.DataObject) -> None:
        gone = self.active.pop(data.draw(st.integers(0, len(self.active) - 1)))
        self.accumulators = self.accumulators.applied(reverse_changes(gone.settlement.changes))

    def _paid(self, name: str) -> Decimal:
        return sum((getattr(v.settlement, name) for v in self.active), ZERO)

    @stateful.invariant()
    def every_fund_cap_holds(self) -> None:
        if self.policy is None or self.person is None:
            return
        named, value = self.policy.funds, self.accumulators.value
        if named.supplementary and named.supplementary.cap is not None:
            assert value(AccumulatorKind.FUND, SUPPLEMENTARY) <= named.supplementary.cap
        if named.assistance and named.assistance.cap is not None:
            assert value(AccumulatorKind.FUND, ASSISTANCE) <= named.assistance.cap
        illness = named.serious_illness
        if illness is not None:
            low = illness.low_income if self.person.low_income else None
            cap = illness.cap if low is None else low.cap
            if cap is not None:
                assert value(AccumulatorKind.FUND, SERIOUS_ILLNESS_PAID) <= cap

    @stateful.invariant()
    def fund_accumulators_are_the_live_payments(self) -> None:
        value = self.accumulators.value
        assert value(AccumulatorKind.FUND, SUPPLEMENTARY) == self._paid("hifob_pay")
        assert value(AccumulatorKind.FUND, SERIOUS_ILLNESS_PAID) == self._paid("hifmi_pay")
        assert value(AccumulatorKind.FUND, ASSISTANCE) == self._paid("maf_pay")
        for key in CAP_KEYS:
            assert value(AccumulatorKind.CAP, key) >= ZERO


TestFundCapsInAnyOrder = FundCapsInAnyOrder.TestCase
TestFundCapsInAnyOrder.settings = settings(max_examples=60, stateful_step_count=10, deadline=None)
