"""Fee lines are read on a fast path and, when refused, again field by field: both must agree."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yidi_core.case_format import check_case_item_code, parse_items
from yidi_core.catalogue import FeeItem
from yidi_core.errors import DomainError
from yidi_core.money import parse_decimal, parse_money

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
        ({"code": "X 123"}, "items[2].code"),
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


_VALUES = st.one_of(
    st.sampled_from(
        [
            "1",
            "2.5",
            " 3 ",
            "0",
            "15.370001",
            "1.1234567",
            "1e3",
            "-1",
            "",
            "  ",
            "１２",
            "30.74",
            "999999999999.99",
        ]
    ),
    st.sampled_from(["1000000000000.00", "001102000010000", "C0203010340000000001", " X1 ", "X123"]),
    st.integers(min_value=-2, max_value=10**16),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=6),
)
_LINE = st.dictionaries(st.sampled_from(["sn", "code", "qty", "price", "amount"]), _VALUES, max_size=5)
_GOOD_LINE = st.fixed_dictionaries(
    {
        "sn": st.text(alphabet="0123456789AB", min_size=1, max_size=4),
        "code": st.sampled_from(["001102000010000", "C0203010340000000001", "XJ01DDT071B002010100003"]),
        "qty": st.decimals(min_value=0, max_value=999, places=2).map(str),
        "price": st.decimals(min_value=0, max_value=99999, places=4).map(str),
    },
    optional={"amount": st.decimals(min_value=0, max_value=10**6, places=2).map(str)},
)


def _reference(lines: list[Any]) -> tuple[FeeItem, ...] | None:
    """The lines as the case format defines them, each field read by the core's public checks; None if refused."""
    items = []
    try:
        for line in lines:
            if not isinstance(line, dict):
                return None
            sn = line.get("sn")
            if isinstance(sn, bool) or sn is None or (isinstance(sn, str) and not sn.strip()):
                return None
            if not isinstance(sn, int | str):
                return None
            amount = line.get("amount")
            items.append(
                FeeItem(
                    str(sn).strip(),
                    check_case_item_code(line.get("code"), "code"),
                    parse_decimal(line.get("qty"), "qty", max_places=6),
                    parse_decimal(line.get("price"), "price", max_places=6),
                    None if amount is None else parse_money(amount, "amount"),
                )
            )
    except DomainError:
        return None
    return tuple(items)


def _read(lines: list[Any]) -> tuple[FeeItem, ...] | None:
    try:
        return parse_items(lines)
    except DomainError:
        return None


_ONE_FIELD_CHANGED = st.builds(
    lambda line, key, value: line | {key: value},
    _GOOD_LINE,
    st.sampled_from(["sn", "code", "qty", "price", "amount"]),
    _VALUES,
)


@given(st.lists(st.one_of(_GOOD_LINE, _ONE_FIELD_CHANGED, _LINE), max_size=6))
@settings(max_examples=400)
def test_every_bill_reads_as_each_field_checked_on_its_own_reads(lines: list[Any]) -> None:
    assert _read(lines) == _reference(lines)
