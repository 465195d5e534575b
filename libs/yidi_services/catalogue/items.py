"""A catalogue row as the service keeps it, and the core entry it stands for.

The service stores the columns of the CSV it validated; settlement and estimates need the
core's :class:`~yidi_core.catalogue.CatalogueEntry`, so classification is the core's alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from yidi_core.catalogue import CatalogueEntry, ItemClass, Restriction
from yidi_core.codes import ItemKind
from yidi_core.money import ZERO, format_decimal

CLASS_BY_LEVEL = {item_class.chrgitm_lv: item_class for item_class in ItemClass}
LIST_SEPARATOR = ";"


@dataclass(frozen=True, slots=True)
class CatalogueRow:
    """One validated catalogue item of a version, valid from ``valid_from`` to ``valid_to`` inclusive."""

    code: str
    name: str
    kind: ItemKind
    item_class: ItemClass
    selfpay_ratio: Decimal = ZERO
    price_ceiling: Decimal | None = None
    med_types: tuple[str, ...] = ()
    diagnosis_prefixes: tuple[str, ...] = ()
    valid_from: date | None = None
    valid_to: date | None = None

    def valid_on(self, day: date) -> bool:
        """Whether the row is in force on ``day`` within its version."""
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_to is None or day <= self.valid_to
        )

    def entry(self) -> CatalogueEntry:
        """The core's entry: what classification of a fee line uses."""
        restriction = (
            Restriction(self.med_types, self.diagnosis_prefixes)
            if self.med_types or self.diagnosis_prefixes
            else None
        )
        return CatalogueEntry(
            self.code, self.name, self.item_class, self.selfpay_ratio, self.price_ceiling, restriction
        )

    def comparable(self) -> dict[str, object]:
        """The fields a diff compares, by the names the API reports (`changed_fields`)."""
        return {
            "chrgitm_lv": self.item_class.chrgitm_lv,
            "selfpay_prop": self.selfpay_ratio,
            "pric_uplmt_amt": self.price_ceiling,
            "restriction": (self.med_types, self.diagnosis_prefixes),
        }

    def record(self, version_pk: int) -> dict[str, Any]:
        """The row of ``catalogue_items`` (bulk inserts take plain dicts)."""
        return {
            "version_pk": version_pk,
            "code": self.code,
            "name": self.name,
            "kind": self.kind.value,
            "chrgitm_lv": self.item_class.chrgitm_lv,
            "selfpay_prop": format_decimal(self.selfpay_ratio),
            "pric_uplmt_amt": None if self.price_ceiling is None else format_decimal(self.price_ceiling),
            "restriction_med_types": LIST_SEPARATOR.join(self.med_types),
            "restriction_diagnosis_prefixes": LIST_SEPARATOR.join(self.diagnosis_prefixes),
            "valid_from": self.valid_from,
            "valid_to": self.valid_to,
        }

    @classmethod
    def from_record(cls, record: Any) -> CatalogueRow:
        """Rebuild a row read back from ``catalogue_items`` (values were validated on import)."""
        return cls(
            code=record.code,
            name=record.name,
            kind=ItemKind(record.kind),
            item_class=CLASS_BY_LEVEL[record.chrgitm_lv],
            selfpay_ratio=Decimal(record.selfpay_prop),
            price_ceiling=None if record.pric_uplmt_amt is None else Decimal(record.pric_uplmt_amt),
            med_types=_split(record.restriction_med_types),
            diagnosis_prefixes=_split(record.restriction_diagnosis_prefixes),
            valid_from=record.valid_from,
            valid_to=record.valid_to,
        )


def _split(joined: str) -> tuple[str, ...]:
    return tuple(part for part in joined.split(LIST_SEPARATOR) if part)
