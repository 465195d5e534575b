"""Insured-side checks and messages of its own API: required fields, bill totals, ledger movements.

The visit, the classified lines, the person and the result convert with :mod:`yidi_codec`.
"""

from __future__ import annotations

from collections.abc import Sequence

from yidi.settlement.v1 import insured_settlement_service_pb2 as api
from yidi.type.v1 import fee_item_pb2, settlement_result_pb2
from yidi_codec.results import accumulator_kind_to_proto
from yidi_core.errors import DomainError, invalid
from yidi_services.settlement.insured.ledger import Movement

_TOTALS = (
    ("medfee_sumamt_fen", "det_item_fee_sumamt_fen"),
    ("fulamt_ownpay_amt_fen", "fulamt_ownpay_amt_fen"),
    ("overlmt_selfpay_fen", "overlmt_amt_fen"),
    ("preselfpay_amt_fen", "preselfpay_amt_fen"),
    ("inscp_scp_amt_fen", "inscp_scp_amt_fen"),
)


def required(value: str, field: str) -> str:
    """A required string field, stripped."""
    if not value.strip():
        raise invalid("INVALID_ARGUMENT", field, "is required")
    return value.strip()


def totals_problems(
    items: Sequence[fee_item_pb2.ItemResult], totals: api.ClassifiedTotals
) -> list[DomainError]:
    """Each total that is not the sum of its lines (AMOUNT_MISMATCH naming ``totals.<field>``)."""
    problems = []
    for total_field, line_field in _TOTALS:
        summed = sum(getattr(line, line_field) for line in items)
        stated = getattr(totals, total_field)
        if summed != stated:
            problems.append(
                invalid(
                    "AMOUNT_MISMATCH",
                    f"totals.{total_field}",
                    f"is {stated} fen but the lines add up to {summed} fen",
                )
            )
    return problems


def change_message(movement: Movement, year: int) -> settlement_result_pb2.AccumulatorChange:
    """One accumulator (or account) movement with its values before and after."""
    return settlement_result_pb2.AccumulatorChange(
        kind=accumulator_kind_to_proto(movement.kind),
        key=movement.key,
        year=year,
        before_fen=movement.before_fen,
        delta_fen=movement.delta_fen,
        after_fen=movement.before_fen + movement.delta_fen,
    )
