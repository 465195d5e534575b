"""Catalogue items (``yidi.catalogue.v1.CatalogueItem``) ↔ the core's :class:`~yidi_core.catalogue.CatalogueEntry`.

An item's kind, validity and source are the catalogue service's own to fill in; the core
classifies by code, class, first self-pay ratio, price ceiling and restriction alone.
"""

from __future__ import annotations

from decimal import Decimal

from yidi.catalogue.v1 import catalogue_pb2
from yidi_core.catalogue import CatalogueEntry, ItemClass, Restriction
from yidi_core.money import ZERO, format_decimal

CLASS_BY_LEVEL = {item_class.chrgitm_lv: item_class for item_class in ItemClass}
"""The national ``chrgitm_lv`` ("01", "02", "03") as the core's class."""


def entry_from_proto(item: catalogue_pb2.CatalogueItem) -> CatalogueEntry:
    """An item in force, as a catalogue service answered it, for the core to classify with.

    The answering service checked the item on import: an unknown ``chrgitm_lv`` is a bug (KeyError).
    """
    restriction = item.restriction
    return CatalogueEntry(
        code=item.code,
        name=item.name,
        item_class=CLASS_BY_LEVEL[item.chrgitm_lv],
        selfpay_ratio=Decimal(item.selfpay_prop) if item.selfpay_prop else ZERO,
        price_ceiling=Decimal(item.pric_uplmt_amt) if item.pric_uplmt_amt else None,
        restriction=Restriction(tuple(restriction.med_types), tuple(restriction.diagnosis_prefixes))
        if restriction.med_types or restriction.diagnosis_prefixes
        else None,
    )


def entry_to_proto(entry: CatalogueEntry) -> catalogue_pb2.CatalogueItem:
    """The entry for the wire: ratio and ceiling as decimal strings, no ceiling as ""."""
    restriction = entry.restriction
    return catalogue_pb2.CatalogueItem(
        code=entry.code,
        name=entry.name,
        chrgitm_lv=entry.item_class.chrgitm_lv,
        selfpay_prop=format_decimal(entry.selfpay_ratio),
        pric_uplmt_amt="" if entry.price_ceiling is None else format_decimal(entry.price_ceiling),
        restriction=None
        if restriction is None
        else catalogue_pb2.ItemRestriction(
            med_types=restriction.med_types, diagnosis_prefixes=restriction.diagnosis_prefixes
        ),
    )
