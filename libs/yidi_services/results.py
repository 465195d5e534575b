"""The core's :class:`~yidi_core.settlement.Settlement` as the wire's ``SettlementResult`` (all money in fen)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from yidi.type.v1 import fee_item_pb2, settlement_result_pb2
from yidi_core.accumulators import AccumulatorKind
from yidi_core.catalogue import ItemResult, SelfPayReason
from yidi_core.money import ZERO, format_decimal, format_money, to_fen
from yidi_core.policy import Rule
from yidi_core.settlement import CAP_EXHAUSTED, Settlement

_RATIO_PLACES = Decimal("0.0001")
_REASONS = {
    SelfPayReason.NOT_IN_CATALOGUE: (fee_item_pb2.SELF_PAY_REASON_NOT_IN_CATALOGUE, "目录外项目，全自费"),
    SelfPayReason.CLASS_C: (fee_item_pb2.SELF_PAY_REASON_CLASS_C, "丙类项目，全自费"),
    SelfPayReason.MED_TYPE_RESTRICTED: (
        fee_item_pb2.SELF_PAY_REASON_RESTRICTED_MED_TYPE,
        "限定就医类别，全自费",
    ),
    SelfPayReason.DIAGNOSIS_RESTRICTED: (
        fee_item_pb2.SELF_PAY_REASON_RESTRICTED_DIAGNOSIS,
        "限定诊断，全自费",
    ),
    SelfPayReason.OVER_PRICE_CEILING: (fee_item_pb2.SELF_PAY_REASON_OVER_PRICE_CEILING, "超限价部分自付"),
    SelfPayReason.FIRST_SELF_PAY: (fee_item_pb2.SELF_PAY_REASON_FIRST_SELF_PAY, "乙类先行自付"),
}
_KINDS = {
    AccumulatorKind.DEDUCTIBLE: settlement_result_pb2.ACCUMULATOR_KIND_DEDUCTIBLE,
    AccumulatorKind.SEGMENT: settlement_result_pb2.ACCUMULATOR_KIND_SEGMENT,
    AccumulatorKind.CAP: settlement_result_pb2.ACCUMULATOR_KIND_CAP,
}


def rule_summary(rule: Rule) -> str:
    """The rule in one line, e.g. ``med_types 14 · psn_types retired · levels * → 80%``."""
    if len(rule.segments) == 1:
        payment = f"{format_decimal(rule.segments[0].ratio * 100)}%"
    else:
        payment = ", ".join(
            f"{format_decimal(s.ratio * 100)}% from {format_money(s.start)}" for s in rule.segments
        )
    cap = "" if rule.cap is None else f", cap {format_money(rule.cap)} ({rule.cap_key or 'this visit'})"
    return (
        f"med_types {','.join(rule.med_types)} · psn_types {','.join(rule.psn_types)} · "
        f"levels {','.join(rule.institution_levels)} → {payment}{cap}"
    )


def item_result_message(item: ItemResult) -> fee_item_pb2.ItemResult:
    return fee_item_pb2.ItemResult(
        feedetl_sn=item.sn,
        med_list_codg=item.code,
        det_item_fee_sumamt_fen=to_fen(item.amount),
        chrgitm_lv=item.item_class.chrgitm_lv if item.item_class else "",
        selfpay_prop=format_decimal(item.selfpay_ratio) if item.item_class else "",
        pric_uplmt_amt="" if item.price_ceiling is None else format_decimal(item.price_ceiling),
        fulamt_ownpay_amt_fen=to_fen(item.fulamt_ownpay),
        overlmt_amt_fen=to_fen(item.overlmt_selfpay),
        preselfpay_amt_fen=to_fen(item.preselfpay),
        inscp_scp_amt_fen=to_fen(item.inscp),
        self_pay_reasons=[_REASONS[reason][0] for reason in item.reasons],
        memo="；".join(_REASONS[reason][1] for reason in item.reasons),
    )


def _pool_ratio(settlement: Settlement) -> str:
    base = settlement.inscp_scp_amt - settlement.act_pay_dedc
    ratio = settlement.hifp_pay / base if base > ZERO else ZERO
    return format_decimal(ratio.quantize(_RATIO_PLACES, rounding=ROUND_HALF_UP))


def _fund_lines(settlement: Settlement) -> list[settlement_result_pb2.FundPayLine]:
    why = settlement.explanation
    lines = []
    for position, line in enumerate(settlement.fund_lines):
        pooled = position == 0
        limited = why.cap if pooled else None
        lines.append(
            settlement_result_pb2.FundPayLine(
                fund_pay_type=line.fund_pay_type,
                fund_pay_type_name=line.name,
                inscp_scp_amt_fen=to_fen(settlement.inscp_scp_amt if pooled else settlement.psn_part_amt),
                crt_payb_lmt_amt_fen=to_fen(
                    limited.room_before if limited else ZERO if pooled else why.account_balance
                ),
                fund_payamt_fen=to_fen(line.amount),
                setl_proc_info=rule_summary(why.rule) if pooled else "个人账户支付个人负担部分",
                unlimited=pooled and limited is None,
            )
        )
    return lines


def _explanation(settlement: Settlement) -> settlement_result_pb2.Explanation:
    why = settlement.explanation
    rule = why.rule
    return settlement_result_pb2.Explanation(
        rule_index=why.rule_index,
        rule_summary=rule_summary(rule),
        deductible_fen=to_fen(rule.deductible),
        deductible_scope=rule.deductible_scope.value,
        deductible_key=rule.annual_deductible_key or "",
        deductible_counted_before_fen=to_fen(why.deductible_counted_before),
        filing_category=why.filing_category or "",
        ratio_adjustment=format_decimal(why.ratio_adjustment) if why.ratio_adjustment else "",
        segments=[
            settlement_result_pb2.SegmentExplanation(
                from_fen=to_fen(step.start),
                to_fen=0 if step.end is None else to_fen(step.end),
                open_ended=step.end is None,
                base_ratio=format_decimal(step.base_ratio),
                adjusted_ratio=format_decimal(step.ratio),
                amount_fen=to_fen(step.amount),
                fund_raw=format_decimal(step.fund),
            )
            for step in why.segments
        ],
        cap_key=why.cap.key or "" if why.cap else "",
        cap_fen=to_fen(why.cap.cap) if why.cap else 0,
        cap_room_before_fen=to_fen(why.cap.room_before) if why.cap else 0,
        cap_room_after_fen=to_fen(why.cap.room_after) if why.cap else 0,
        account_used=why.use_account and why.has_account,
        lines=why.sentences(),
    )


def settlement_result(
    settlement: Settlement, year: int, catalogue_version: str, policy_version: str
) -> settlement_result_pb2.SettlementResult:
    """The full result: amounts, fund lines, items, the accumulator changes it would make, and why.

    Shared by Estimate, pre-settlement and settlement, so the three answer in one shape.
    """
    why = settlement.explanation
    amounts = settlement_result_pb2.SettlementAmounts(
        medfee_sumamt_fen=to_fen(settlement.medfee_sumamt),
        fulamt_ownpay_amt_fen=to_fen(settlement.fulamt_ownpay_amt),
        overlmt_selfpay_fen=to_fen(settlement.overlmt_selfpay),
        preselfpay_amt_fen=to_fen(settlement.preselfpay_amt),
        inscp_scp_amt_fen=to_fen(settlement.inscp_scp_amt),
        act_pay_dedc_fen=to_fen(settlement.act_pay_dedc),
        hifp_pay_fen=to_fen(settlement.hifp_pay),
        pool_prop_selfpay=_pool_ratio(settlement),
        fund_pay_sumamt_fen=to_fen(settlement.fund_pay_sumamt),
        psn_part_amt_fen=to_fen(settlement.psn_part_amt),
        acct_pay_fen=to_fen(settlement.acct_pay),
        psn_cash_pay_fen=to_fen(settlement.psn_cash_pay),
        balc_fen=to_fen(why.account_balance - settlement.acct_pay),
        cap_exhausted=CAP_EXHAUSTED in settlement.notices,
    )
    changes = []
    for change in settlement.changes:
        after = settlement.accumulators_after[change.kind][change.key]
        changes.append(
            settlement_result_pb2.AccumulatorChange(
                kind=_KINDS[change.kind],
                key=change.key,
                year=year,
                before_fen=to_fen(after - change.delta),
                delta_fen=to_fen(change.delta),
                after_fen=to_fen(after),
            )
        )
    return settlement_result_pb2.SettlementResult(
        amounts=amounts,
        fund_lines=_fund_lines(settlement),
        items=[item_result_message(item) for item in settlement.items],
        accumulator_changes=changes,
        explanation=_explanation(settlement),
        catalogue_version=catalogue_version,
        policy_version=policy_version,
    )
