"""Insured-place policies (``yidi.catalogue.v1.Policy``) ↔ the core's :class:`~yidi_core.policy.Policy`.

On the wire money is fen and ratios are decimal strings; a single ratio travels as
``ratio``, segments as ``segments``. A policy read from the wire is checked as a whole by
:func:`~yidi_core.policy.check_policy`, as an imported one is. A policy version never
changes once imported, so :class:`ParsedPolicies` reads each version once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from yidi.catalogue.v1 import policy_pb2
from yidi_codec.built_once import BuiltOnce
from yidi_core.dictionaries import NATIONAL, psn_type_group
from yidi_core.errors import invalid
from yidi_core.money import MAX_AMOUNT_FEN, ZERO, format_decimal, from_fen, parse_decimal, to_fen
from yidi_core.policy import ANY, DeductibleScope, Policy, Rule, Segment, check_policy

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
        segments=[]
        if single
        else [
            policy_pb2.Segment(from_fen=to_fen(segment.start), ratio=format_decimal(segment.ratio))
            for segment in rule.segments
        ],
        segment_key=rule.segment_key or "",
        cap_fen=0 if rule.cap is None else to_fen(rule.cap),
        has_cap=rule.cap is not None,
        cap_key=rule.cap_key or "",
    )


def policy_to_proto(policy: Policy) -> policy_pb2.Policy:
    """The policy's rules, ratio adjustments and unfiled factors for the wire (its version fields are the store's to set)."""
    return policy_pb2.Policy(
        rules=[_rule_to_proto(rule) for rule in policy.rules],
        ratio_adjustments={key: format_decimal(value) for key, value in policy.ratio_adjustments.items()},
        unfiled_factors={key: format_decimal(value) for key, value in policy.unfiled_factors.items()},
        unfiled_direct=policy.unfiled_direct,
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


def _rule_from_proto(rule: policy_pb2.PolicyRule, path: str) -> Rule:
    if rule.segments:
        segments = tuple(
            Segment(
                _amount(s.from_fen, f"{path}.segments[{i}].from"),
                _ratio(s.ratio, f"{path}.segments[{i}].ratio"),
            )
            for i, s in enumerate(rule.segments)
        )
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
    policy = Policy(rules, adjustments, factors, message.unfiled_direct)
    check_policy(policy, path)
    return policy


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
