"""Property tests of every invariant of settlement-rules.md, through the core's public API.

Strategies build valid core inputs directly as dataclasses (visit, person, catalogue with
restrictions and price ceilings, policy with plain ratios or 1–4 segments, caps, ratio
adjustments, accumulators, fee items). Each test checks one rule and recomputes the expected
value from the inputs and the rules' wording (``expected_*`` helpers below), never from the
core's own intermediate values, so every test can fail. A stateful machine settles and
reverses bills in sequence to check caps and accumulator additivity; a mutation fuzzer feeds
damaged golden cases to ``parse_case`` to check that bad input only ever yields a stable reason.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings, stateful
from hypothesis import strategies as st

from yidi_core.accumulators import AccumulatorKind, Accumulators, reverse_changes
from yidi_core.case_format import parse_case, result_document
from yidi_core.catalogue import CatalogueEntry, FeeItem, ItemClass, Restriction
from yidi_core.errors import REASONS, DomainError
from yidi_core.money import from_fen, to_fen
from yidi_core.national_limits import MAX_REDUCTION
from yidi_core.policy import DeductibleScope, Policy, Rule, Segment
from yidi_core.settlement import Person, Settlement, Visit, settle

CASES_DIR = Path(__file__).resolve().parents[2] / "examples" / "cases" / "golden"

ZERO = Decimal("0.00")
ONE = Decimal(1)
CENT = Decimal("0.01")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

SERVICE_DATE = date(2025, 3, 18)
MED_TYPES = ("11", "14", "21", "22", "41")
LEVELS = ("1", "2", "3")
# The test's own table of groups, so rule matching is recomputed independently of the core.
PSN_GROUPS = {
    "employed": "employed",
    "retired": "retired",
    "resident": "resident",
    "1101": "employed",
    "1201": "retired",
    "1501": "resident",
}
FILING_CATEGORIES = ("retiree_resettled", "referral", "emergency", "temporary_other")
DIAGNOSES = ("E11.900", "I21.000", "J18.900", "K35.800")
PREFIXES = ("E11", "E1", "I21", "J", "K35.8", "Z99")
CODES = tuple(f"0011020000{index:05d}" for index in range(6))
DEDUCTIBLE_KEYS = ("inpatient", "chronic")
SEGMENT_KEYS = ("scale", *DEDUCTIBLE_KEYS)
CAP_KEYS = ("pool", "chronic:M01600")
PER_SETTLEMENT = settings(max_examples=200, deadline=None)


# -- independent arithmetic of the rules ----------------------------------------------------------


def half_up(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def is_whole_fen(value: Decimal) -> bool:
    return (value * 100) % 1 == 0


def fen(count: int) -> Decimal:
    """``count`` fen as yuan with exactly two places."""
    return Decimal(count).scaleb(-2)


def expected_amount(item: FeeItem) -> Decimal:
    return half_up(item.qty * item.price) if item.amount is None else item.amount


def restriction_holds(restriction: Restriction | None, visit: Visit) -> bool:
    if restriction is None:
        return True
    med_ok = not restriction.med_types or visit.med_type in restriction.med_types
    diagnosis_ok = not restriction.diagnosis_prefixes or any(
        code.startswith(prefix) for code in visit.diagnoses for prefix in restriction.diagnosis_prefixes
    )
    return med_ok and diagnosis_ok


def expected_split(
    item: FeeItem, entry: CatalogueEntry | None, visit: Visit
) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """(fulamt_ownpay, overlmt_selfpay, preselfpay, inscp) by "Per item" steps 1–5."""
    amount = expected_amount(item)
    if entry is None or entry.item_class is ItemClass.C or not restriction_holds(entry.restriction, visit):
        return amount, ZERO, ZERO, ZERO
    over = ZERO
    if entry.price_ceiling is not None and item.price > entry.price_ceiling:
        over = min(half_up((item.price - entry.price_ceiling) * item.qty), amount)
    capped = amount - over
    first = half_up(capped * entry.selfpay_ratio) if entry.item_class is ItemClass.B else ZERO
    return ZERO, over, first, capped - first


def first_match(policy: Policy, visit: Visit, person: Person) -> int | None:
    def listed(allowed: tuple[str, ...], values: set[str]) -> bool:
        return "*" in allowed or bool(values & set(allowed))

    psn_types = {person.psn_type, PSN_GROUPS[person.psn_type]}
    for index, rule in enumerate(policy.rules):
        if (
            listed(rule.med_types, {visit.med_type})
            and listed(rule.psn_types, psn_types)
            and listed(rule.institution_levels, {visit.institution_level})
        ):
            return index
    return None


def annual_key(rule: Rule) -> str | None:
    return rule.deductible_key if rule.deductible_scope is DeductibleScope.ANNUAL else None


def scale_key(rule: Rule) -> str | None:
    return rule.segment_key or annual_key(rule)


def counted(accumulators: Accumulators, kind: AccumulatorKind, key: str | None) -> Decimal:
    return getattr(accumulators, kind.value).get(key, ZERO) if key else ZERO


def adjustment(policy: Policy, person: Person) -> Decimal:
    if person.filing_category is None:
        return ZERO
    return policy.ratio_adjustments.get(person.filing_category, ZERO)


def expected_deductible(rule: Rule, inscp: Decimal, accumulators: Accumulators) -> Decimal:
    before = counted(accumulators, AccumulatorKind.DEDUCTIBLE, annual_key(rule))
    return max(ZERO, min(inscp, rule.deductible - before))


def expected_segments(
    rule: Rule, before: Decimal, eligible: Decimal, adjust: Decimal
) -> list[tuple[Decimal, Decimal]]:
    """(part of ``eligible`` in the segment, adjusted ratio) for each segment, by overlap of ranges."""
    top = before + eligible
    result = []
    for position, segment in enumerate(rule.segments):
        following = rule.segments[position + 1 :]
        end = following[0].start if following else None
        low = max(segment.start, before)
        high = top if end is None else min(end, top)
        result.append((max(ZERO, high - low), min(ONE, max(ZERO, segment.ratio + adjust))))
    return result


def all_keys(*states: Accumulators) -> set[tuple[AccumulatorKind, str]]:
    return {(kind, key) for state in states for kind in AccumulatorKind for key in getattr(state, kind.value)}


# -- strategies -----------------------------------------------------------------------------------


def money(low: int, high: int) -> st.SearchStrategy[Decimal]:
    """Yuan with exactly two places, between ``low`` and ``high`` yuan."""
    return st.integers(low * 100, high * 100).map(fen)


def positive_decimals(high: int, max_places: int) -> st.SearchStrategy[Decimal]:
    """A positive decimal up to ``high`` with 0 to ``max_places`` places (quantities, prices)."""
    return st.one_of(
        [
            st.integers(1, high * 10**places).map(lambda n, p=places: Decimal(n).scaleb(-p))
            for places in range(max_places + 1)
        ]
    )


# Strategies are built once here: building them inside composites costs more than drawing.
quantities = positive_decimals(1000, 3) | st.sampled_from([Decimal(v) for v in ("1", "0.5", "3", "0.25")])
# Prices ending in half a fen make rounding ties (half up and half even then differ).
prices = positive_decimals(100_000, 4) | st.integers(0, 10**7).map(lambda n: Decimal(10 * n + 5).scaleb(-3))
ratios = st.one_of(
    st.sampled_from([Decimal(v) for v in ("0.5", "0.05", "0.15", "0.25", "0.10")]),
    st.integers(0, 100).map(lambda n: Decimal(n).scaleb(-2)),
    st.integers(0, 10**6).map(lambda n: Decimal(n).scaleb(-6)),
)
a_or_c_ratios = st.just(ZERO) | ratios
adjustments = st.one_of(
    st.sampled_from([Decimal(v) for v in ("-0.10", "0.15", "-1", "1", "-0.50", "0.05")]),
    st.integers(-100, 100).map(lambda n: Decimal(n).scaleb(-2)),
)
deductible_amounts = money(0, 3000)
cap_amounts = st.one_of(money(0, 2000), money(0, 400_000))
segment_widths = money(0, 50_000).filter(lambda d: d > 0)
ceiling_factors = st.sampled_from([Decimal(f) for f in ("0", "0.5", "0.9", "0.999", "1", "1.1")])
optional_deductible_keys = st.none() | st.sampled_from(DEDUCTIBLE_KEYS)
optional_segment_keys = st.none() | st.sampled_from(SEGMENT_KEYS)
# Within the national limits (a policy beyond them is refused before it settles anything); a
# reduction still clamps a ratio below it to 0, an increase one near 1 to 1.
adjustment_tables = st.dictionaries(st.sampled_from(FILING_CATEGORIES), adjustments, max_size=3).map(
    lambda table: {category: max(value, -MAX_REDUCTION[category]) for category, value in table.items()}
)


def subsets(values: Sequence[str], min_size: int = 0) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(values), min_size=min_size, max_size=3, unique=True).map(tuple)


def matching(values: Sequence[str]) -> st.SearchStrategy[tuple[str, ...]]:
    return st.one_of(st.just(("*",)), subsets(values, min_size=1))


med_type_lists, psn_type_lists, level_lists = (matching(v) for v in (MED_TYPES, tuple(PSN_GROUPS), LEVELS))
restrictions = (
    st.none()
    | st.none()
    | st.builds(Restriction, med_types=subsets(MED_TYPES), diagnosis_prefixes=subsets(PREFIXES))
)
visits = st.builds(
    Visit,
    med_type=st.sampled_from(MED_TYPES),
    service_date=st.just(SERVICE_DATE),
    institution_level=st.sampled_from(LEVELS),
    diagnoses=subsets(DIAGNOSES),
    emergency=st.booleans(),
)
persons = st.builds(
    Person,
    insutype=st.sampled_from(("310", "390")),
    psn_type=st.sampled_from(tuple(PSN_GROUPS)),
    filing_category=st.none() | st.sampled_from(FILING_CATEGORIES),
    account_balance=money(0, 5000),
    use_account=st.booleans(),
)
accumulator_states = st.builds(
    Accumulators,
    deductible=st.dictionaries(st.sampled_from(DEDUCTIBLE_KEYS), money(0, 3000)),
    segment=st.dictionaries(st.sampled_from(SEGMENT_KEYS), money(0, 100_000)),
    cap=st.dictionaries(st.sampled_from(CAP_KEYS), money(0, 400_000)),
)


@st.composite
def fee_items(draw: st.DrawFn) -> tuple[FeeItem, ...]:
    """1–5 lines; the line amount is absent or given within one fen of *round*(qty × price)."""
    items = []
    for index in range(draw(st.integers(1, 5))):
        qty, price = draw(quantities), draw(prices)
        amount = None
        if draw(st.booleans()):
            given = half_up(qty * price) + draw(st.integers(-1, 1)) * CENT
            amount = max(ZERO, given)
        items.append(FeeItem(str(index + 1), draw(st.sampled_from(CODES)), qty, price, amount))
    return tuple(items)


def draw_ceiling(draw: st.DrawFn, billed: Sequence[Decimal]) -> Decimal | None:
    """None, any ceiling, or one below, at or above a price billed under the code."""
    choice = draw(st.integers(0, 2 if billed else 1))
    if choice == 0:
        return None
    if choice == 1:
        return draw(prices)
    price = billed[draw(st.integers(0, len(billed) - 1))]
    return (price * draw(ceiling_factors)).quantize(Decimal("0.0001"))


@st.composite
def catalogues(draw: st.DrawFn, items: Sequence[FeeItem]) -> dict[str, CatalogueEntry]:
    """Entries for most codes (some billed codes are left out of the catalogue)."""
    catalogue = {}
    for code in CODES:
        if not draw(st.integers(0, 5)):  # about one code in six is not in the catalogue
            continue
        item_class = draw(st.sampled_from(ItemClass))
        ratio = draw(ratios if item_class is ItemClass.B else a_or_c_ratios)
        restriction = draw(restrictions)
        billed = sorted({item.price for item in items if item.code == code})
        catalogue[code] = CatalogueEntry(
            code, f"item {code[-2:]}", item_class, ratio, draw_ceiling(draw, billed), restriction
        )
    return catalogue


@st.composite
def segment_lists(draw: st.DrawFn) -> tuple[Segment, ...]:
    """A plain ratio (one segment from 0.00) or up to four segments with strictly rising starts."""
    starts = [ZERO]
    for _ in range(draw(st.integers(0, 3))):
        starts.append(starts[-1] + draw(segment_widths))
    return tuple(Segment(start, draw(ratios)) for start in starts)


segments = segment_lists()


@st.composite
def rules(
    draw: st.DrawFn,
    catch_all: bool = False,
    caps: Mapping[str, Decimal] | None = None,
    deductibles: Mapping[str, Decimal] | None = None,
) -> Rule:
    """One rule; with ``caps``/``deductibles`` given, every rule sharing a key uses that key's amount."""
    scope = draw(st.sampled_from(DeductibleScope))
    if scope is DeductibleScope.ANNUAL:
        deductible_key: str | None = draw(st.sampled_from(DEDUCTIBLE_KEYS))
    else:
        deductible_key = draw(optional_deductible_keys)
    if deductibles is not None and deductible_key is not None and scope is DeductibleScope.ANNUAL:
        deductible = deductibles[deductible_key]
    else:
        deductible = draw(deductible_amounts)
    cap_kind = draw(st.integers(0, 2))
    cap, cap_key = None, None
    if cap_kind == 1:  # limits this visit alone
        cap = draw(cap_amounts)
    elif cap_kind == 2:  # shared by every visit under the key
        cap_key = draw(st.sampled_from(CAP_KEYS))
        cap = caps[cap_key] if caps is not None else draw(cap_amounts)
    return Rule(
        med_types=("*",) if catch_all else draw(med_type_lists),
        psn_types=("*",) if catch_all else draw(psn_type_lists),
        institution_levels=("*",) if catch_all else draw(level_lists),
        deductible=deductible,
        deductible_scope=scope,
        segments=draw(segments),
        deductible_key=deductible_key,
        segment_key=draw(optional_segment_keys),
        cap=cap,
        cap_key=cap_key,
    )


@st.composite
def policies(
    draw: st.DrawFn,
    catch_all: bool = True,
    caps: Mapping[str, Decimal] | None = None,
    deductibles: Mapping[str, Decimal] | None = None,
) -> Policy:
    """Up to three specific rules, then (if ``catch_all``) a rule matching every visit.

    Rules sharing a cap key share its cap: the core refuses a policy where they disagree.
    """
    if caps is None:
        caps = draw(st.fixed_dictionaries({key: cap_amounts for key in CAP_KEYS}))
    specific = rules(caps=caps, deductibles=deductibles)
    listed = [draw(specific) for _ in range(draw(st.integers(0 if catch_all else 1, 3)))]
    if catch_all:
        listed.append(draw(rules(catch_all=True, caps=caps, deductibles=deductibles)))
    return Policy(tuple(listed), draw(adjustment_tables))


@st.composite
def shared_key_policies(draw: st.DrawFn) -> Policy:
    """A policy whose rules share cap and deductible keys, one amount per key."""
    caps = draw(st.fixed_dictionaries({key: cap_amounts for key in CAP_KEYS}))
    deductibles = draw(st.fixed_dictionaries({key: deductible_amounts for key in DEDUCTIBLE_KEYS}))
    return draw(policies(catch_all=True, caps=caps, deductibles=deductibles))


@dataclass(frozen=True)
class Scenario:
    """Everything one call of ``settle`` takes."""

    visit: Visit
    person: Person
    catalogue: dict[str, CatalogueEntry]
    policy: Policy
    items: tuple[FeeItem, ...]
    accumulators: Accumulators

    def settle(self) -> Settlement:
        return settle(self.visit, self.person, self.catalogue, self.policy, self.items, self.accumulators)

    @property
    def rule(self) -> Rule:
        index = first_match(self.policy, self.visit, self.person)
        assert index is not None
        return self.policy.rules[index]


open_policies, any_policies = policies(catch_all=True), policies(catch_all=False)


@st.composite
def scenarios(draw: st.DrawFn, catch_all: bool = True) -> Scenario:
    items = draw(fee_items())
    return Scenario(
        visit=draw(visits),
        person=draw(persons),
        catalogue=draw(catalogues(items)),
        policy=draw(open_policies if catch_all else any_policies),
        items=items,
        accumulators=draw(accumulator_states),
    )


# -- 1. per item ----------------------------------------------------------------------------------


@PER_SETTLEMENT
@given(scenarios())
def test_each_item_splits_into_four_non_negative_whole_fen_parts_and_totals_are_item_sums(
    sc: Scenario,
) -> None:
    s = sc.settle()
    assert [r.sn for r in s.items] == [item.sn for item in sc.items]
    for item, result in zip(sc.items, s.items, strict=True):
        parts = (result.fulamt_ownpay, result.overlmt_selfpay, result.preselfpay, result.inscp)
        assert result.amount == expected_amount(item)
        assert parts == expected_split(item, sc.catalogue.get(item.code), sc.visit)
        assert result.amount == sum(parts)
        assert all(part >= 0 and is_whole_fen(part) for part in (result.amount, *parts))
    assert s.medfee_sumamt == sum((expected_amount(item) for item in sc.items), ZERO)
    assert s.fulamt_ownpay_amt == sum((r.fulamt_ownpay for r in s.items), ZERO)
    assert s.overlmt_selfpay == sum((r.overlmt_selfpay for r in s.items), ZERO)
    assert s.preselfpay_amt == sum((r.preselfpay for r in s.items), ZERO)
    assert s.inscp_scp_amt == sum((r.inscp for r in s.items), ZERO)
    assert s.medfee_sumamt == s.fulamt_ownpay_amt + s.overlmt_selfpay + s.preselfpay_amt + s.inscp_scp_amt


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.integers(-5, 5))
def test_a_given_line_amount_is_used_within_one_fen_and_refused_beyond(sc: Scenario, offset: int) -> None:
    first = sc.items[0]
    computed = half_up(first.qty * first.price)
    given_amount = computed + offset * CENT
    if given_amount < 0:
        return
    items = (FeeItem(first.sn, first.code, first.qty, first.price, given_amount), *sc.items[1:])
    call = Scenario(sc.visit, sc.person, sc.catalogue, sc.policy, items, sc.accumulators)
    if abs(offset) <= 1:
        assert call.settle().items[0].amount == given_amount
        return
    try:
        call.settle()
    except DomainError as error:
        assert error.reason_code == "AMOUNT_MISMATCH"
    else:
        raise AssertionError(f"amount {given_amount} for computed {computed} was accepted")


# -- choosing the rule ----------------------------------------------------------------------------


@PER_SETTLEMENT
@given(scenarios(catch_all=False))
def test_the_first_matching_rule_applies_and_no_match_is_no_policy_rule(sc: Scenario) -> None:
    expected = first_match(sc.policy, sc.visit, sc.person)
    try:
        s = sc.settle()
    except DomainError as error:
        assert expected is None, f"rule {expected} matches, yet {error}"
        assert error.reason_code == "NO_POLICY_RULE"
    else:
        assert s.explanation.rule_index == expected


# -- 2. fund, patient, account --------------------------------------------------------------------


@PER_SETTLEMENT
@given(scenarios())
def test_fund_and_patient_shares_add_up_and_the_account_pays_only_what_it_may(sc: Scenario) -> None:
    s = sc.settle()
    assert s.fund_pay_sumamt == s.hifp_pay
    assert s.medfee_sumamt == s.fund_pay_sumamt + s.psn_part_amt
    assert s.psn_part_amt == s.acct_pay + s.psn_cash_pay
    assert 0 <= s.acct_pay <= sc.person.account_balance
    has_account = sc.person.insutype == "310"
    expected_acct = (
        min(sc.person.account_balance, s.psn_part_amt) if has_account and sc.person.use_account else 0
    )
    assert s.acct_pay == expected_acct
    assert s.psn_cash_pay >= 0
    assert all(is_whole_fen(v) for v in (s.hifp_pay, s.psn_part_amt, s.acct_pay, s.psn_cash_pay))


# -- 3. deductible and eligible -------------------------------------------------------------------


@PER_SETTLEMENT
@given(scenarios())
def test_deductible_and_fund_stay_within_the_in_scope_and_eligible_amounts(sc: Scenario) -> None:
    s = sc.settle()
    rule = sc.rule
    assert s.act_pay_dedc == expected_deductible(rule, s.inscp_scp_amt, sc.accumulators)
    assert 0 <= s.act_pay_dedc <= s.inscp_scp_amt
    eligible = s.inscp_scp_amt - s.act_pay_dedc
    assert s.explanation.eligible == eligible
    assert 0 <= s.hifp_pay <= eligible
    key = annual_key(rule)
    if key is not None:
        before = counted(sc.accumulators, AccumulatorKind.DEDUCTIBLE, key)
        after = sc.accumulators.applied(s.changes).value(AccumulatorKind.DEDUCTIBLE, key)
        assert after == before + s.act_pay_dedc
        if before <= rule.deductible:
            assert after <= rule.deductible


# -- 4. caps across sequences of settlements and reversals ----------------------------------------


class CapsAndReversals(stateful.RuleBasedStateMachine):
    """Settle bills one after another under one policy, reverse some; caps and sums must hold."""

    def __init__(self) -> None:
        super().__init__()
        self.policy: Policy | None = None
        self.accumulators = Accumulators()
        self.active: list[tuple[Scenario, Settlement]] = []

    @stateful.initialize(policy=shared_key_policies())
    def start_the_year(self, policy: Policy) -> None:
        self.policy = policy

    @stateful.rule(data=st.data())
    def settle_a_bill(self, data: st.DataObject) -> None:
        assert self.policy is not None
        items = data.draw(fee_items())
        sc = Scenario(
            data.draw(visits),
            data.draw(persons),
            data.draw(catalogues(items)),
            self.policy,
            items,
            self.accumulators,
        )
        s = sc.settle()
        self.accumulators = self.accumulators.applied(s.changes)
        self.active.append((sc, s))

    @stateful.precondition(lambda self: bool(self.active))
    @stateful.rule(data=st.data())
    def reverse_an_earlier_settlement(self, data: st.DataObject) -> None:
        _, s = self.active.pop(data.draw(st.integers(0, len(self.active) - 1)))
        self.accumulators = self.accumulators.applied(reverse_changes(s.changes))

    @stateful.invariant()
    def no_keyed_cap_is_ever_exceeded(self) -> None:
        for rule in self.policy.rules if self.policy else ():
            if rule.cap is not None and rule.cap_key is not None:
                assert self.accumulators.value(AccumulatorKind.CAP, rule.cap_key) <= rule.cap

    @stateful.invariant()
    def no_annual_deductible_is_counted_beyond_its_amount(self) -> None:
        for rule in self.policy.rules if self.policy else ():
            key = annual_key(rule)
            if key is not None:
                assert self.accumulators.value(AccumulatorKind.DEDUCTIBLE, key) <= rule.deductible

    @stateful.invariant()
    def every_accumulator_is_the_sum_of_the_live_settlements_deltas(self) -> None:
        sums: dict[tuple[AccumulatorKind, str], Decimal] = {}
        for _, s in self.active:
            for change in s.changes:
                sums[(change.kind, change.key)] = sums.get((change.kind, change.key), ZERO) + change.delta
        for kind, key in all_keys(self.accumulators) | set(sums):
            assert self.accumulators.value(kind, key) == sums.get((kind, key), ZERO)

    @stateful.invariant()
    def fund_paid_under_each_cap_key_is_the_cap_accumulator(self) -> None:
        for key in CAP_KEYS:
            paid = sum((s.hifp_pay for sc, s in self.active if sc.rule.cap_key == key), ZERO)
            assert self.accumulators.value(AccumulatorKind.CAP, key) == paid


TestCapsAndReversals = CapsAndReversals.TestCase
TestCapsAndReversals.settings = settings(max_examples=100, stateful_step_count=10, deadline=None)


# -- 5. reversal ----------------------------------------------------------------------------------


@PER_SETTLEMENT
@given(scenarios())
def test_settling_then_reversing_restores_every_accumulator_exactly(sc: Scenario) -> None:
    s = sc.settle()
    after = sc.accumulators.applied(s.changes)
    restored = after.applied(reverse_changes(s.changes))
    for kind, key in all_keys(sc.accumulators, after, restored):
        assert restored.value(kind, key) == sc.accumulators.value(kind, key), (kind, key)
    for kind, table in s.accumulators_after.items():
        for key, value in table.items():
            assert value == after.value(kind, key)


@PER_SETTLEMENT
@given(scenarios())
def test_changes_add_deductible_paid_eligible_and_fund_paid_to_the_rules_keys(sc: Scenario) -> None:
    s = sc.settle()
    rule = sc.rule
    eligible = s.inscp_scp_amt - s.act_pay_dedc
    expected: dict[tuple[AccumulatorKind, str], Decimal] = {}
    if annual_key(rule):
        expected[(AccumulatorKind.DEDUCTIBLE, annual_key(rule))] = s.act_pay_dedc
    if scale_key(rule):
        expected[(AccumulatorKind.SEGMENT, scale_key(rule))] = eligible
    if rule.cap_key:
        expected[(AccumulatorKind.CAP, rule.cap_key)] = s.hifp_pay
    assert len(s.changes) == len(expected)
    assert {(c.kind, c.key): c.delta for c in s.changes} == expected


# -- 6. segments, ratio adjustment, rounding once, cap --------------------------------------------


@PER_SETTLEMENT
@given(scenarios())
def test_fund_is_segment_parts_times_clamped_ratios_rounded_half_up_once_then_capped(sc: Scenario) -> None:
    s = sc.settle()
    rule = sc.rule
    eligible = s.inscp_scp_amt - s.act_pay_dedc
    before = counted(sc.accumulators, AccumulatorKind.SEGMENT, scale_key(rule))
    steps = s.explanation.segments
    expected = expected_segments(rule, before, eligible, adjustment(sc.policy, sc.person))
    assert [(step.amount, step.ratio) for step in steps] == expected
    assert sum((step.amount for step in steps), ZERO) == eligible == s.explanation.eligible
    fund_raw = half_up(sum((step.amount * step.ratio for step in steps), ZERO))
    assert s.explanation.fund_raw == fund_raw
    if rule.cap is None:
        assert s.hifp_pay == fund_raw
    else:
        used = counted(sc.accumulators, AccumulatorKind.CAP, rule.cap_key)
        assert s.hifp_pay == min(fund_raw, max(ZERO, rule.cap - used))


# -- 7. any document near the calc format ---------------------------------------------------------


def _golden(name: str) -> dict[str, Any]:
    return json.loads((CASES_DIR / f"{name}.json").read_text(encoding="utf-8"))["case"]


GOLDEN = [json.loads(path.read_text(encoding="utf-8"))["case"] for path in sorted(CASES_DIR.glob("*.json"))]
ODD_STRINGS = (
    "-1", "1e9", "0.001", "NaN", "Infinity", "", " ", "0", "0.00", "-0.00", "1.234567891",
    "999999999999999", "999999999999999.999999", "10000000000000", "12.5 ", "１２", "٣",
    "*", "annual", "per_visit", "E11", "A", "B", "C",
)  # fmt: skip
numeric_strings = st.one_of(
    st.sampled_from(ODD_STRINGS),
    st.integers(-(10**20), 10**20).map(str),
    st.tuples(st.integers(-(10**18), 10**18), st.integers(0, 9)).map(
        lambda p: f"{Decimal(p[0]).scaleb(-p[1]):f}"
    ),
)
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    numeric_strings,
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def node_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    paths = []
    for key, child in children:
        paths.append((*prefix, key))
        paths.extend(node_paths(child, (*prefix, key)))
    return paths


@st.composite
def mutated_cases(draw: st.DrawFn) -> Any:
    """A golden case with 1–4 keys deleted or nodes replaced by random JSON values."""
    doc = copy.deepcopy(draw(st.sampled_from(GOLDEN)))
    for _ in range(draw(st.integers(1, 4))):
        paths = node_paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(("delete", "replace", "numeric")))
        if action == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values if action == "replace" else numeric_strings)
    return doc


def _with_rule_scope(scope: Any) -> dict[str, Any]:
    doc = copy.deepcopy(_golden("seed-chronic-outpatient-beijing"))
    doc["policy"]["rules"][0]["deductible_scope"] = scope
    return doc


def _with_line(qty: str, price: str) -> dict[str, Any]:
    doc = copy.deepcopy(_golden("seed-chronic-outpatient-beijing"))
    doc["items"][0].update(qty=qty, price=price)
    return doc


@PER_SETTLEMENT
@given(doc=st.one_of(mutated_cases(), json_values))
# Known witnesses, kept so the property fails every run while the core has these bugs:
# an unhashable deductible_scope (TypeError), and qty × price ≥ 1e26 (decimal.InvalidOperation).
@example(doc=_with_rule_scope([]))
@example(doc=_with_line("10000000000000", "10000000000000"))
def test_no_case_document_makes_the_core_raise_anything_but_a_stable_reason(doc: Any) -> None:
    try:
        result_document(parse_case(doc).settle(), explain=True)
    except DomainError as error:
        assert error.reason_code in REASONS


# -- 8. wire conversion ---------------------------------------------------------------------------


@PER_SETTLEMENT
@given(st.integers(INT64_MIN, INT64_MAX), st.integers(1, 9))
def test_two_place_yuan_to_fen_and_back_is_exact_and_a_fraction_of_a_fen_is_refused(
    count: int, thousandths: int
) -> None:
    amount = fen(count)
    assert to_fen(amount) == count
    back = from_fen(to_fen(amount))
    assert back == amount and str(back) == str(amount)
    try:
        to_fen(amount + Decimal(thousandths).scaleb(-3))
    except ValueError:
        pass
    else:
        raise AssertionError(f"{amount + Decimal(thousandths).scaleb(-3)} became whole fen")


@PER_SETTLEMENT
@given(st.integers(INT64_MIN, INT64_MAX))
def test_fen_to_yuan_and_back_is_exact_over_int64(count: int) -> None:
    amount = from_fen(count)
    assert amount == fen(count) and amount.as_tuple().exponent == -2
    assert to_fen(amount) == count
