"""Insured-place policies (``yidi.catalogue.v1.Policy``) ↔ the core's :class:`~yidi_core.policy.Policy`.

On the wire money is fen and ratios are decimal strings; a single ratio travels as
``ratio``, segments as ``segments``. A policy read from the wire is checked as a whole by
:func:`~yidi_core.policy.check_policy`, as an imported one is. A policy version never
changes once imported, so :class:`ParsedPolicies` reads each version once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from yidi.catalogue.v1 import policy_pb2
from yidi_codec.built_once import BuiltOnce
from yidi_core.dictionaries import NATIONAL, psn_type_group
from yidi_core.errors import invalid
from yidi_core.money import MAX_AMOUNT_FEN, ZERO, format_decimal, from_fen, parse_decimal, to_fen
from yidi_core.policy import (
    ANY,
    Assistance,
    CivilServant,
    DeductibleScope,
    Funds,
    LowIncome,
    Policy,
    Rule,
    Segment,
    SeriousIllness,
    Supplementary,
    check_policy,
)

_SCOPES = {
    DeductibleScope.PER_VISIT: policy_pb2.DEDUCTIBLE_SCOPE_PER_VISIT,
    DeductibleScope.ANNUAL: policy_pb2.DEDUCTIBLE_SCOPE_ANNUAL,
}
_SCOPE_OF = {number: scope for scope, number in _SCOPES.items()}


def _rule_to_proto(rule: Rule) -> policy_pb2.PolicyRule:
    single = len(rule.segments) == 1
    return policy_pb2.PolicyRule(
        med_types=rule.med_types,
        psn_types=rule.psn_types,
        institution_levels=rule.institution_levels,
        deductible_fen=to_fen(rule.deductible),
        deductible_scope=_SCOPES[rule.deductible_scope],
        deductible_key=rule.deductible_key or "",
        ratio=format_decimal(rule.segments[0].ratio) if single else "",
        segments=[] if single else _segments_to_proto(rule.segments),
        segment_key=rule.segment_key or "",
        cap_fen=0 if rule.cap is None else to_fen(rule.cap),
        has_cap=rule.cap is not None,
        cap_key=rule.cap_key or "",
    )


def _cap_fields(cap: Decimal | None) -> dict[str, Any]:
    return {"cap_fen": 0 if cap is None else to_fen(cap), "has_cap": cap is not None}


def _segments_to_proto(segments: Sequence[Segment]) -> list[policy_pb2.Segment]:
    return [policy_pb2.Segment(from_fen=to_fen(s.start), ratio=format_decimal(s.ratio)) for s in segments]


def _funds_to_proto(funds: Funds) -> policy_pb2.Funds | None:
    if not funds.named:
        return None
    message = policy_pb2.Funds()
    if (supplementary := funds.supplementary) is not None:
        message.supplementary.CopyFrom(
            policy_pb2.SupplementaryFund(
                ratio=format_decimal(supplementary.ratio), **_cap_fields(supplementary.cap)
            )
        )
    if (illness := funds.serious_illness) is not None:
        low = illness.low_income
        message.serious_illness.CopyFrom(
            policy_pb2.SeriousIllnessFund(
                threshold_fen=to_fen(illness.threshold),
                segments=_segments_to_proto(illness.segments),
                low_income=None
                if low is None
                else policy_pb2.LowIncomeTerms(
                    threshold_factor=format_decimal(low.threshold_factor),
                    ratio_bonus=format_decimal(low.ratio_bonus),
                    **_cap_fields(low.cap),
                ),
                **_cap_fields(illness.cap),
            )
        )
    if (civil := funds.civil_servant) is not None:
        message.civil_servant.CopyFrom(
            policy_pb2.CivilServantFund(
                deductible_ratio=format_decimal(civil.deductible_ratio),
                selfpay_ratio=format_decimal(civil.selfpay_ratio),
            )
        )
    if (assistance := funds.assistance) is not None:
        message.assistance.CopyFrom(
            policy_pb2.AssistanceFund(
                ratio=format_decimal(assistance.ratio),
                categories=assistance.categories,
                **_cap_fields(assistance.cap),
            )
        )
    return message


def policy_to_proto(policy: Policy) -> policy_pb2.Policy:
    """The policy's rules, ratio adjustments, unfiled factors, further funds and family account for the
    wire (its version fields are the store's to set)."""
    return policy_pb2.Policy(
        rules=[_rule_to_proto(rule) for rule in policy.rules],
        ratio_adjustments={key: format_decimal(value) for key, value in policy.ratio_adjustments.items()},
        unfiled_factors={key: format_decimal(value) for key, value in policy.unfiled_factors.items()},
        unfiled_direct=policy.unfiled_direct,
        funds=_funds_to_proto(policy.funds),
        family_account=policy.family_account,
    )


def _code(dictionary: str) -> Callable[[str, str], str]:
    def check(value: str, field: str) -> str:
        return NATIONAL.check(dictionary, value.strip(), field).code

    return check


def _psn_type(value: str, field: str) -> str:
    text = value.strip()
    if not text or psn_type_group(text) is None:
        raise invalid(
            "INVALID_CODE", field, f"must be employed, retired, resident or a 4-digit psn_type, got {value!r}"
        )
    return text


def _listed(values: Sequence[str], field: str, check: Callable[[str, str], str]) -> tuple[str, ...]:
    return tuple(value if value == ANY else check(value, f"{field}[{i}]") for i, value in enumerate(values))


def _amount(fen: int, field: str) -> Decimal:
    if not 0 <= fen <= MAX_AMOUNT_FEN:
        raise invalid("INVALID_ARGUMENT", field, f"must be 0 to {MAX_AMOUNT_FEN} fen, got {fen}")
    return from_fen(fen)


def _ratio(value: str, field: str) -> Decimal:
    """Range is the policy check's business (INVALID_POLICY); here only the shape."""
    return parse_decimal(value, field, max_places=6, signed=True)


def _key(value: str, field: str) -> str | None:
    if not value:
        return None
    if not value.strip():
        raise invalid("INVALID_ARGUMENT", field, f"must be a non-empty string, got {value!r}")
    return value.strip()


def _segments_from_proto(segments: Sequence[policy_pb2.Segment], path: str) -> tuple[Segment, ...]:
    return tuple(
        Segment(_amount(s.from_fen, f"{path}[{i}].from"), _ratio(s.ratio, f"{path}[{i}].ratio"))
        for i, s in enumerate(segments)
    )


def _rule_from_proto(rule: policy_pb2.PolicyRule, path: str) -> Rule:
    if rule.segments:
        segments = _segments_from_proto(rule.segments, f"{path}.segments")
    else:
        segments = (Segment(ZERO, _ratio(rule.ratio, f"{path}.ratio")),)
    scope = _SCOPE_OF.get(rule.deductible_scope)
    if scope is None:
        raise invalid(
            "INVALID_POLICY",
            f"{path}.deductible_scope",
            f"must be per_visit or annual, got {rule.deductible_scope}",
        )
    return Rule(
        med_types=_listed(rule.med_types, f"{path}.med_types", _code("med_type")),
        psn_types=_listed(rule.psn_types, f"{path}.psn_types", _psn_type),
        institution_levels=_listed(
            rule.institution_levels, f"{path}.institution_levels", _code("institution_level")
        ),
        deductible=_amount(rule.deductible_fen, f"{path}.deductible"),
        deductible_scope=scope,
        segments=segments,
        deductible_key=_key(rule.deductible_key, f"{path}.deductible_key"),
        segment_key=_key(rule.segment_key, f"{path}.segment_key"),
        cap=_amount(rule.cap_fen, f"{path}.cap") if rule.has_cap else None,
        cap_key=_key(rule.cap_key, f"{path}.cap_key"),
    )


def policy_from_proto(message: policy_pb2.Policy, path: str = "policy") -> Policy:
    """The core's policy, every field named ``<path>.rules[i].<field>`` as the case format names it
    when refused, then checked as a whole (``INVALID_POLICY`` names every problem)."""
    rules = tuple(
        _rule_from_proto(rule, f"{path}.rules[{index}]") for index, rule in enumerate(message.rules)
    )
    adjustments_path = f"{path}.ratio_adjustments"
    category = _code("filing_category")
    adjustments = {
        category(key, adjustments_path): _ratio(value, f"{adjustments_path}.{key}")
        for key, value in message.ratio_adjustments.items()
    }
    factors_path = f"{path}.unfiled_factors"
    factors = {key: _ratio(value, f"{factors_path}.{key}") for key, value in message.unfiled_factors.items()}
    funds = _funds_from_proto(message.funds, f"{path}.funds") if message.HasField("funds") else Funds()
    policy = Policy(
        rules,
        adjustments,
        factors,
        unfiled_direct=message.unfiled_direct,
        funds=funds,
        family_account=message.family_account,
    )
    check_policy(policy, path)
    return policy


def _cap(cap_fen: int, has_cap: bool, field: str) -> Decimal | None:
    return _amount(cap_fen, field) if has_cap else None


def _funds_from_proto(message: policy_pb2.Funds, path: str) -> Funds:
    """The further funds, each field named as the case format names it when refused."""
    supplementary = illness = civil = assistance = None
    if message.HasField("supplementary"):
        where, fund = f"{path}.supplementary", message.supplementary
        supplementary = Supplementary(
            _ratio(fund.ratio, f"{where}.ratio"), _cap(fund.cap_fen, fund.has_cap, f"{where}.cap")
        )
    if message.HasField("serious_illness"):
        where, ill = f"{path}.serious_illness", message.serious_illness
        low = None
        if ill.HasField("low_income"):
            terms, at = ill.low_income, f"{where}.low_income"
            low = LowIncome(
                _ratio(terms.threshold_factor or "1", f"{at}.threshold_factor"),
                _ratio(terms.ratio_bonus or "0", f"{at}.ratio_bonus"),
                _cap(terms.cap_fen, terms.has_cap, f"{at}.cap"),
            )
        illness = SeriousIllness(
            threshold=_amount(ill.threshold_fen, f"{where}.threshold"),
            segments=_segments_from_proto(ill.segments, f"{where}.segments"),
            cap=_cap(ill.cap_fen, ill.has_cap, f"{where}.cap"),
            low_income=low,
        )
    if message.HasField("civil_servant"):
        where, subsidy = f"{path}.civil_servant", message.civil_servant
        civil = CivilServant(
            _ratio(subsidy.deductible_ratio, f"{where}.deductible_ratio"),
            _ratio(subsidy.selfpay_ratio, f"{where}.selfpay_ratio"),
        )
    if message.HasField("assistance"):
        where, aid = f"{path}.assistance", message.assistance
        assistance = Assistance(
            _ratio(aid.ratio, f"{where}.ratio"),
            _cap(aid.cap_fen, aid.has_cap, f"{where}.cap"),
            tuple(category.strip() for category in aid.categories),
        )
    return Funds(supplementary, illness, civil, assistance)


DEFAULT_MAX_POLICIES = 256


class ParsedPolicies:
    """Policies by version id, and import time, should two nodes share an id: each read once
    (bounded, least recently used first out)."""

    def __init__(self, max_entries: int = DEFAULT_MAX_POLICIES) -> None:
        self._built: BuiltOnce[Policy] = BuiltOnce(max_entries)

    def parsed(self, message: policy_pb2.Policy) -> Policy:
        """The core's policy for ``message``, read on first sight of its version."""
        key = (message.version_id, message.import_time.seconds, message.import_time.nanos)
        return self._built.get(key, lambda: policy_from_proto(message))
