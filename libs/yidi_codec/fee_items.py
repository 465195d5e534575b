"""Fee lines as a HIS uploads them (``yidi.type.v1.FeeItem``) → the core's :class:`~yidi_core.catalogue.FeeItem`.

Every bad field of every line is named at once with the proto's path
(``items[2].cnt``), so an upload is fixed in one go.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from yidi.type.v1 import fee_item_pb2
from yidi_codec.fields import Violations
from yidi_core.catalogue import FeeItem
from yidi_core.codes import check_item_code
from yidi_core.errors import invalid
from yidi_core.money import check_fen, from_fen, parse_decimal

MAX_SERIAL = 64
"""Characters of a serial number (``feedetl_sn``)."""


def _positive(text: str, field: str, places: int) -> Decimal:
    value = parse_decimal(text, field, max_places=places)
    if value <= 0:
        raise invalid("INVALID_ARGUMENT", field, f"must be positive, got {text!r}")
    return value


def fee_item_from_proto(message: fee_item_pb2.FeeItem, where: str) -> FeeItem:
    """One line: serial, code, positive quantity (4 places) and price (6 places), amount in fen (0: none)."""
    violations = Violations()
    sn = message.feedetl_sn.strip()
    if not sn or len(sn) > MAX_SERIAL:
        violations.add(
            invalid(
                "INVALID_ARGUMENT", f"{where}.feedetl_sn", f"is required, at most {MAX_SERIAL} characters"
            )
        )
    code = violations.check(lambda: check_item_code(message.med_list_codg, f"{where}.med_list_codg")[0])
    qty = violations.check(lambda: _positive(message.cnt, f"{where}.cnt", 4))
    price = violations.check(lambda: _positive(message.pric, f"{where}.pric", 6))
    violations.check(lambda: check_fen(message.det_item_fee_sumamt_fen, f"{where}.det_item_fee_sumamt_fen"))
    violations.raise_any()
    assert code is not None and qty is not None and price is not None
    amount = from_fen(message.det_item_fee_sumamt_fen) if message.det_item_fee_sumamt_fen else None
    return FeeItem(sn, code, qty, price, amount)


def fee_items_from_proto(
    messages: Sequence[fee_item_pb2.FeeItem], field_path: str = "items"
) -> list[FeeItem]:
    """The lines of a bill; a serial repeated within it is refused too."""
    violations = Violations()
    items = [
        violations.check(lambda m=m, i=i: fee_item_from_proto(m, f"{field_path}[{i}]"))  # type: ignore[misc]
        for i, m in enumerate(messages)
    ]
    seen: set[str] = set()
    for index, item in enumerate(items):
        if item is None:
            continue
        if item.sn in seen:
            violations.add(
                invalid("INVALID_ARGUMENT", f"{field_path}[{index}].feedetl_sn", f"serial {item.sn} repeats")
            )
        seen.add(item.sn)
    violations.raise_any()
    return [item for item in items if item is not None]
