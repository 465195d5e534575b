"""Catalogue classification of fee items (就医地目录): how much of each line the fund may consider.

"Treatment-place catalogue": the class of an item (甲/乙/丙), the first self-pay ratio of a
class B item, its price ceiling and its restriction come from the catalogue in force where
the patient is treated. This module splits one fee line into the four parts of
settlement-rules.md ("Per item") and says why any part is the patient's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from yidi_core.errors import invalid
from yidi_core.money import MAX_AMOUNT, ZERO, round_fen

# A given line amount may differ from round(qty × price) by at most one fen (HIS rounding).
AMOUNT_TOLERANCE = Decimal("0.01")


class ItemClass(StrEnum):
    """National charge-item class (``chrgitm_lv``): 甲类 A, 乙类 B, 丙类/自费 C."""

    A = "A"
    B = "B"
    C = "C"

    @property
    def chrgitm_lv(self) -> str:
        """The national dictionary code: 01, 02, 03."""
        return {"A": "01", "B": "02", "C": "03"}[self.value]


class SelfPayReason(StrEnum):
    """Why (part of) a line is the patient's: what the window clerk tells the patient."""

    NOT_IN_CATALOGUE = "NOT_IN_CATALOGUE"
    CLASS_C = "CLASS_C"
    MED_TYPE_RESTRICTED = "MED_TYPE_RESTRICTED"
    DIAGNOSIS_RESTRICTED = "DIAGNOSIS_RESTRICTED"
    OVER_PRICE_CEILING = "OVER_PRICE_CEILING"
    FIRST_SELF_PAY = "FIRST_SELF_PAY"


@dataclass(frozen=True, slots=True)
class Restriction:
    """限定支付范围: the medical types and diagnosis prefixes under which the fund pays.

    An empty tuple does not restrict. Both given: both must hold.
    """

    med_types: tuple[str, ...] = ()
    diagnosis_prefixes: tuple[str, ...] = ()

    def unmet(self, med_type: str, diagnoses: Iterable[str]) -> SelfPayReason | None:
        """The reason the restriction fails for this visit, or None when it holds."""
        if self.med_types and med_type not in self.med_types:
            return SelfPayReason.MED_TYPE_RESTRICTED
        prefixes = self.diagnosis_prefixes
        if prefixes and not any(code.startswith(prefixes) for code in diagnoses):
            return SelfPayReason.DIAGNOSIS_RESTRICTED
        return None


# Looked up once: enum member access goes through a descriptor on every use.
_CLASS_B, _CLASS_C = ItemClass.B, ItemClass.C
_UNCATALOGUED = (SelfPayReason.NOT_IN_CATALOGUE,)
_OVER_CEILING = (SelfPayReason.OVER_PRICE_CEILING,)
_FIRST_SELF_PAY = (SelfPayReason.FIRST_SELF_PAY,)


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One item of the treatment-place catalogue version in force on the service date."""

    code: str
    name: str
    item_class: ItemClass
    selfpay_ratio: Decimal = ZERO
    price_ceiling: Decimal | None = None
    restriction: Restriction | None = None


class FeeItem(NamedTuple):
    """One uploaded fee line (费用明细): serial number, national code, quantity, unit price.

    A named tuple like :class:`ItemResult`, and for the same reason: a bill reads hundreds.
    """

    sn: str
    code: str
    qty: Decimal
    price: Decimal
    amount: Decimal | None = None


class ItemResult(NamedTuple):
    """One line split as the rules say: ``amount = fulamt_ownpay + overlmt_selfpay + preselfpay + inscp``.

    ``item_class`` is None for a code missing from the catalogue; ``reasons`` lists why any
    part is self-paid, in the order the rules apply them. A named tuple, not a frozen
    dataclass: a bill builds hundreds of these and a tuple is several times cheaper to make.
    """

    sn: str
    code: str
    name: str
    amount: Decimal
    fulamt_ownpay: Decimal
    overlmt_selfpay: Decimal
    preselfpay: Decimal
    inscp: Decimal
    item_class: ItemClass | None
    selfpay_ratio: Decimal
    price_ceiling: Decimal | None
    reasons: tuple[SelfPayReason, ...]


_new_result = tuple.__new__


def line_amount(item: FeeItem, index: int) -> Decimal:
    """The line's amount: as given (within one fen of qty × price), else *round*(qty × price).

    ``index`` is the line's position in the bill, named in the error (``items[index].amount``).
    """
    product = item.qty * item.price
    if product > MAX_AMOUNT:
        raise invalid(
            "INVALID_ARGUMENT",
            f"items[{index}].qty",
            f"qty {item.qty} × price {item.price} exceeds the largest amount {MAX_AMOUNT}",
            metadata={"sn": item.sn},
        )
    given = item.amount
    # A HIS nearly always sends exactly qty × price: that is within a fen of its rounding (which
    # moves it by half a fen at most), so it is accepted without rounding anything.
    if given is not None and given == product:
        return given
    computed = round_fen(product)
    if given is None:
        return computed
    if abs(given - computed) > AMOUNT_TOLERANCE:
        raise invalid(
            "AMOUNT_MISMATCH",
            f"items[{index}].amount",
            f"amount {item.amount} differs from qty {item.qty} × price {item.price} = {computed}",
            metadata={"sn": item.sn},
        )
    return given


def classify_item(
    item: FeeItem,
    amount: Decimal,
    entry: CatalogueEntry | None,
    med_type: str,
    diagnoses: Iterable[str],
) -> ItemResult:
    """Split one line by the catalogue entry in force (settlement-rules.md, "Per item", steps 2–5)."""
    # Built with tuple.__new__ throughout: this runs once per fee line on the settlement hot path,
    # and a named tuple's own __new__ is a Python function with twelve arguments, four times dearer.
    if entry is None:
        return _new_result(
            ItemResult,
            (item.sn, item.code, "", amount, amount, ZERO, ZERO, ZERO, None, ZERO, None, _UNCATALOGUED),
        )
    item_class = entry.item_class
    excluded = (
        SelfPayReason.CLASS_C
        if item_class is _CLASS_C
        else entry.restriction.unmet(med_type, diagnoses)
        if entry.restriction
        else None
    )
    if excluded is not None:
        return _new_result(
            ItemResult,
            (
                item.sn,
                item.code,
                entry.name,
                amount,
                amount,
                ZERO,
                ZERO,
                ZERO,
                item_class,
                ZERO,
                entry.price_ceiling,
                (excluded,),
            ),
        )
    reasons: tuple[SelfPayReason, ...] = ()
    overlmt = ZERO
    ceiling = entry.price_ceiling
    if ceiling is not None and item.price > ceiling:
        overlmt = min(round_fen((item.price - ceiling) * item.qty), amount)
        reasons = _OVER_CEILING
    capped = amount - overlmt
    ratio = entry.selfpay_ratio if item_class is _CLASS_B else ZERO
    preselfpay = round_fen(capped * ratio) if ratio else ZERO
    if preselfpay:
        reasons += _FIRST_SELF_PAY
    return _new_result(
        ItemResult,
        (
            item.sn,
            item.code,
            entry.name,
            amount,
            ZERO,
            overlmt,
            preselfpay,
            capped - preselfpay,
            item_class,
            ratio,
            ceiling,
            reasons,
        ),
    )


def index_catalogue(
    entries: Iterable[CatalogueEntry], field: str = "catalogue"
) -> Mapping[str, CatalogueEntry]:
    """Catalogue entries by code; a code listed twice is ambiguous and refused."""
    indexed: dict[str, CatalogueEntry] = {}
    for position, entry in enumerate(entries):
        if entry.code in indexed:
            raise invalid("INVALID_ARGUMENT", f"{field}[{position}].code", f"{entry.code} is listed twice")
        indexed[entry.code] = entry
    return indexed
