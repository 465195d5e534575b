"""Values the shared protos spell as enums or dates: filing categories, self-pay reasons, dates.

Money needs nothing here: the wire's ``int64`` fen and decimal strings convert with
:mod:`yidi_core.money` (``from_fen``, ``to_fen``, ``parse_decimal``, ``format_decimal``).
"""

from __future__ import annotations

from datetime import date

from google.type.date_pb2 import Date

from yidi.type.v1 import fee_item_pb2, filing_category_pb2
from yidi_core.catalogue import SelfPayReason
from yidi_core.errors import invalid

_CATEGORY_PREFIX = "FILING_CATEGORY_"

SELF_PAY_REASONS: dict[SelfPayReason, fee_item_pb2.SelfPayReason.ValueType] = {
    SelfPayReason.NOT_IN_CATALOGUE: fee_item_pb2.SELF_PAY_REASON_NOT_IN_CATALOGUE,
    SelfPayReason.CLASS_C: fee_item_pb2.SELF_PAY_REASON_CLASS_C,
    SelfPayReason.MED_TYPE_RESTRICTED: fee_item_pb2.SELF_PAY_REASON_RESTRICTED_MED_TYPE,
    SelfPayReason.DIAGNOSIS_RESTRICTED: fee_item_pb2.SELF_PAY_REASON_RESTRICTED_DIAGNOSIS,
    SelfPayReason.OVER_PRICE_CEILING: fee_item_pb2.SELF_PAY_REASON_OVER_PRICE_CEILING,
    SelfPayReason.FIRST_SELF_PAY: fee_item_pb2.SELF_PAY_REASON_FIRST_SELF_PAY,
}
"""The core's self-pay reasons as the wire's enum."""
SELF_PAY_REASON_OF: dict[int, SelfPayReason] = {number: reason for reason, number in SELF_PAY_REASONS.items()}
"""The wire's self-pay reasons as the core's (UNSPECIFIED and unknown numbers are absent)."""


def filing_category_from_proto(number: int, field: str = "filing_category") -> str | None:
    """A ``FilingCategory`` as the policy's ``ratio_adjustments`` key (``retiree_resettled`` …); None: not filed."""
    if number == filing_category_pb2.FILING_CATEGORY_UNSPECIFIED:
        return None
    try:
        name = filing_category_pb2.FilingCategory.Name(number)  # type: ignore[arg-type]
    except ValueError:
        raise invalid("INVALID_ARGUMENT", field, f"unknown filing category {number}") from None
    return name.removeprefix(_CATEGORY_PREFIX).lower()


def date_to_proto(day: date) -> Date:
    """A calendar day as ``google.type.Date``."""
    return Date(year=day.year, month=day.month, day=day.day)


def date_from_proto(message: Date, field: str) -> date:
    """A required ``google.type.Date``: unset is "is required", an impossible day is refused as the case format words it."""
    if (message.year, message.month, message.day) == (0, 0, 0):
        raise invalid("INVALID_ARGUMENT", field, "is required")
    text = f"{message.year:04d}-{message.month:02d}-{message.day:02d}"
    try:
        return date(message.year, message.month, message.day)
    except ValueError:
        raise invalid("INVALID_ARGUMENT", field, f"must be a date YYYY-MM-DD, got {text!r}") from None
