"""A person's accumulators and account, read and changed only under the person's lock.

:func:`lock_person` serializes every change of one person: on PostgreSQL it creates the
person's account row if missing (an upsert, since an insert-else-update races) and takes
its row lock with ``SELECT … FOR UPDATE``; on SQLite a write transaction already holds the
database's write lock from BEGIN. Reading the accumulators, settling and writing the new
values then happen in that one transaction, so concurrent settlements of one person see
each other's effects and a cap can never be overrun.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from yidi_core.accumulators import AccumulatorChange, AccumulatorKind, Accumulators
from yidi_core.errors import invalid
from yidi_core.money import from_fen, to_fen
from yidi_runtime.db import insert_if_absent, insert_or_add
from yidi_services.settlement.insured.models import AccountRow, AccumulatorRow

ACCOUNT = "account"
"""The kind of the personal account's movement (``ACCUMULATOR_KIND_ACCOUNT`` on the wire)."""


@dataclass(frozen=True, slots=True)
class Movement:
    """What one change did to one accumulator (or, with kind ``account``, to the account), in fen."""

    kind: str
    key: str
    before_fen: int
    delta_fen: int


@dataclass(frozen=True, slots=True)
class Locked:
    """A person locked until the transaction ends, with their account balances as they stand under the lock.

    ``family_balance_fen`` is None until the family account (门诊共济) first paid here.
    """

    psn_no: str
    balance_fen: int
    family_balance_fen: int | None = None

    def family_fen(self, recorded_fen: int) -> int:
        """What the family account holds: the ledger's count once it paid, else the person record's ``recorded_fen``."""
        return recorded_fen if self.family_balance_fen is None else self.family_balance_fen


_ACCOUNTS = AccountRow.__table__
# Built once: every application, confirmation and revert runs these.
_LOCKING = (
    select(_ACCOUNTS.c.balance_fen, _ACCOUNTS.c.family_balance_fen)
    .where(_ACCOUNTS.c.psn_no == bindparam("psn_no"))
    .with_for_update()
)
_ADD_TO_BALANCE = (
    update(_ACCOUNTS)
    .where(_ACCOUNTS.c.psn_no == bindparam("account_of"))
    .values(balance_fen=_ACCOUNTS.c.balance_fen + bindparam("delta_fen"))
)
# The family account's first debit seeds it from the person record (``seed_fen``); later ones ignore it.
_ADD_TO_FAMILY = (
    update(_ACCOUNTS)
    .where(_ACCOUNTS.c.psn_no == bindparam("account_of"))
    .values(
        family_balance_fen=func.coalesce(_ACCOUNTS.c.family_balance_fen, bindparam("seed_fen"))
        + bindparam("delta_fen")
    )
)
_BALANCE = select(_ACCOUNTS.c.balance_fen).where(_ACCOUNTS.c.psn_no == bindparam("psn_no"))
_FAMILY_BALANCE = select(_ACCOUNTS.c.family_balance_fen).where(_ACCOUNTS.c.psn_no == bindparam("psn_no"))
_VALUES = AccumulatorRow.__table__
_ACCUMULATORS = select(_VALUES.c.kind, _VALUES.c.key, _VALUES.c.value_fen).where(
    _VALUES.c.psn_no == bindparam("psn_no"), _VALUES.c.year == bindparam("year")
)


def lock_person(session: Session, psn_no: str) -> Locked:
    """Lock the person (their account row, created at zero if missing) until the transaction ends."""
    row = session.execute(_LOCKING, {"psn_no": psn_no}).one_or_none()
    if row is None:  # the person's first settlement here
        insert_if_absent(session, AccountRow, {"psn_no": psn_no, "balance_fen": 0})
        row = session.execute(_LOCKING, {"psn_no": psn_no}).one()
    return Locked(psn_no, row.balance_fen, row.family_balance_fen)


def _add_to_balance(session: Session, psn_no: str, delta_fen: int) -> None:
    session.execute(_ADD_TO_BALANCE, {"account_of": psn_no, "delta_fen": delta_fen})


def credit(session: Session, psn_no: str, amount_fen: int) -> int:
    """Credit (or, negative, debit) the account under the person's lock; never below zero."""
    person = lock_person(session, psn_no)
    balance = person.balance_fen + amount_fen
    if balance < 0:
        raise invalid(
            "INVALID_ARGUMENT",
            "amount_fen",
            f"a debit of {-amount_fen} fen exceeds the balance of {person.balance_fen} fen",
        )
    _add_to_balance(session, psn_no, amount_fen)
    return balance


def balance_fen(session: Session, psn_no: str) -> int:
    """The account balance now (zero for a person never credited), without locking."""
    return session.scalar(_BALANCE, {"psn_no": psn_no}) or 0


def family_balance_fen(session: Session, psn_no: str, recorded_fen: int) -> int:
    """What the family account holds now, without locking (see :meth:`Locked.family_fen`)."""
    return Locked(psn_no, 0, session.scalar(_FAMILY_BALANCE, {"psn_no": psn_no})).family_fen(recorded_fen)


def move_family(session: Session, person: Locked, delta_fen: int, recorded_fen: int = 0) -> None:
    """Add ``delta_fen`` to the locked person's family account, seeded from ``recorded_fen`` if it never paid."""
    if delta_fen:
        session.execute(
            _ADD_TO_FAMILY, {"account_of": person.psn_no, "seed_fen": recorded_fen, "delta_fen": delta_fen}
        )


def accumulators(session: Session, psn_no: str, year: int) -> Accumulators:
    """The person's accumulators of one year as the core reads them."""
    tables: dict[AccumulatorKind, dict[str, Any]] = {kind: {} for kind in AccumulatorKind}
    for kind, key, value_fen in session.execute(_ACCUMULATORS, {"psn_no": psn_no, "year": year}):
        tables[AccumulatorKind(kind)][key] = from_fen(value_fen)
    return Accumulators(*(tables[kind] for kind in AccumulatorKind))


def accumulator_rows(session: Session, psn_no: str, year: int) -> list[AccumulatorRow]:
    """Every accumulator row of the person and year, in a stable order."""
    return list(
        session.scalars(
            select(AccumulatorRow)
            .where(AccumulatorRow.psn_no == psn_no, AccumulatorRow.year == year)
            .order_by(AccumulatorRow.kind, AccumulatorRow.key)
        )
    )


def move(
    session: Session,
    person: Locked,
    year: int,
    before: Accumulators,
    changes: Iterable[AccumulatorChange],
    account_delta_fen: int,
) -> list[Movement]:
    """Add ``changes`` to the locked person's accumulators of ``year`` (``before``, as read under the
    lock) and ``account_delta_fen`` to the account.

    Returns each movement with its value before; zero changes are reported but not written.
    """
    movements = []
    added: dict[tuple[str, str], int] = {}
    for change in changes:
        kind, delta = change.kind.value, to_fen(change.delta)
        movements.append(Movement(kind, change.key, to_fen(before.value(change.kind, change.key)), delta))
        if delta:
            added[kind, change.key] = added.get((kind, change.key), 0) + delta
    insert_or_add(
        session,
        AccumulatorRow,
        "value_fen",
        [
            {"psn_no": person.psn_no, "year": year, "kind": kind, "key": key, "value_fen": delta}
            for (kind, key), delta in added.items()
        ],
    )
    if account_delta_fen:
        movements.append(Movement(ACCOUNT, "", person.balance_fen, account_delta_fen))
        _add_to_balance(session, person.psn_no, account_delta_fen)
    return movements
