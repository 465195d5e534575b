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

from yidi_core.errors import invalid
from yidi_core.money import ZERO, round_fen

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
        if self.diagnosis_prefixes and not any(
            code.startswith(prefix) for code in diagnoses for prefix in self.diagnosis_prefixes
        ):
            return SelfPayReason.DIAGNOSIS_RESTRICTED
        return None


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One item of the treatment-place catalogue version in force on the service date."""

    code: str
    name: str
    item_class: ItemClass
    selfpay_ratio: Decimal = ZERO
    price_ceiling: Decimal | None = None
    restriction: Restriction | None = None


@dataclass(frozen=True, slots=True)
class FeeItem:
    """One uploaded fee line (费用明细): serial number, national code, quantity, unit price."""

    sn: str
    code: str
    qty: Decimal
    price: Decimal
    amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One line split as the rules say: ``amount = fulamt_ownpay + overlmt_selfpay + preselfpay + inscp``.

    ``item_class`` is None for a code missing from the catalogue; ``reasons`` lists why any
    part is self-paid, in the order the rules apply them.
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


def line_amount(item: FeeItem, field: str) -> Decimal:
    """The line's amount: as given (within one fen of qty × price), else *round*(qty × price)."""
    computed = round_fen(item.qty * item.price)
    if item.amount is None:
        return computed
    if abs(item.amount - computed) > AMOUNT_TOLERANCE:
        raise invalid(
            "AMOUNT_MISMATCH",
            field,
            f"amount {item.amount} differs from qty {item.qty} × price {item.price} = {computed}",
            metadata={"sn": item.sn},
        )
    return item.amount


def classify_item(
    item: FeeItem,
    amount: Decimal,
    entry: CatalogueEntry | None,
    med_type: str,
    diagnoses: Iterable[str],
) -> ItemResult:
    """Split one line by the catalogue entry in force (settlement-rules.md, "Per item", steps 2–5)."""
    excluded = _exclusion(entry, med_type, diagnoses)
    if entry is None or excluded is not None:
        return ItemResult(
            item.sn,
            item.code,
            entry.name if entry else "",
            amount,
            fulamt_ownpay=amount,
            overlmt_selfpay=ZERO,
            preselfpay=ZERO,
            inscp=ZERO,
            item_class=entry.item_class if entry else None,
            selfpay_ratio=ZERO,
            price_ceiling=entry.price_ceiling if entry else None,
            reasons=(excluded or SelfPayReason.NOT_IN_CATALOGUE,),
        )
    reasons: list[SelfPayReason] = []
    overlmt = ZERO
    if entry.price_ceiling is not None and item.price > entry.price_ceiling:
        overlmt = min(round_fen((item.price - entry.price_ceiling) * item.qty), amount)
        reasons.append(SelfPayReason.OVER_PRICE_CEILING)
    capped = amount - overlmt
    ratio = entry.selfpay_ratio if entry.item_class is ItemClass.B else ZERO
    preselfpay = round_fen(capped * ratio)
    if preselfpay:
        reasons.append(SelfPayReason.FIRST_SELF_PAY)
    return ItemResult(
        item.sn,
        item.code,
        entry.name,
        amount,
        fulamt_ownpay=ZERO,
        overlmt_selfpay=overlmt,
        preselfpay=preselfpay,
        inscp=capped - preselfpay,
        item_class=entry.item_class,
        selfpay_ratio=ratio,
        price_ceiling=entry.price_ceiling,
        reasons=tuple(reasons),
    )


def _exclusion(entry: CatalogueEntry | None, med_type: str, diagnoses: Iterable[str]) -> SelfPayReason | None:
    if entry is None:
        return SelfPayReason.NOT_IN_CATALOGUE
    if entry.item_class is ItemClass.C:
        return SelfPayReason.CLASS_C
    return entry.restriction.unmet(med_type, diagnoses) if entry.restriction else None


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
