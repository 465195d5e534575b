"""Why a settlement came out as it did: enough for a window clerk to answer "why do I pay this".

The explanation is data (every intermediate value of settlement-rules.md) plus
:meth:`Explanation.sentences`, which walks the patient's share from the bill down to cash:
psn_part = full self-pay + over-limit + first self-pay + deductible + co-payment + what
the cap left unpaid.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from yidi_core.catalogue import ItemResult, SelfPayReason
from yidi_core.money import ZERO, format_decimal, format_money
from yidi_core.policy import DeductibleScope, Rule

_REASON_TEXT = {
    SelfPayReason.NOT_IN_CATALOGUE: "not in the treatment-place catalogue (目录外), full self-pay",
    SelfPayReason.CLASS_C: "class C (丙类), full self-pay",
    SelfPayReason.MED_TYPE_RESTRICTED: "restricted to other medical types (限定就医类别), full self-pay",
    SelfPayReason.DIAGNOSIS_RESTRICTED: "restricted to other diagnoses (限定诊断), full self-pay",
    SelfPayReason.OVER_PRICE_CEILING: "unit price above the ceiling (超限价)",
    SelfPayReason.FIRST_SELF_PAY: "class B first self-pay (乙类先行自付)",
}


@dataclass(frozen=True, slots=True)
class SegmentStep:
    """One segment's share: ``amount`` of eligible money from ``start`` to ``end`` at ``ratio``.

    ``ratio`` is the policy's ``base_ratio`` after the filing-category adjustment, clamped to
    [0, 1]; ``fund`` is ``amount × ratio`` in full precision (rounded only once, in total).
    """

    start: Decimal
    end: Decimal | None
    base_ratio: Decimal
    ratio: Decimal
    amount: Decimal
    fund: Decimal


@dataclass(frozen=True, slots=True)
class CapStep:
    """The annual cap (最高支付限额): room before and after this visit, and whether it bit."""

    key: str | None
    cap: Decimal
    used_before: Decimal
    room_before: Decimal
    room_after: Decimal
    limited: bool


@dataclass(frozen=True, slots=True)
class FundStep:
    """One further fund as it applied: what it paid on (``base``), its rounded share, its annual room
    before (None: no cap) and what it paid; ``rule`` says the policy's terms in words."""

    fund: str
    base: Decimal
    share: Decimal
    room: Decimal | None
    paid: Decimal
    rule: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """Every intermediate value of one settlement, in the order the rules compute them."""

    rule_index: int
    rule: Rule
    deductible_counted_before: Decimal
    act_pay_dedc: Decimal
    inscp_scp_amt: Decimal
    eligible: Decimal
    filing_category: str | None
    ratio_adjustment: Decimal
    scale_key: str | None
    scale_before: Decimal
    segments: tuple[SegmentStep, ...]
    fund_unrounded: Decimal
    fund_raw: Decimal
    cap: CapStep | None
    insutype: str
    has_account: bool
    use_account: bool
    account_balance: Decimal
    acct_pay: Decimal
    items: tuple[ItemResult, ...]
    unfiled_factor: Decimal | None = None
    """The share of ``eligible`` a person without a filing counts at (None: filed, or no such factor)."""
    funds: tuple[FundStep, ...] = ()
    """Each further fund that applied to the person, in order (settlement-rules.md)."""
    family_account: bool = False
    """Whether the policy lets a registered family member's account pay (门诊共济)."""
    use_family_account: bool = False
    family_account_balance: Decimal = ZERO
    acct_mulaid_pay: Decimal = ZERO

    @property
    def counted(self) -> Decimal:
        """What of ``eligible`` the scale pays on: all of it, or its unfiled share."""
        return self.eligible if self.unfiled_factor is None else self.eligible * self.unfiled_factor

    def sentences(self) -> list[str]:
        """The explanation in plain English (with the Chinese terms clerks use), one step a line."""
        lines = [self._rule_sentence()]
        lines += [_item_sentence(item) for item in self.items if item.reasons]
        lines.append(self._deductible_sentence())
        if self.ratio_adjustment:
            lines.append(
                f"Filing category {self.filing_category}: every ratio adjusted by "
                f"{format_decimal(self.ratio_adjustment)} (clamped to [0, 1])."
            )
        if self.unfiled_factor is not None:
            lines.append(
                f"No filing for this region (未备案): {format_decimal(self.unfiled_factor)} of the eligible "
                f"{format_money(self.eligible)} counts, {format_decimal(self.counted)}; the rest is the patient's."
            )
        scale = f"the {self.scale_key!r} scale" if self.scale_key else "this visit's scale"
        counted = format_money(self.eligible) if self.unfiled_factor is None else format_decimal(self.counted)
        lines.append(f"Eligible {counted} counted on {scale} from {format_money(self.scale_before)}:")
        for step in self.segments:
            if step.amount:
                end = format_money(step.end) if step.end is not None else "up"
                lines.append(
                    f"  {format_money(step.start)}–{end}: {format_money(step.amount)} × "
                    f"{format_decimal(step.ratio)} = {format_decimal(step.fund)}"
                )
        lines.append(
            f"Fund before the cap: {format_decimal(self.fund_unrounded)}, rounded half up to "
            f"{format_money(self.fund_raw)}."
        )
        lines.append(self._cap_sentence())
        lines.append(self._share_sentence())
        if self.funds:
            lines += [_fund_sentence(step) for step in self.funds]
            lines.append(self._after_funds_sentence())
        lines.append(self._account_sentence())
        if self.family_account:
            lines.append(self._family_sentence())
        return lines

    def _family_sentence(self) -> str:
        if not self.use_family_account:
            return "The patient chose not to use a family member's account (门诊共济)."
        return (
            f"Family member's account (门诊共济) balance {format_money(self.family_account_balance)} pays "
            f"{format_money(self.acct_mulaid_pay)} of the rest of the patient's share."
        )

    def _share_sentence(self) -> str:
        """The patient's share (个人负担) as the sum of the reasons it exists."""
        above_cap = self._above_cap()
        parts = {
            "full self-pay (全自费)": sum((item.fulamt_ownpay for item in self.items), ZERO),
            "over-limit (超限价)": sum((item.overlmt_selfpay for item in self.items), ZERO),
            "first self-pay (先行自付)": sum((item.preselfpay for item in self.items), ZERO),
            "deductible (起付线)": self.act_pay_dedc,
            "co-payment (共付)": self.eligible - self.fund_raw,
            "above the cap (超封顶)": above_cap,
        }
        shown = " + ".join(f"{name} {format_money(value)}" for name, value in parts.items() if value)
        total = sum(parts.values(), ZERO)
        before = "Before the further funds, the patient's share" if self.funds else "The patient's share"
        return f"{before} (个人负担) is {format_money(total)}" + (f": {shown}." if shown else ".")

    def _after_funds_sentence(self) -> str:
        share = sum((item.amount for item in self.items), ZERO) - self.fund_raw + self._above_cap()
        share -= sum((step.paid for step in self.funds), ZERO)
        return f"After the further funds, the patient's share (个人负担) is {format_money(share)}."

    def _above_cap(self) -> Decimal:
        return self.fund_raw - self.cap.room_before if self.cap and self.cap.limited else ZERO

    def _rule_sentence(self) -> str:
        rule = self.rule
        ratios = ", ".join(f"{format_decimal(s.ratio)} from {format_money(s.start)}" for s in rule.segments)
        return (
            f"Rule {self.rule_index + 1} of the insured-place policy applies (med_types "
            f"{'/'.join(rule.med_types)}, psn_types {'/'.join(rule.psn_types)}, levels "
            f"{'/'.join(rule.institution_levels)}): ratio {ratios}."
        )

    def _deductible_sentence(self) -> str:
        rule = self.rule
        if rule.deductible_scope is DeductibleScope.ANNUAL:
            scope = (
                f"per year under {rule.deductible_key!r}, "
                f"{format_money(self.deductible_counted_before)} already counted"
            )
        elif self.deductible_counted_before:
            scope = f"per stay, {format_money(self.deductible_counted_before)} paid by its earlier parts"
        else:
            scope = "per visit"
        return (
            f"Deductible (起付标准) {format_money(rule.deductible)} {scope}: "
            f"{format_money(self.act_pay_dedc)} of the in-scope {format_money(self.inscp_scp_amt)} "
            f"is paid by the patient now."
        )

    def _cap_sentence(self) -> str:
        cap = self.cap
        if cap is None:
            return "No cap (最高支付限额) applies to this rule."
        under = f"under {cap.key!r}" if cap.key else "for this visit"
        bit = " — the cap is reached (CAP_EXHAUSTED)" if cap.limited else ""
        return (
            f"Cap {format_money(cap.cap)} {under}: {format_money(cap.used_before)} already paid, "
            f"room {format_money(cap.room_before)} before and {format_money(cap.room_after)} after{bit}."
        )

    def _account_sentence(self) -> str:
        if not self.has_account:
            return f"Insurance type {self.insutype} has no personal account (个人账户)."
        if not self.use_account:
            return "The patient chose not to use the personal account (个人账户)."
        return (
            f"Personal account (个人账户) balance {format_money(self.account_balance)} pays "
            f"{format_money(self.acct_pay)} of the patient's share."
        )


def _item_sentence(item: ItemResult) -> str:
    label = f"Item {item.sn} {item.code}" + (f" ({item.name})" if item.name else "")
    parts = []
    for reason in item.reasons:
        if reason is SelfPayReason.OVER_PRICE_CEILING and item.price_ceiling is not None:
            parts.append(
                f"{_REASON_TEXT[reason]} {format_decimal(item.price_ceiling)}: "
                f"{format_money(item.overlmt_selfpay)}"
            )
        elif reason is SelfPayReason.FIRST_SELF_PAY:
            parts.append(
                f"{_REASON_TEXT[reason]} {format_decimal(item.selfpay_ratio)}: {format_money(item.preselfpay)}"
            )
        else:
            parts.append(f"{_REASON_TEXT[reason]}: {format_money(item.fulamt_ownpay)}")
    return f"{label}: " + "; ".join(parts) + "."


_FUND_NAMES = {
    "supplementary": "Large-amount supplementary (大额, hifob_pay)",
    "serious_illness": "Serious-illness insurance (大病保险, hifmi_pay)",
    "civil_servant": "Civil-servant subsidy (公务员医疗补助, cvlserv_pay)",
    "assistance": "Medical assistance (医疗救助, maf_pay)",
}


def _fund_sentence(step: FundStep) -> str:
    room = "" if step.room is None else f", room {format_money(step.room)} this year"
    return (
        f"{_FUND_NAMES[step.fund]}, {step.rule}: on {format_money(step.base)} its share is "
        f"{format_money(step.share)}{room}; it pays {format_money(step.paid)}."
    )
