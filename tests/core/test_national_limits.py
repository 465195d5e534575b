"""The national limits through the core's API: every policy parsed (case format or wire) keeps them,
and every settlement refuses a policy that does not (POLICY_LIMIT_EXCEEDED, naming the field)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from yidi_codec.policies import policy_from_proto, policy_to_proto
from yidi_core.case_format import parse_policy
from yidi_core.errors import DomainError
from yidi_core.national_limits import LONG_TERM, MAX_REDUCTION
from yidi_core.policy import Policy, check_policy

RULE = {"med_types": ["*"], "psn_types": ["*"], "institution_levels": ["*"], "ratio": "0.05"}
LIMITS = {"referral": "0.10", "emergency": "0.10", "temporary_other": "0.20"} | dict.fromkeys(LONG_TERM, "0")


def _refused(block: dict[str, object]) -> list[str]:
    with pytest.raises(DomainError) as refused:
        parse_policy({"rules": [RULE], **block})
    assert refused.value.reason_code == "POLICY_LIMIT_EXCEEDED"
    assert refused.value.reason.grpc_code == "INVALID_ARGUMENT"
    return [violation.field for violation in refused.value.violations]


def test_the_limits_are_the_national_rules() -> None:
    assert {category: Decimal(limit) for category, limit in LIMITS.items()} == MAX_REDUCTION


@pytest.mark.parametrize(("category", "limit"), sorted(LIMITS.items()))
def test_each_category_may_be_lowered_to_its_limit_and_no_further(category: str, limit: str) -> None:
    at_limit = parse_policy({"rules": [RULE], "ratio_adjustments": {category: f"-{limit}"}})
    assert at_limit.adjustment(category) == -Decimal(limit)
    beyond = f"-{Decimal(limit) + Decimal('0.000001')}"
    assert _refused({"ratio_adjustments": {category: beyond}}) == [f"policy.ratio_adjustments.{category}"]
    assert parse_policy({"rules": [RULE], "ratio_adjustments": {category: "0.30"}}).adjustment(
        category
    ) == Decimal("0.30")


def test_every_breach_is_named_and_unfiled_factors_lie_in_zero_to_one() -> None:
    block = {
        "ratio_adjustments": {"long_term_resident": "-0.50", "referral": "-0.10", "temporary_other": "-0.30"},
        "unfiled_factors": {"emergency": "0", "unreferred": "1"},
    }
    assert _refused(block) == [
        "policy.ratio_adjustments.long_term_resident",
        "policy.ratio_adjustments.temporary_other",
        "policy.unfiled_factors.emergency",
    ]


def test_a_policy_from_the_wire_and_one_built_in_code_are_held_to_the_limits() -> None:
    valid = parse_policy({"rules": [RULE], "unfiled_factors": {"unreferred": "0.50"}, "unfiled_direct": True})
    assert policy_from_proto(policy_to_proto(valid)) == valid
    message = policy_to_proto(valid)
    message.ratio_adjustments["posted_employee"] = "-0.05"
    with pytest.raises(DomainError) as refused:
        policy_from_proto(message)
    assert refused.value.reason_code == "POLICY_LIMIT_EXCEEDED"
    assert [v.field for v in refused.value.violations] == ["policy.ratio_adjustments.posted_employee"]
    built = Policy(valid.rules, {"retiree_resettled": Decimal("-0.01")})
    with pytest.raises(DomainError, match="POLICY_LIMIT_EXCEEDED"):
        check_policy(built)


def test_settling_unfiled_care_directly_needs_its_factor() -> None:
    with pytest.raises(DomainError) as refused:
        parse_policy({"rules": [RULE], "unfiled_factors": {"emergency": "0.70"}, "unfiled_direct": True})
    assert refused.value.reason_code == "INVALID_POLICY"
    assert [v.field for v in refused.value.violations] == ["policy.unfiled_factors.unreferred"]
    assert not parse_policy({"rules": [RULE]}).unfiled_direct
