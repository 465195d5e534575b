"""Fee lines are read on a fast path and, when refused, again field by field: both must agree."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from yidi_core.case_format import parse_items
from yidi_core.catalogue import FeeItem
from yidi_core.errors import DomainError

GOOD = {"sn": "1", "code": "001102000010000", "qty": "2", "price": "15.37", "amount": "30.74"}


def bill(bad: dict[str, Any]) -> list[dict[str, Any]]:
    """Three good lines with ``bad`` merged into the third (index 2)."""
    return [dict(GOOD, sn="1"), dict(GOOD, sn="2"), dict(GOOD, sn="3") | bad]


def test_a_well_formed_line_reads_as_the_values_written() -> None:
    assert parse_items([GOOD, {"sn": 7, "code": " C0203010340000000001 ", "qty": 3, "price": " 1.5 "}]) == (
        FeeItem("1", "001102000010000", Decimal("2"), Decimal("15.37"), Decimal("30.74")),
        FeeItem("7", "C0203010340000000001", Decimal("3"), Decimal("1.5"), None),
    )


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"sn": None}, "items[2].sn"),
        ({"sn": "  "}, "items[2].sn"),
        ({"code": "X123"}, "items[2].code"),
        ({"code": 5}, "items[2].code"),
        ({"qty": "-1"}, "items[2].qty"),
        ({"qty": 1.5}, "items[2].qty"),
        ({"price": "1.1234567"}, "items[2].price"),
        ({"price": "1e3"}, "items[2].price"),
        ({"amount": "3.001"}, "items[2].amount"),
        ({"amount": "1000000000000.00"}, "items[2].amount"),
        ({"qty": "x", "price": "y"}, "items[2].qty"),
    ],
)
def test_a_refused_line_names_its_first_bad_field(bad: dict[str, Any], field: str) -> None:
    with pytest.raises(DomainError) as refused:
        parse_items(bill(bad))
    assert [violation.field for violation in refused.value.violations] == [field]
    assert refused.value.message.startswith(f"{field}: ")


def test_a_line_that_is_not_an_object_is_named() -> None:
    with pytest.raises(DomainError) as refused:
        parse_items([GOOD, ["not", "an", "object"]])
    assert refused.value.violations[0].field == "items[1]"
