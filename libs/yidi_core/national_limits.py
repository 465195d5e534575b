"""The national limits every insured-place policy must respect (codes.md, "Policy facts the national rules fix").

A region sets its own ratios, but not below the national floor for out-of-area care: referred
and emergency patients at most 10 percentage points below the ordinary ratio, other temporary
patients at most 20, long-term out-of-area filers (resettled retirees, long-term residents,
posted employees) not reduced at all. Care without a filing counts at a factor in (0, 1]:
a factor of 0 would refuse what the policy claims to pay. The limits are data
(:data:`MAX_REDUCTION`), and :func:`limit_breaches` is called wherever a policy is checked
(:func:`yidi_core.policy.check_policy`), so an import, ``yidi calc`` and every settlement
refuse a policy that breaks one with ``POLICY_LIMIT_EXCEEDED`` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from yidi_core.errors import DomainError, invalid
from yidi_core.money import ONE, ZERO

LONG_TERM = ("retiree_resettled", "long_term_resident", "posted_employee")
"""The long-term filing categories (异地长期居住人员), whose ratio may not be lowered."""

MAX_REDUCTION: Mapping[str, Decimal] = {
    "referral": Decimal("0.10"),
    "emergency": Decimal("0.10"),
    "temporary_other": Decimal("0.20"),
    **{category: ZERO for category in LONG_TERM},
}
"""How far below the ordinary ratio each filing category's ratio may go (a category not listed: not at all)."""

REASON = "POLICY_LIMIT_EXCEEDED"


def limit_breaches(
    ratio_adjustments: Mapping[str, Decimal], unfiled_factors: Mapping[str, Decimal], path: str = "policy"
) -> list[DomainError]:
    """Every adjustment that lowers a category's ratio (each rule's ratio and each segment's alike, as
    the adjustment is added to every one) further than the national rules allow, and every factor
    for unfiled care outside (0, 1]; each names its field."""
    breaches = []
    for category, adjustment in ratio_adjustments.items():
        allowed = MAX_REDUCTION.get(category, ZERO)
        if adjustment < -allowed:
            breaches.append(
                invalid(
                    REASON,
                    f"{path}.ratio_adjustments.{category}",
                    f"lowers the ratio by {-adjustment}; the national rules allow {category} "
                    + (f"at most {allowed}" if allowed else "no reduction"),
                    metadata={"filing_category": category, "max_reduction": str(allowed)},
                )
            )
    for care, factor in unfiled_factors.items():
        if not ZERO < factor <= ONE:
            breaches.append(
                invalid(REASON, f"{path}.unfiled_factors.{care}", f"must lie in (0, 1], got {factor}")
            )
    return breaches
