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

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from yidi_core.accumulators import AccumulatorChange, AccumulatorKind, Accumulators
from yidi_core.errors import invalid
from yidi_core.money import from_fen, to_fen
from yidi_runtime.db import insert_if_absent, upsert_insert
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


# Built once: every application, confirmation and revert reads these.
_LOCKING = (
    select(AccountRow)
    .where(AccountRow.psn_no == bindparam("psn_no"))
    .with_for_update()
    .execution_options(populate_existing=True)
)
_BALANCE = select(AccountRow.balance_fen).where(AccountRow.psn_no == bindparam("psn_no"))
_ACCUMULATORS = select(AccumulatorRow.kind, AccumulatorRow.key, AccumulatorRow.value_fen).where(
    AccumulatorRow.psn_no == bindparam("psn_no"), AccumulatorRow.year == bindparam("year")
)


def lock_person(session: Session, psn_no: str) -> AccountRow:
    """The person's account row, created at zero if missing, locked until the transaction ends."""
    account = session.scalars(_LOCKING, {"psn_no": psn_no}).one_or_none()
    if account is None:  # the person's first settlement here
        insert_if_absent(session, AccountRow, {"psn_no": psn_no, "balance_fen": 0})
        account = session.scalars(_LOCKING, {"psn_no": psn_no}).one()
    return account


def credit(session: Session, psn_no: str, amount_fen: int) -> int:
    """Credit (or, negative, debit) the account under the person's lock; never below zero."""
    account = lock_person(session, psn_no)
    balance = account.balance_fen + amount_fen
    if balance < 0:
        raise invalid(
            "INVALID_ARGUMENT",
            "amount_fen",
            f"a debit of {-amount_fen} fen exceeds the balance of {account.balance_fen} fen",
        )
    account.balance_fen = balance
    return balance


def balance_fen(session: Session, psn_no: str) -> int:
    """The account balance now (zero for a person never credited), without locking."""
    return session.scalar(_BALANCE, {"psn_no": psn_no}) or 0


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
    account: AccountRow,
    year: int,
    changes: Iterable[AccumulatorChange],
    account_delta_fen: int,
) -> list[Movement]:
    """Add ``changes`` to the locked person's accumulators and ``account_delta_fen`` to the account.

    Returns each movement with its value before; zero changes are reported but not written.
    """
    psn_no = account.psn_no
    before = accumulators(session, psn_no, year)
    movements = []
    for change in changes:
        delta = to_fen(change.delta)
        movements.append(
            Movement(change.kind.value, change.key, to_fen(before.value(change.kind, change.key)), delta)
        )
        if delta:
            statement = upsert_insert(
                session,
                AccumulatorRow,
                {
                    "psn_no": psn_no,
                    "year": year,
                    "kind": change.kind.value,
                    "key": change.key,
                    "value_fen": delta,
                },
            )
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=["psn_no", "year", "kind", "key"],
                    set_={"value_fen": AccumulatorRow.value_fen + statement.excluded.value_fen},
                )
            )
    if account_delta_fen:
        movements.append(Movement(ACCOUNT, "", account.balance_fen, account_delta_fen))
        account.balance_fen += account_delta_fen
        session.flush()
    return movements
