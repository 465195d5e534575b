"""The insured-place policy (参保地政策): ordered rules, filing-category ratio adjustments and the
further funds after the basic fund.

"Insured-place policy": how much the fund pays — deductible (起付标准), ratio or segments
(分段支付比例), annual cap (最高支付限额) — is decided where the patient is insured. A policy
is data; :func:`select_rule` picks the first rule that matches a visit, and
:func:`check_policy` refuses a policy that could not be applied as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from yidi_core.errors import DomainError, NoPolicyRule, combine, invalid
from yidi_core.money import ONE, ZERO
from yidi_core.national_limits import limit_breaches

ANY = "*"


class DeductibleScope(StrEnum):
    """Whether each admission pays its own deductible or the year's visits share one."""

    PER_VISIT = "per_visit"
    ANNUAL = "annual"


@dataclass(frozen=True, slots=True)
class Segment:
    """From ``start`` on the segment scale, the fund pays ``ratio`` of the eligible amount."""

    start: Decimal
    ratio: Decimal


@dataclass(frozen=True, slots=True)
class Rule:
    """One payment rule; ``segments`` holds a plain ratio as one segment from 0.00.

    ``cap_key`` names the yearly accumulator shared by every visit under it; a ``cap``
    with no ``cap_key`` limits this visit alone, and no ``cap`` means no limit.
    """

    med_types: tuple[str, ...]
    psn_types: tuple[str, ...]
    institution_levels: tuple[str, ...]
    deductible: Decimal
    deductible_scope: DeductibleScope
    segments: tuple[Segment, ...]
    deductible_key: str | None = None
    segment_key: str | None = None
    cap: Decimal | None = None
    cap_key: str | None = None

    @property
    def scale_key(self) -> str | None:
        """The accumulator the segments count on; None when the visit alone is the scale."""
        if self.segment_key:
            return self.segment_key
        return self.deductible_key if self.deductible_scope is DeductibleScope.ANNUAL else None

    @property
    def annual_deductible_key(self) -> str | None:
        """The deductible accumulator, for an annual rule only (per-visit deductibles are not counted)."""
        return self.deductible_key if self.deductible_scope is DeductibleScope.ANNUAL else None

    def matches(self, med_type: str, psn_types: tuple[str, ...], institution_level: str) -> bool:
        """Whether the rule applies: each list holds the visit's value or ``"*"``."""
        return (
            _listed(self.med_types, (med_type,))
            and _listed(self.psn_types, psn_types)
            and _listed(self.institution_levels, (institution_level,))
        )


def _listed(allowed: tuple[str, ...], values: tuple[str, ...]) -> bool:
    return ANY in allowed or any(value in allowed for value in values)


UNFILED_CARE = ("emergency", "unreferred")
"""The kinds of care without any filing a policy may pay at a reduced rate (``unfiled_factors``)."""


@dataclass(frozen=True, slots=True)
class Supplementary:
    """Large-amount supplementary (大额): ``ratio`` of what the basic fund's cap cut off, ``cap`` a year."""

    ratio: Decimal
    cap: Decimal | None = None


@dataclass(frozen=True, slots=True)
class LowIncome:
    """A low-income person's serious-illness terms: the threshold times ``threshold_factor``, every
    ratio plus ``ratio_bonus`` (clamped to 1), and ``cap`` (None: no cap)."""

    threshold_factor: Decimal
    ratio_bonus: Decimal
    cap: Decimal | None


@dataclass(frozen=True, slots=True)
class SeriousIllness:
    """Serious-illness insurance (大病保险): segments on the year's in-scope self-pay above ``threshold``."""

    threshold: Decimal
    segments: tuple[Segment, ...]
    cap: Decimal | None = None
    low_income: LowIncome | None = None


@dataclass(frozen=True, slots=True)
class CivilServant:
    """Civil-servant subsidy (公务员医疗补助): shares of the deductible and of the rest of the self-pay."""

    deductible_ratio: Decimal
    selfpay_ratio: Decimal


@dataclass(frozen=True, slots=True)
class Assistance:
    """Medical assistance (医疗救助) for the listed ``categories`` (e.g. ``dibao``, ``tekun``)."""

    ratio: Decimal
    cap: Decimal | None = None
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Funds:
    """The funds that pay after the basic fund, in the order they apply; None: the policy has none."""

    supplementary: Supplementary | None = None
    serious_illness: SeriousIllness | None = None
    civil_servant: CivilServant | None = None
    assistance: Assistance | None = None

    @property
    def named(self) -> bool:
        """Whether the policy names any further fund."""
        return any(
            fund is not None
            for fund in (self.supplementary, self.serious_illness, self.civil_servant, self.assistance)
        )


@dataclass(frozen=True, slots=True)
class Policy:
    """An insured-place policy version: rules in order, ratio adjustments by filing category, and
    the factors the eligible amount of care without any filing counts at (settlement-rules.md,
    "Unfiled and unreferred care"); ``unfiled_direct``: such care settles directly at those
    factors instead of being refused (NOT_FILED) and reimbursed by hand; the further funds
    (``funds``) and whether a family member's account may pay (``family_account``)."""

    rules: tuple[Rule, ...]
    ratio_adjustments: Mapping[str, Decimal] = field(default_factory=dict)
    unfiled_factors: Mapping[str, Decimal] = field(default_factory=dict)
    unfiled_direct: bool = False
    funds: Funds = field(default_factory=Funds)
    family_account: bool = False
    """门诊共济: a registered family member's employee account may pay the rest of the patient's share."""
    # Set by check_policy once the rules (immutable, unlike the adjustments mapping) passed, so
    # settling many bills under one policy checks its rules once.
    _rules_checked: bool = field(default=False, init=False, repr=False, compare=False)

    def adjustment(self, filing_category: str | None) -> Decimal:
        """The ratio adjustment for the category (0 when not filed or not listed)."""
        return self.ratio_adjustments.get(filing_category, ZERO) if filing_category else ZERO

    def unfiled_factor(self, filing_category: str | None, emergency: bool) -> Decimal | None:
        """The factor a person without a filing counts at (emergency or unreferred care, by the
        visit); None when the person is filed or the policy has no factor for that care."""
        if filing_category:
            return None
        return self.unfiled_factors.get(UNFILED_CARE[0] if emergency else UNFILED_CARE[1])


def select_rule(
    policy: Policy, med_type: str, psn_types: tuple[str, ...], institution_level: str
) -> tuple[int, Rule]:
    """The first matching rule and its position; no match is ``NO_POLICY_RULE``, never a default."""
    for index, rule in enumerate(policy.rules):
        if rule.matches(med_type, psn_types, institution_level):
            return index, rule
    raise NoPolicyRule(
        message=(
            f"no rule of the insured-place policy covers med_type {med_type}, "
            f"psn_type {'/'.join(psn_types)}, institution level {institution_level}"
        ),
        metadata={"med_type": med_type, "institution_level": institution_level},
    )


def check_policy(policy: Policy, path: str = "policy") -> None:
    """Refuse (``INVALID_POLICY``, every problem named) a policy that cannot be applied as written.

    Segments start at 0.00 and rise strictly; ratios lie in [0, 1]; an annual deductible
    names its accumulator; amounts are non-negative; so are the further funds' figures; settling
    unfiled care directly needs its factor. A well-formed policy must then keep the national
    limits (``POLICY_LIMIT_EXCEEDED``, :mod:`yidi_core.national_limits`).
    """
    problems = [] if policy._rules_checked else _rules_problems(policy, path)
    problems.extend(_funds_problems(policy.funds, f"{path}.funds"))
    for category, adjustment in policy.ratio_adjustments.items():
        if not -ONE <= adjustment <= ONE:
            where = f"{path}.ratio_adjustments.{category}"
            problems.append(invalid("INVALID_POLICY", where, f"must lie in [-1, 1], got {adjustment}"))
    for care, factor in policy.unfiled_factors.items():
        where = f"{path}.unfiled_factors.{care}"
        if care not in UNFILED_CARE:
            problems.append(invalid("INVALID_POLICY", where, f"must be one of {', '.join(UNFILED_CARE)}"))
        elif not ZERO <= factor <= ONE:
            problems.append(invalid("INVALID_POLICY", where, f"must lie in [0, 1], got {factor}"))
    if policy.unfiled_direct and UNFILED_CARE[1] not in policy.unfiled_factors:
        where = f"{path}.unfiled_factors.{UNFILED_CARE[1]}"
        problems.append(invalid("INVALID_POLICY", where, "is required when unfiled_direct is set"))
    error = combine(problems or limit_breaches(policy.ratio_adjustments, policy.unfiled_factors, path))
    if error is not None:
        raise error
    object.__setattr__(policy, "_rules_checked", True)


def _rules_problems(policy: Policy, path: str) -> list[DomainError]:
    problems = []
    if not policy.rules:
        problems.append(invalid("INVALID_POLICY", f"{path}.rules", "must hold at least one rule"))
    caps: dict[str, Decimal | None] = {}
    for index, rule in enumerate(policy.rules):
        where = f"{path}.rules[{index}]"
        problems.extend(_rule_problems(rule, where))
        if rule.cap_key:
            # One yearly total per key needs one limit: rules sharing a key must agree on it.
            first = caps.setdefault(rule.cap_key, rule.cap)
            if first != rule.cap:
                problems.append(
                    invalid(
                        "INVALID_POLICY",
                        f"{where}.cap",
                        f"rules sharing cap_key {rule.cap_key!r} set different caps",
                    )
                )
    return problems


def _rule_problems(rule: Rule, path: str) -> list[DomainError]:
    problems = []
    for name in ("med_types", "psn_types", "institution_levels"):
        if not getattr(rule, name):
            problems.append(invalid("INVALID_POLICY", f"{path}.{name}", 'must list values or "*"'))
    if rule.deductible < ZERO:
        problems.append(invalid("INVALID_POLICY", f"{path}.deductible", "must not be negative"))
    if rule.deductible_scope is DeductibleScope.ANNUAL and not rule.deductible_key:
        problems.append(
            invalid("INVALID_POLICY", f"{path}.deductible_key", "an annual deductible needs a key")
        )
    if rule.cap is not None and rule.cap < ZERO:
        problems.append(invalid("INVALID_POLICY", f"{path}.cap", "must not be negative"))
    if not rule.segments:
        problems.append(invalid("INVALID_POLICY", f"{path}.segments", "a rule needs a ratio or segments"))
    elif rule.segments[0].start != ZERO:
        problems.append(
            invalid("INVALID_POLICY", f"{path}.segments[0].from", 'the first segment starts at "0.00"')
        )
    for position, segment in enumerate(rule.segments):
        if not ZERO <= segment.ratio <= ONE:
            where = f"{path}.segments[{position}].ratio"
            problems.append(invalid("INVALID_POLICY", where, f"must lie in [0, 1], got {segment.ratio}"))
        if position and segment.start <= rule.segments[position - 1].start:
            where = f"{path}.segments[{position}].from"
            problems.append(invalid("INVALID_POLICY", where, "segments must be sorted by a rising from"))
    return problems


def _ratio_problem(ratio: Decimal, where: str, low: Decimal = ZERO) -> list[DomainError]:
    if low <= ratio <= ONE:
        return []
    return [invalid("INVALID_POLICY", where, f"must lie in [{low}, 1], got {ratio}")]


def _amount_problem(amount: Decimal | None, where: str) -> list[DomainError]:
    if amount is None or amount >= ZERO:
        return []
    return [invalid("INVALID_POLICY", where, "must not be negative")]


def _segments_problems(segments: tuple[Segment, ...], path: str) -> list[DomainError]:
    """Segments start at 0.00 and rise strictly, each ratio in [0, 1]."""
    if not segments:
        return [invalid("INVALID_POLICY", path, "needs a ratio or segments")]
    problems = []
    if segments[0].start != ZERO:
        problems.append(invalid("INVALID_POLICY", f"{path}[0].from", 'the first segment starts at "0.00"'))
    for position, segment in enumerate(segments):
        problems.extend(_ratio_problem(segment.ratio, f"{path}[{position}].ratio"))
        if position and segment.start <= segments[position - 1].start:
            where = f"{path}[{position}].from"
            problems.append(invalid("INVALID_POLICY", where, "segments must be sorted by a rising from"))
    return problems


def _funds_problems(funds: Funds, path: str) -> list[DomainError]:
    problems: list[DomainError] = []
    if funds.supplementary is not None:
        where = f"{path}.supplementary"
        problems += _ratio_problem(funds.supplementary.ratio, f"{where}.ratio")
        problems += _amount_problem(funds.supplementary.cap, f"{where}.cap")
    if funds.serious_illness is not None:
        illness, where = funds.serious_illness, f"{path}.serious_illness"
        problems += _amount_problem(illness.threshold, f"{where}.threshold")
        problems += _segments_problems(illness.segments, f"{where}.segments")
        problems += _amount_problem(illness.cap, f"{where}.cap")
        if illness.low_income is not None:
            low = illness.low_income
            problems += _ratio_problem(low.threshold_factor, f"{where}.low_income.threshold_factor")
            problems += _ratio_problem(low.ratio_bonus, f"{where}.low_income.ratio_bonus")
            problems += _amount_problem(low.cap, f"{where}.low_income.cap")
    if funds.civil_servant is not None:
        where = f"{path}.civil_servant"
        problems += _ratio_problem(funds.civil_servant.deductible_ratio, f"{where}.deductible_ratio")
        problems += _ratio_problem(funds.civil_servant.selfpay_ratio, f"{where}.selfpay_ratio")
    if funds.assistance is not None:
        where = f"{path}.assistance"
        problems += _ratio_problem(funds.assistance.ratio, f"{where}.ratio")
        problems += _amount_problem(funds.assistance.cap, f"{where}.cap")
        if not funds.assistance.categories:
            problems.append(
                invalid("INVALID_POLICY", f"{where}.categories", "must list at least one category")
            )
    return problems
