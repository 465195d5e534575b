"""One settlement (结算), exactly as settlement-rules.md says: the core's single money decision.

:func:`settle` takes plain values — the visit, the person, the treatment-place catalogue,
the insured-place policy, the person's accumulators and the fee items — and returns every
result field, the per-item split, the accumulator changes as data, the fund lines and an
explanation. Pre-settlement, settlement, estimates and ``yidi calc`` all call it, so they
cannot disagree. It reads no clock and stores nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from yidi_core.accumulators import KINDS, AccumulatorChange, AccumulatorKind, Accumulators
from yidi_core.catalogue import CatalogueEntry, FeeItem, ItemResult, classify_item, line_amount
from yidi_core.dictionaries import NATIONAL, psn_type_group
from yidi_core.errors import DomainError, combine, invalid
from yidi_core.explanation import CapStep, Explanation, SegmentStep
from yidi_core.funds import FundFacts, FurtherFunds, further_funds
from yidi_core.money import ONE, ZERO, round_fen
from yidi_core.policy import Policy, Rule, check_policy, select_rule

CAP_EXHAUSTED = "CAP_EXHAUSTED"


@dataclass(frozen=True, slots=True)
class Visit:
    """The visit (就诊) as the treatment place registered it."""

    med_type: str
    service_date: date
    institution_level: str
    diagnoses: tuple[str, ...] = ()
    chronic_disease: str | None = None
    emergency: bool = False
    deductible_paid_in_stay: Decimal = ZERO
    """The deductible earlier parts of this inpatient stay paid (中途结算): a rule without an annual
    deductible charges the stay's deductible once, not once per part."""


@dataclass(frozen=True, slots=True)
class Person:
    """The insured person as the insured place knows them on the service date.

    ``psn_type`` is a group (employed / retired / resident) or a national 4-digit code;
    ``filing_category`` is None when the person has no filing for the treatment region. The
    further funds read ``low_income``, ``civil_servant`` and ``assistance_category``; 门诊共济
    reads the registered family member's account balance and whether the patient chose it.
    """

    insutype: str
    psn_type: str
    filing_category: str | None = None
    account_balance: Decimal = ZERO
    use_account: bool = False
    low_income: bool = False
    civil_servant: bool = False
    assistance_category: str | None = None
    family_account_balance: Decimal = ZERO
    use_family_account: bool = False


@dataclass(frozen=True, slots=True)
class FundLine:
    """One ``setldetail`` line: which fund (``fund_pay_type``) pays how much; ``source`` says what paid:
    ``pooled``, ``account``, ``family_account`` or a further fund (``supplementary`` …)."""

    fund_pay_type: str
    name: str
    amount: Decimal
    source: str = "pooled"


@dataclass(frozen=True, slots=True)
class Settlement:
    """Every result field of settlement-rules.md, with the data needed to apply and explain it.

    ``changes`` are what the insured place adds to the person's accumulators;
    ``accumulators_after`` lists each accumulator the rule touched with its new value. The
    further funds and ``acct_mulaid_pay`` are 0.00 under a policy that names none; ``funds_named``
    says whether the policy names any further fund or the family account (so the result shows them).
    """

    medfee_sumamt: Decimal
    fulamt_ownpay_amt: Decimal
    overlmt_selfpay: Decimal
    preselfpay_amt: Decimal
    inscp_scp_amt: Decimal
    act_pay_dedc: Decimal
    hifp_pay: Decimal
    fund_pay_sumamt: Decimal
    psn_part_amt: Decimal
    acct_pay: Decimal
    psn_cash_pay: Decimal
    items: tuple[ItemResult, ...]
    changes: tuple[AccumulatorChange, ...]
    accumulators_after: Mapping[AccumulatorKind, Mapping[str, Decimal]]
    fund_lines: tuple[FundLine, ...]
    notices: tuple[str, ...]
    explanation: Explanation
    hifob_pay: Decimal = ZERO
    hifmi_pay: Decimal = ZERO
    cvlserv_pay: Decimal = ZERO
    maf_pay: Decimal = ZERO
    acct_mulaid_pay: Decimal = ZERO
    funds_named: bool = False


def settle(
    visit: Visit,
    person: Person,
    catalogue: Mapping[str, CatalogueEntry],
    policy: Policy,
    items: Sequence[FeeItem],
    accumulators: Accumulators | None = None,
) -> Settlement:
    """Settle one visit's bill under the insured-place policy; raise a stable reason on bad input.

    ``catalogue`` maps item codes to the treatment-place entries in force on the service
    date. Refusals: ``INVALID_ARGUMENT`` (a value out of range), ``AMOUNT_MISMATCH``,
    ``INVALID_POLICY``, ``NO_POLICY_RULE``.
    """
    accumulators = accumulators or Accumulators()
    _raise_all([*_item_problems(items), *_state_problems(person, accumulators)])
    # The catalogue split needs no rule, so a bad line is refused before the policy is consulted.
    return _settle(visit, person, policy, _classify(visit, catalogue, items), accumulators)


def classify_bill(
    visit: Visit, catalogue: Mapping[str, CatalogueEntry], items: Sequence[FeeItem]
) -> tuple[ItemResult, ...]:
    """Split every line by the treatment-place catalogue (the treatment side's half of a settlement)."""
    _raise_all(_item_problems(items))
    return _classify(visit, catalogue, items)


def _classify(
    visit: Visit, catalogue: Mapping[str, CatalogueEntry], items: Sequence[FeeItem]
) -> tuple[ItemResult, ...]:
    med_type, diagnoses, entry = visit.med_type, visit.diagnoses, catalogue.get
    return tuple(
        [
            classify_item(item, line_amount(item, index), entry(item.code), med_type, diagnoses)
            for index, item in enumerate(items)
        ]
    )


def settle_classified(
    visit: Visit,
    person: Person,
    policy: Policy,
    results: Sequence[ItemResult],
    accumulators: Accumulators | None = None,
) -> Settlement:
    """The insured side's half: apply ``policy`` to a bill the treatment place already classified.

    Equal to :func:`settle` on the same bill, since settle classifies and then does exactly this.
    Each line's split must add up to its amount and no part may be negative (``AMOUNT_MISMATCH``
    and ``INVALID_ARGUMENT``, naming ``items[i]``).
    """
    accumulators = accumulators or Accumulators()
    _raise_all([*_result_problems(results), *_state_problems(person, accumulators)])
    return _settle(visit, person, policy, tuple(results), accumulators)


def _settle(
    visit: Visit, person: Person, policy: Policy, results: tuple[ItemResult, ...], accumulators: Accumulators
) -> Settlement:
    med_type = visit.med_type
    check_policy(policy)
    group = psn_type_group(person.psn_type)
    psn_types = (person.psn_type, group) if group else (person.psn_type,)
    rule_index, rule = select_rule(policy, med_type, psn_types, visit.institution_level)
    medfee, fulamt, overlmt, preselfpay, inscp = _totals(results)

    deductible_key = rule.annual_deductible_key
    counted = (
        accumulators.value(AccumulatorKind.DEDUCTIBLE, deductible_key)
        if deductible_key
        else visit.deductible_paid_in_stay
    )
    act_pay_dedc = max(ZERO, min(inscp, rule.deductible - counted))
    eligible = inscp - act_pay_dedc

    adjustment = policy.adjustment(person.filing_category)
    # Care without any filing: only this share of the eligible amount is paid on the scale
    # (and counted on it); the rest stays the patient's, as co-payment.
    unfiled_factor = policy.unfiled_factor(person.filing_category, visit.emergency)
    paid_on = eligible if unfiled_factor is None else eligible * unfiled_factor
    scale_key = rule.scale_key
    scale_before = accumulators.value(AccumulatorKind.SEGMENT, scale_key) if scale_key else ZERO
    steps = _segment_steps(rule, scale_before, paid_on, adjustment)
    fund_unrounded = sum((step.fund for step in steps), ZERO)
    fund_raw = round_fen(fund_unrounded)

    cap_step = _cap_step(rule, accumulators, fund_raw)
    hifp = fund_raw if cap_step is None else min(fund_raw, cap_step.room_before)
    further = further_funds(
        policy.funds,
        FundFacts(inscp, act_pay_dedc, hifp, steps, None if cap_step is None else cap_step.room_before),
        accumulators,
        low_income=person.low_income,
        civil_servant=person.civil_servant,
        assistance_category=person.assistance_category,
    )
    fund_pay_sumamt = hifp + further.total
    psn_part = medfee - fund_pay_sumamt
    insutype = NATIONAL.lookup("insutype", person.insutype)
    has_account = insutype is not None and insutype.attributes.get("account") == "true"
    acct_pay = min(person.account_balance, psn_part) if person.use_account and has_account else ZERO
    family_chosen = policy.family_account and person.use_family_account
    acct_mulaid_pay = min(person.family_account_balance, psn_part - acct_pay) if family_chosen else ZERO

    # The scale counts what was paid on, to the fen (a factor can leave a fraction; accumulators hold fen).
    changes = _changes(rule, act_pay_dedc, round_fen(paid_on), hifp) + further.changes
    explanation = Explanation(
        rule_index=rule_index,
        rule=rule,
        deductible_counted_before=counted,
        act_pay_dedc=act_pay_dedc,
        inscp_scp_amt=inscp,
        eligible=eligible,
        filing_category=person.filing_category,
        ratio_adjustment=adjustment,
        scale_key=scale_key,
        scale_before=scale_before,
        segments=steps,
        fund_unrounded=fund_unrounded,
        fund_raw=fund_raw,
        cap=cap_step,
        insutype=person.insutype,
        has_account=has_account,
        use_account=person.use_account,
        account_balance=person.account_balance,
        acct_pay=acct_pay,
        items=results,
        unfiled_factor=unfiled_factor,
        funds=further.steps,
        family_account=policy.family_account,
        use_family_account=person.use_family_account,
        family_account_balance=person.family_account_balance,
        acct_mulaid_pay=acct_mulaid_pay,
    )
    lines = _fund_lines(person.insutype, insutype.attributes if insutype else {}, hifp, acct_pay)
    return Settlement(
        medfee_sumamt=medfee,
        fulamt_ownpay_amt=fulamt,
        overlmt_selfpay=overlmt,
        preselfpay_amt=preselfpay,
        inscp_scp_amt=inscp,
        act_pay_dedc=act_pay_dedc,
        hifp_pay=hifp,
        fund_pay_sumamt=fund_pay_sumamt,
        psn_part_amt=psn_part,
        acct_pay=acct_pay,
        psn_cash_pay=psn_part - acct_pay - acct_mulaid_pay,
        items=results,
        changes=changes,
        accumulators_after=_after(accumulators, changes),
        fund_lines=lines + _further_lines(further, acct_mulaid_pay),
        notices=(CAP_EXHAUSTED,) if cap_step is not None and cap_step.limited else (),
        explanation=explanation,
        hifob_pay=further.hifob_pay,
        hifmi_pay=further.hifmi_pay,
        cvlserv_pay=further.cvlserv_pay,
        maf_pay=further.maf_pay,
        acct_mulaid_pay=acct_mulaid_pay,
        funds_named=policy.funds.named or policy.family_account,
    )


def _totals(results: tuple[ItemResult, ...]) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
    """Σ amount, full self-pay, over-limit, first self-pay and in-scope, in one pass over the bill."""
    medfee = fulamt = overlmt = preselfpay = inscp = ZERO
    for item in results:
        medfee += item.amount
        fulamt += item.fulamt_ownpay
        overlmt += item.overlmt_selfpay
        preselfpay += item.preselfpay
        inscp += item.inscp
    return medfee, fulamt, overlmt, preselfpay, inscp


def _item_problems(items: Sequence[FeeItem]) -> list[DomainError]:
    """Numbers out of range on the bill are refused together, each naming its field."""
    problems = []
    if not items:
        problems.append(invalid("INVALID_ARGUMENT", "items", "a bill needs at least one fee item"))
    seen: set[str] = set()
    for index, item in enumerate(items):
        if item.sn in seen:
            problems.append(
                invalid("INVALID_ARGUMENT", f"items[{index}].sn", f"serial number {item.sn} repeats")
            )
        seen.add(item.sn)
        if item.qty <= ZERO:
            problems.append(invalid("INVALID_ARGUMENT", f"items[{index}].qty", "must be positive"))
        if item.price <= ZERO:
            problems.append(invalid("INVALID_ARGUMENT", f"items[{index}].price", "must be positive"))
        if item.amount is not None and item.amount < ZERO:
            problems.append(invalid("INVALID_ARGUMENT", f"items[{index}].amount", "must not be negative"))
    return problems


def _result_problems(results: Sequence[ItemResult]) -> list[DomainError]:
    """A classified bill from another node is checked as strictly as a raw one."""
    problems = []
    if not results:
        problems.append(invalid("INVALID_ARGUMENT", "items", "a bill needs at least one fee item"))
    seen: set[str] = set()
    for index, line in enumerate(results):
        if line.sn in seen:
            problems.append(
                invalid("INVALID_ARGUMENT", f"items[{index}].sn", f"serial number {line.sn} repeats")
            )
        seen.add(line.sn)
        parts = (line.fulamt_ownpay, line.overlmt_selfpay, line.preselfpay, line.inscp)
        if line.amount < ZERO or any(part < ZERO for part in parts):
            problems.append(invalid("INVALID_ARGUMENT", f"items[{index}]", "amounts must not be negative"))
        elif sum(parts, ZERO) != line.amount:
            problems.append(
                invalid(
                    "AMOUNT_MISMATCH",
                    f"items[{index}].amount",
                    f"the parts of line {line.sn} add up to {sum(parts, ZERO)}, not its amount {line.amount}",
                    metadata={"sn": line.sn},
                )
            )
    return problems


def _state_problems(person: Person, accumulators: Accumulators) -> list[DomainError]:
    """The person's accounts and counters are never negative."""
    problems = []
    if person.account_balance < ZERO:
        problems.append(invalid("INVALID_ARGUMENT", "person.account_balance", "must not be negative"))
    if person.family_account_balance < ZERO:
        where = "person.family_account_balance"
        problems.append(invalid("INVALID_ARGUMENT", where, "must not be negative"))
    for kind in KINDS:
        for key, value in getattr(accumulators, kind).items():
            if value < ZERO:
                where = f"accumulators.{kind}.{key}"
                problems.append(invalid("INVALID_ARGUMENT", where, "must not be negative"))
    return problems


def _raise_all(problems: list[DomainError]) -> None:
    error = combine(problems)
    if error is not None:
        raise error


def _segment_steps(
    rule: Rule, scale_before: Decimal, eligible: Decimal, adjustment: Decimal
) -> tuple[SegmentStep, ...]:
    """Place ``eligible`` on the scale after ``scale_before`` and price each segment's part."""
    steps = []
    top = scale_before + eligible
    for position, segment in enumerate(rule.segments):
        end = rule.segments[position + 1].start if position + 1 < len(rule.segments) else None
        low = max(segment.start, scale_before)
        high = top if end is None else min(end, top)
        part = max(ZERO, high - low)
        ratio = min(ONE, max(ZERO, segment.ratio + adjustment))
        steps.append(SegmentStep(segment.start, end, segment.ratio, ratio, part, part * ratio))
    return tuple(steps)


def _cap_step(rule: Rule, accumulators: Accumulators, fund_raw: Decimal) -> CapStep | None:
    if rule.cap is None:
        return None
    used = accumulators.value(AccumulatorKind.CAP, rule.cap_key) if rule.cap_key else ZERO
    room = max(ZERO, rule.cap - used)
    paid = min(fund_raw, room)
    return CapStep(rule.cap_key, rule.cap, used, room, room - paid, limited=paid < fund_raw)


def _changes(
    rule: Rule, act_pay_dedc: Decimal, counted: Decimal, hifp: Decimal
) -> tuple[AccumulatorChange, ...]:
    """What the insured place adds: deductible (annual only), segment scale (what was counted on it), cap (when keyed)."""
    changes = []
    if rule.annual_deductible_key:
        changes.append(
            AccumulatorChange(AccumulatorKind.DEDUCTIBLE, rule.annual_deductible_key, act_pay_dedc)
        )
    if rule.scale_key:
        changes.append(AccumulatorChange(AccumulatorKind.SEGMENT, rule.scale_key, counted))
    if rule.cap_key:
        changes.append(AccumulatorChange(AccumulatorKind.CAP, rule.cap_key, hifp))
    return tuple(changes)


def _after(
    accumulators: Accumulators, changes: tuple[AccumulatorChange, ...]
) -> Mapping[AccumulatorKind, Mapping[str, Decimal]]:
    """Each accumulator the rule touched, with its value after this settlement."""
    touched: dict[AccumulatorKind, dict[str, Decimal]] = {kind: {} for kind in KINDS}
    for change in changes:
        touched[change.kind][change.key] = accumulators.value(change.kind, change.key) + change.delta
    return touched


def _fund_lines(
    insutype: str, attributes: Mapping[str, str], hifp: Decimal, acct_pay: Decimal
) -> tuple[FundLine, ...]:
    """The pooled fund line always; the personal-account line when the account paid."""
    lines = [FundLine(attributes.get("pooled_fund", f"{insutype}100"), "pooled fund (统筹基金)", hifp)]
    if acct_pay > ZERO:
        lines.append(
            FundLine(
                attributes.get("account_fund", f"{insutype}200"),
                "personal account (个人账户)",
                acct_pay,
                "account",
            )
        )
    return tuple(lines)


_FURTHER_LINES = (
    ("hifob_pay", "330100", "large-amount supplementary (大额医疗费用补助)", "supplementary"),
    ("hifmi_pay", "390200", "serious-illness insurance (大病保险)", "serious_illness"),
    ("cvlserv_pay", "320100", "civil-servant subsidy (公务员医疗补助)", "civil_servant"),
    ("maf_pay", "610100", "medical assistance (医疗救助)", "assistance"),
)


def _further_lines(further: FurtherFunds, acct_mulaid_pay: Decimal) -> tuple[FundLine, ...]:
    """A line for each further fund that paid, and for the family account (门诊共济) when it paid."""
    lines = [
        FundLine(code, name, getattr(further, field), source)
        for field, code, name, source in _FURTHER_LINES
        if getattr(further, field) > ZERO
    ]
    if acct_mulaid_pay > ZERO:
        lines.append(FundLine("310200", "family account (门诊共济)", acct_mulaid_pay, "family_account"))
    return tuple(lines)
