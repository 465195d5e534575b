"""Field violations: collecting every bad field of a request, and naming it by the proto's path.

A caller hears about every bad field at once (one INVALID_ARGUMENT, or the first reason,
carrying every ``FieldViolation``). The core names fields as the ``calc`` case does
(``items[2].qty``); a service answers with the path of its own request (``items[2].cnt``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from yidi_core.errors import DomainError, FieldViolation, combine, error_class

T = TypeVar("T")

_BILL_FIELDS = {"sn": "feedetl_sn", "qty": "cnt", "price": "pric", "amount": "det_item_fee_sumamt_fen"}
_BILL_FIELD = re.compile(r"^items(\[\d+\])\.(sn|qty|price|amount)$")
_ACCUMULATOR = re.compile(r"^accumulators\.(\w+)\.(.+)$")


class Violations:
    """Bad fields found so far; :meth:`raise_any` refuses them together."""

    def __init__(self) -> None:
        self.errors: list[DomainError] = []

    def add(self, error: DomainError) -> None:
        """Record one refusal."""
        self.errors.append(error)

    def check(self, build: Callable[[], T]) -> T | None:
        """``build()``, or None with its refusal recorded."""
        try:
            return build()
        except DomainError as error:
            self.errors.append(error)
            return None

    def combined(self) -> DomainError | None:
        """Every recorded bad field in one error (the first one's reason); None when all were good."""
        return combine(self.errors)

    def raise_any(self) -> None:
        """Refuse every recorded bad field in one error."""
        error = self.combined()
        if error is not None:
            raise error


def relabel(error: DomainError, path: Callable[[str], str]) -> DomainError:
    """The same refusal with every violation's field rewritten by ``path``."""
    violations = tuple(FieldViolation(path(v.field), v.description) for v in error.violations)
    message = "; ".join(f"{v.field}: {v.description}" for v in violations) or error.message
    return error_class(error.reason_code)(error.reason_code, message, violations, dict(error.metadata))


def proto_path(field: str, items: str = "items") -> str:
    """A core field path as the proto names it: ``items[2].qty`` → ``<items>[2].cnt``,
    ``person.account_balance`` → ``account_balance_fen``, ``accumulators.cap.pool`` →
    ``accumulators.cap_fen[pool]``; any other path unchanged."""
    bill_field = _BILL_FIELD.match(field)
    if bill_field is not None:
        return f"{items}{bill_field[1]}.{_BILL_FIELDS[bill_field[2]]}"
    if field.startswith("items"):
        return items + field.removeprefix("items")
    if field == "person.account_balance":
        return "account_balance_fen"
    accumulator = _ACCUMULATOR.match(field)
    if accumulator is not None:
        return f"accumulators.{accumulator[1]}_fen[{accumulator[2]}]"
    return field


def proto_paths(error: DomainError, items: str = "items") -> DomainError:
    """A core refusal with its field paths renamed to the proto's (:func:`proto_path`)."""
    return relabel(error, lambda field: proto_path(field, items))
