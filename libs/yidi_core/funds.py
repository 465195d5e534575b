"""The further funds after the basic fund (settlement-rules.md, "Further funds after the basic fund").

Large-amount supplementary (大额, ``hifob_pay``), serious-illness insurance (大病保险,
``hifmi_pay``), the civil-servant subsidy (公务员医疗补助, ``cvlserv_pay``) and medical
assistance (医疗救助, ``maf_pay``) apply in this order, each on what the previous ones left of
the in-scope amount (``left``, starting at ``inscp_scp_amt − hifp_pay``); each is rounded once,
then held to its own annual room and to ``left``, so no fund pays more than is eligible in any
order of visits. A fund the policy does not name, or the person is not eligible for, pays 0.00
and keeps no accumulator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from yidi_core.accumulators import AccumulatorChange, AccumulatorKind, Accumulators
from yidi_core.explanation import FundStep, SegmentStep
from yidi_core.money import FEN, ONE, ZERO, format_decimal, format_money, round_fen
from yidi_core.policy import Funds, SeriousIllness

SUPPLEMENTARY = "supplementary"
SERIOUS_ILLNESS = "serious_illness"
SERIOUS_ILLNESS_PAID = "serious_illness_paid"
ASSISTANCE = "assistance"


@dataclass(frozen=True, slots=True)
class FurtherFunds:
    """What the further funds paid, the accumulator changes they make, and each fund's step."""

    hifob_pay: Decimal = ZERO
    hifmi_pay: Decimal = ZERO
    cvlserv_pay: Decimal = ZERO
    maf_pay: Decimal = ZERO
    steps: tuple[FundStep, ...] = ()
    changes: tuple[AccumulatorChange, ...] = ()

    @property
    def total(self) -> Decimal:
        """The further funds' sum (``fund_pay_sumamt − hifp_pay``)."""
        return self.hifob_pay + self.hifmi_pay + self.cvlserv_pay + self.maf_pay


@dataclass(frozen=True, slots=True)
class FundFacts:
    """What the further funds read of the visit already settled by the basic fund."""

    inscp_scp_amt: Decimal
    act_pay_dedc: Decimal
    hifp_pay: Decimal
    segments: Sequence[SegmentStep]
    cap_room: Decimal | None
    """The basic fund's cap room before the visit; None when its rule has no cap."""


def _round_exact(value: Fraction) -> Decimal:
    """Half up to the fen of an exact non-negative value."""
    return Decimal(math.floor(value * 100 + Fraction(1, 2))).scaleb(-2).quantize(FEN)


def _room(cap: Decimal | None, used: Decimal) -> Decimal | None:
    return None if cap is None else max(ZERO, cap - used)


def _held(share: Decimal, room: Decimal | None, left: Decimal) -> Decimal:
    return min(share, left) if room is None else min(share, room, left)


def _cap_text(cap: Decimal | None) -> str:
    return "no cap" if cap is None else f"cap {format_money(cap)} a year"


def beyond_cap(segments: Sequence[SegmentStep], room: Decimal | None) -> Fraction:
    """The part of the eligible amount whose basic share the cap cut off, exactly: walking the
    segments, the full-precision share reaches ``room`` at some point; what lies after it."""
    if room is None or sum((step.fund for step in segments), ZERO) <= room:
        return Fraction(0)
    reached, beyond, crossed = Fraction(0), Fraction(0), False
    for step in segments:
        if crossed:
            beyond += Fraction(step.amount)
        elif step.ratio > ZERO and reached + Fraction(step.fund) > room:
            beyond = Fraction(step.amount) - (Fraction(room) - reached) / Fraction(step.ratio)
            crossed = True
        reached += Fraction(step.fund)
    return beyond


def _serious_illness_share(
    illness: SeriousIllness, low_income: bool, counted: Decimal, selfpay: Decimal
) -> tuple[Decimal, Decimal | None, str]:
    """The unrounded share of [counted, counted + selfpay] above the threshold, the cap, and the terms."""
    threshold, bonus, cap = illness.threshold, ZERO, illness.cap
    terms = illness.low_income if low_income else None
    if terms is not None:
        threshold, bonus, cap = threshold * terms.threshold_factor, terms.ratio_bonus, terms.cap
    low, high = max(counted, threshold) - threshold, max(counted + selfpay, threshold) - threshold
    share = ZERO
    for position, segment in enumerate(illness.segments):
        end = illness.segments[position + 1].start if position + 1 < len(illness.segments) else None
        part = max(ZERO, (high if end is None else min(end, high)) - max(segment.start, low))
        share += part * min(ONE, segment.ratio + bonus)
    ratios = ", ".join(
        f"{format_decimal(min(ONE, s.ratio + bonus))} from {format_money(s.start)}" for s in illness.segments
    )
    who = "low-income terms, " if terms is not None else ""
    rule = f"{who}threshold {format_decimal(threshold)}, ratio {ratios} above it, {_cap_text(cap)}"
    return share, cap, rule


def further_funds(
    funds: Funds,
    facts: FundFacts,
    accumulators: Accumulators,
    *,
    low_income: bool = False,
    civil_servant: bool = False,
    assistance_category: str | None = None,
) -> FurtherFunds:
    """Apply the policy's further funds in order to what the basic fund left of the in-scope amount."""
    if not funds.named:
        return FurtherFunds()
    used = accumulators.value
    left = facts.inscp_scp_amt - facts.hifp_pay
    paid = {name: ZERO for name in ("hifob", "hifmi", "cvlserv", "maf")}
    steps: list[FundStep] = []
    changes: list[AccumulatorChange] = []

    if (supplementary := funds.supplementary) is not None:
        beyond = beyond_cap(facts.segments, facts.cap_room)
        share = _round_exact(beyond * Fraction(supplementary.ratio))
        room = _room(supplementary.cap, used(AccumulatorKind.FUND, SUPPLEMENTARY))
        paid["hifob"] = _held(share, room, left)
        rule = (
            f"ratio {format_decimal(supplementary.ratio)} above the basic cap, {_cap_text(supplementary.cap)}"
        )
        steps.append(FundStep(SUPPLEMENTARY, _round_exact(beyond), share, room, paid["hifob"], rule))
        changes.append(AccumulatorChange(AccumulatorKind.FUND, SUPPLEMENTARY, paid["hifob"]))
        left -= paid["hifob"]

    if (illness := funds.serious_illness) is not None:
        selfpay = left
        raw, cap, rule = _serious_illness_share(
            illness, low_income, used(AccumulatorKind.FUND, SERIOUS_ILLNESS), selfpay
        )
        share = round_fen(raw)
        room = _room(cap, used(AccumulatorKind.FUND, SERIOUS_ILLNESS_PAID))
        paid["hifmi"] = _held(share, room, left)
        steps.append(FundStep(SERIOUS_ILLNESS, selfpay, share, room, paid["hifmi"], rule))
        changes.append(AccumulatorChange(AccumulatorKind.FUND, SERIOUS_ILLNESS, selfpay))
        changes.append(AccumulatorChange(AccumulatorKind.FUND, SERIOUS_ILLNESS_PAID, paid["hifmi"]))
        left -= paid["hifmi"]

    if (subsidy := funds.civil_servant) is not None and civil_servant:
        dedc = facts.act_pay_dedc
        share = round_fen(dedc * subsidy.deductible_ratio + max(ZERO, left - dedc) * subsidy.selfpay_ratio)
        paid["cvlserv"] = min(share, left)
        rule = (
            f"{format_decimal(subsidy.deductible_ratio)} of the deductible, "
            f"{format_decimal(subsidy.selfpay_ratio)} of the rest of the self-pay"
        )
        steps.append(FundStep("civil_servant", left, share, None, paid["cvlserv"], rule))
        left -= paid["cvlserv"]

    assistance = funds.assistance
    if assistance is not None and assistance_category in assistance.categories:
        share = round_fen(left * assistance.ratio)
        room = _room(assistance.cap, used(AccumulatorKind.FUND, ASSISTANCE))
        paid["maf"] = _held(share, room, left)
        rule = (
            f"category {assistance_category}: ratio {format_decimal(assistance.ratio)}, "
            f"{_cap_text(assistance.cap)}"
        )
        steps.append(FundStep(ASSISTANCE, left, share, room, paid["maf"], rule))
        changes.append(AccumulatorChange(AccumulatorKind.FUND, ASSISTANCE, paid["maf"]))

    return FurtherFunds(
        paid["hifob"], paid["hifmi"], paid["cvlserv"], paid["maf"], tuple(steps), tuple(changes)
    )
