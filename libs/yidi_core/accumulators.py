"""Annual accumulators (年度累计) as plain data, and their changes as returned data.

The core never stores anything: a settlement returns what to add to which accumulator, the
insured place applies it atomically with the settlement record, and a reversal applies the
exact inverse (:func:`reverse_changes`), so settle-then-reverse restores every value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from yidi_core.money import ZERO


class AccumulatorKind(StrEnum):
    """What an accumulator counts: deductible paid, amount on a segment scale, fund paid under a cap,
    a further fund's figures.

    A member is the name of its :class:`Accumulators` field, so ``getattr`` takes it as it is.
    """

    DEDUCTIBLE = "deductible"
    SEGMENT = "segment"
    CAP = "cap"
    FUND = "fund"
    """A further fund's yearly figure (settlement-rules.md, "Accumulators added"): keys
    ``supplementary``, ``serious_illness``, ``serious_illness_paid``, ``assistance``."""


KINDS: tuple[AccumulatorKind, ...] = tuple(AccumulatorKind)
"""Every kind in declaration order: iterating the enum class itself is several times slower."""


@dataclass(frozen=True, slots=True)
class AccumulatorChange:
    """Add ``delta`` to the accumulator ``kind``/``key`` of the person's service-date year."""

    kind: AccumulatorKind
    key: str
    delta: Decimal


def _frozen(values: Mapping[str, Decimal]) -> Mapping[str, Decimal]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True, slots=True)
class Accumulators:
    """One person's year so far: amounts by key for each kind; an absent key is zero."""

    deductible: Mapping[str, Decimal] = field(default_factory=dict)
    segment: Mapping[str, Decimal] = field(default_factory=dict)
    cap: Mapping[str, Decimal] = field(default_factory=dict)
    fund: Mapping[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind in KINDS:
            object.__setattr__(self, kind, _frozen(getattr(self, kind)))

    def value(self, kind: AccumulatorKind, key: str) -> Decimal:
        """The amount counted so far (zero for a key never used)."""
        values: Mapping[str, Decimal] = getattr(self, kind)
        return values.get(key, ZERO)

    def applied(self, changes: Iterable[AccumulatorChange]) -> Accumulators:
        """A new value with every change added."""
        tables = {kind: dict(getattr(self, kind)) for kind in KINDS}
        for change in changes:
            table = tables[change.kind]
            table[change.key] = table.get(change.key, ZERO) + change.delta
        return Accumulators(*(tables[kind] for kind in KINDS))


def reverse_changes(changes: Iterable[AccumulatorChange]) -> tuple[AccumulatorChange, ...]:
    """The exact inverse of a settlement's changes, for its reversal (撤销)."""
    return tuple(AccumulatorChange(change.kind, change.key, -change.delta) for change in changes)
