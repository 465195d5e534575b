"""Money and other exact numbers: ``Decimal`` in the core, ``int64`` fen on the wire, never float.

Every amount in a settlement is yuan with two decimals. Rounding is half up to the fen
(settlement-rules.md) and happens only where the rules mark it, through :func:`round_fen`.
Conversions to and from the wire's fen and the ``calc`` format's strings live here and
nowhere else, so a rounding or parsing difference between two shells cannot exist.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from functools import cache

from yidi_core.errors import invalid

ZERO = Decimal("0.00")
FEN = Decimal("0.01")
ONE = Decimal(1)
# int64 fen, the wire's limit, is far above any real bill; bounding inputs well below it keeps
# every intermediate product exact within Decimal's default 28 significant digits.
MAX_AMOUNT = Decimal("999999999999.99")
MAX_AMOUNT_FEN = int(MAX_AMOUNT * 100)
"""MAX_AMOUNT in the wire's fen: the largest fee line, and the largest total of a visit's or a
bill's lines. Any sum over one visit stays 92,000 times below int64 (the wire's and
PostgreSQL's BIGINT limit), so no total of a visit, nor of a month of them, can overflow."""
_DECIMAL = re.compile(r"(-?)(\d{1,15})(?:\.(\d{1,8}))?")


def round_fen(value: Decimal) -> Decimal:
    """Half up to the fen (四舍五入到分): the only rounding the rules allow."""
    # Rounding passed positionally: a keyword argument doubles the cost of this hot call.
    return value.quantize(FEN, ROUND_HALF_UP)


def parse_decimal(value: object, field: str, *, max_places: int = 8, signed: bool = False) -> Decimal:
    """A plain decimal string such as ``"0.80"`` or ``"2"``; floats and exponents are refused.

    A JSON integer is exact and accepted; a JSON float is refused: it has already lost the
    exact value the sender meant.
    """
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, int) and not isinstance(value, bool):
        value = text = str(value)
    else:
        raise invalid("INVALID_ARGUMENT", field, f'must be a decimal string such as "12.30", got {value!r}')
    # Every number of a bill passes here: one match accepts it, and only a refusal is looked at
    # again to say what is wrong.
    if _accepted(max_places, signed).fullmatch(text):
        return Decimal(text)
    match = _DECIMAL.fullmatch(text)
    if match is None or (match.group(1) and not signed):
        shape = "a decimal string" if signed else "a non-negative decimal string"
        raise invalid("INVALID_ARGUMENT", field, f'must be {shape} such as "12.30", got {value!r}')
    raise invalid("INVALID_ARGUMENT", field, f"has more than {max_places} decimal places: {value!r}")


@cache
def _accepted(max_places: int, signed: bool) -> re.Pattern[str]:
    """The strings :func:`parse_decimal` accepts: :data:`_DECIMAL`, signed only if allowed, at most
    ``max_places`` decimals."""
    places = min(max_places, 8)
    fraction = rf"(?:\.\d{{1,{places}}})?" if places > 0 else ""
    return re.compile(("-?" if signed else "") + r"\d{1,15}" + fraction)


def plain_decimals(values: Sequence[object], max_places: int) -> list[Decimal] | None:
    """Every value as :func:`parse_decimal` (unsigned) reads it, when each is a string it accepts as
    written; else None, and each is read on its own to name what is wrong.

    A bill's column of quantities or prices is checked at C speed: one pattern mapped over it.
    """
    if set(map(type, values)) - {str}:
        return None
    if not all(map(_accepted(max_places, False).fullmatch, values)):  # type: ignore[arg-type]
        return None
    return list(map(Decimal, values))  # type: ignore[arg-type]


_PLAIN_MONEY = re.compile(r"\d{1,12}(?:\.\d{1,2})?")
"""Amounts :func:`parse_money` accepts as written that cannot exceed :data:`MAX_AMOUNT`."""


def plain_money(values: Sequence[object]) -> list[Decimal] | None:
    """:func:`plain_decimals` for amounts in yuan (unsigned, within :data:`MAX_AMOUNT`), quantized to the fen."""
    if set(map(type, values)) - {str}:
        return None
    if not all(map(_PLAIN_MONEY.fullmatch, values)):  # type: ignore[arg-type]
        return None
    return [Decimal(value).quantize(FEN) for value in values]  # type: ignore[arg-type]


def parse_money(value: object, field: str, *, signed: bool = False) -> Decimal:
    """An amount in yuan with at most two decimals, returned quantized to the fen."""
    amount = parse_decimal(value, field, max_places=2, signed=signed)
    if abs(amount) > MAX_AMOUNT:
        raise invalid("INVALID_ARGUMENT", field, f"must not exceed {MAX_AMOUNT}, got {value!r}")
    return amount.quantize(FEN)


def check_fen(amount: int, field: str, what: str = "the amount") -> int:
    """An amount in fen from 0 to :data:`MAX_AMOUNT_FEN`, else INVALID_ARGUMENT naming ``field``."""
    if not 0 <= amount <= MAX_AMOUNT_FEN:
        raise invalid("INVALID_ARGUMENT", field, f"{what} must be 0 to {MAX_AMOUNT_FEN} fen, got {amount}")
    return amount


def parse_ratio(value: object, field: str, *, signed: bool = False) -> Decimal:
    """A ratio in [0, 1] (or in [-1, 1] for an adjustment), as a decimal string."""
    ratio = parse_decimal(value, field, max_places=6, signed=signed)
    low = -ONE if signed else ZERO
    if not low <= ratio <= ONE:
        raise invalid("INVALID_ARGUMENT", field, f"must lie in [{low}, 1], got {value!r}")
    return ratio


def format_money(amount: Decimal) -> str:
    """The ``calc`` format's string: exactly two decimals, e.g. ``"48.89"``."""
    return f"{amount.quantize(FEN):f}"


def format_decimal(value: Decimal) -> str:
    """A ratio or quantity as written, without exponent notation."""
    return f"{value:f}"


def to_fen(amount: Decimal) -> int:
    """Yuan to the wire's ``int64`` fen; an amount with a fraction of a fen is a bug, not rounding."""
    fen = amount * 100
    if fen != fen.to_integral_value():
        raise ValueError(f"{amount} yuan is not a whole number of fen")
    return int(fen)


def from_fen(fen: int) -> Decimal:
    """The wire's ``int64`` fen to yuan with two decimals."""
    return (Decimal(fen) / 100).quantize(FEN)
