"""Settlement results: the core's :class:`~yidi_core.settlement.Settlement` as the wire's
``SettlementResult`` (all money in fen), and classified lines (``ItemResult``) both ways.

The treatment place sends the bill already classified; the insured place reads those lines
back as the core's and applies its own policy with :func:`~yidi_core.settlement.settle_classified`,
so both places share one arithmetic.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from yidi.type.v1 import fee_item_pb2, settlement_result_pb2
from yidi_codec.catalogue import CLASS_BY_LEVEL
from yidi_codec.types import SELF_PAY_REASON_OF, SELF_PAY_REASONS
from yidi_core.catalogue import ItemClass, ItemResult, SelfPayReason
from yidi_core.errors import invalid
from yidi_core.money import ZERO, format_decimal, format_money, from_fen, parse_decimal, round_fen, to_fen
from yidi_core.policy import Rule
from yidi_core.settlement import CAP_EXHAUSTED, Settlement

_RATIO_PLACES = Decimal("0.0001")
_MEMOS = {
    SelfPayReason.NOT_IN_CATALOGUE: "目录外项目，全自费",
    SelfPayReason.CLASS_C: "丙类项目，全自费",
    SelfPayReason.MED_TYPE_RESTRICTED: "限定就医类别，全自费",
    SelfPayReason.DIAGNOSIS_RESTRICTED: "限定诊断，全自费",
    SelfPayReason.OVER_PRICE_CEILING: "超限价部分自付",
    SelfPayReason.FIRST_SELF_PAY: "乙类先行自付",
}


def accumulator_kind_to_proto(kind: str) -> settlement_result_pb2.AccumulatorKind.ValueType:
    """An accumulator kind (the core's, or a stored ``account``) as the wire's enum."""
    return settlement_result_pb2.AccumulatorKind.Value(f"ACCUMULATOR_KIND_{kind.upper()}")


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


def item_result_to_proto(item: ItemResult) -> fee_item_pb2.ItemResult:
    """One classified line for the wire, with a memo a window clerk can read out."""
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
        self_pay_reasons=[SELF_PAY_REASONS[reason] for reason in item.reasons],
        memo="；".join(_MEMOS[reason] for reason in item.reasons),
    )


def _optional_decimal(value: str, field: str) -> Decimal | None:
    return parse_decimal(value, field) if value.strip() else None


def item_result_from_proto(line: fee_item_pb2.ItemResult, index: int) -> ItemResult:
    """One classified line from the wire as the core's line split; bad fields named ``items[index].<field>``."""
    where = f"items[{index}]"
    item_class: ItemClass | None = CLASS_BY_LEVEL.get(line.chrgitm_lv)
    if line.chrgitm_lv and item_class is None:
        raise invalid("INVALID_CODE", f"{where}.chrgitm_lv", f"must be 01, 02 or 03, got {line.chrgitm_lv!r}")
    unknown = [reason for reason in line.self_pay_reasons if reason not in SELF_PAY_REASON_OF]
    if unknown:
        raise invalid("INVALID_ARGUMENT", f"{where}.self_pay_reasons", f"unknown reasons {unknown}")
    sn = line.feedetl_sn.strip()
    if not sn:
        raise invalid("INVALID_ARGUMENT", f"{where}.feedetl_sn", "is required")
    return ItemResult(
        sn=sn,
        code=line.med_list_codg,
        name="",
        amount=from_fen(line.det_item_fee_sumamt_fen),
        fulamt_ownpay=from_fen(line.fulamt_ownpay_amt_fen),
        overlmt_selfpay=from_fen(line.overlmt_amt_fen),
        preselfpay=from_fen(line.preselfpay_amt_fen),
        inscp=from_fen(line.inscp_scp_amt_fen),
        item_class=item_class,
        selfpay_ratio=_optional_decimal(line.selfpay_prop, f"{where}.selfpay_prop") or ZERO,
        price_ceiling=_optional_decimal(line.pric_uplmt_amt, f"{where}.pric_uplmt_amt"),
        reasons=tuple(SELF_PAY_REASON_OF[reason] for reason in line.self_pay_reasons),
    )


def _pool_ratio(settlement: Settlement) -> str:
    base = settlement.inscp_scp_amt - settlement.act_pay_dedc
    ratio = settlement.hifp_pay / base if base > ZERO else ZERO
    return format_decimal(ratio.quantize(_RATIO_PLACES, rounding=ROUND_HALF_UP))


def _fund_lines(settlement: Settlement) -> list[settlement_result_pb2.FundPayLine]:
    why = settlement.explanation
    steps = {step.fund: step for step in why.funds}
    owed = settlement.psn_part_amt - settlement.acct_pay
    lines = []
    room: Decimal | None
    for line in settlement.fund_lines:
        if line.source == "pooled":
            room = why.cap.room_before if why.cap else None
            considered, info = settlement.inscp_scp_amt, rule_summary(why.rule)
        elif line.source == "account":
            considered, room, info = settlement.psn_part_amt, why.account_balance, "个人账户支付个人负担部分"
        elif line.source == "family_account":
            considered, room, info = owed, why.family_account_balance, "门诊共济：家庭成员个人账户支付"
        else:
            step = steps[line.source]
            considered, room, info = step.base, step.room, step.rule
        lines.append(
            settlement_result_pb2.FundPayLine(
                fund_pay_type=line.fund_pay_type,
                fund_pay_type_name=line.name,
                inscp_scp_amt_fen=to_fen(considered),
                crt_payb_lmt_amt_fen=to_fen(ZERO if room is None else room),
                fund_payamt_fen=to_fen(line.amount),
                setl_proc_info=info,
                unlimited=room is None,
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
                amount_fen=to_fen(round_fen(step.amount)),  # unfiled care's factor can leave a fraction
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


def settlement_result_to_proto(
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
        hifob_pay_fen=to_fen(settlement.hifob_pay),
        hifmi_pay_fen=to_fen(settlement.hifmi_pay),
        cvlserv_pay_fen=to_fen(settlement.cvlserv_pay),
        maf_pay_fen=to_fen(settlement.maf_pay),
        acct_mulaid_pay_fen=to_fen(settlement.acct_mulaid_pay),
    )
    changes = []
    for change in settlement.changes:
        after = settlement.accumulators_after[change.kind][change.key]
        changes.append(
            settlement_result_pb2.AccumulatorChange(
                kind=accumulator_kind_to_proto(change.kind),
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
        items=[item_result_to_proto(item) for item in settlement.items],
        accumulator_changes=changes,
        explanation=_explanation(settlement),
        catalogue_version=catalogue_version,
        policy_version=policy_version,
    )
