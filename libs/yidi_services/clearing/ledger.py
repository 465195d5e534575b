"""The national double-entry ledger: every entry's postings sum to zero, so all balances do too.

Accounts are (region, kind): each province holds an ADVANCE, a PAYABLE (as insured place),
a RECEIVABLE (as treatment place) and a CLEARING_TRANSIT account; the national pool
(000000) holds the advance funds it received (ADVANCE) and the money in transit between
provinces (CLEARING_TRANSIT). Debits are positive, credits negative. The postings scheme:

==========================  =====================================================================
event                       postings
==========================  =====================================================================
advance set / topped up     pool ADVANCE +a; province ADVANCE −a (the pool holds it for the province)
clearing run (per period)   insured PAYABLE +fund; treatment RECEIVABLE −fund (summed per province)
statement confirmed         province PAYABLE −payable, RECEIVABLE +receivable, TRANSIT −net
transfer from a payer       pool TRANSIT +a; province TRANSIT −a
transfer to a payee         province TRANSIT +a; pool TRANSIT −a
==========================  =====================================================================

Journal entries are posted when a clearing run counts them, summed per province, rather
than one ledger entry per settlement: the journal stays append-only and cheap to write,
no balance row is ever hot, and the postings equal the statements by construction. Balances
are sums of postings (the ledger grows by a few rows per province and month).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from yidi_core.codes import NATIONAL_REGION
from yidi_runtime.db import Database
from yidi_runtime.paging import bad_token, decode_token, encode_token
from yidi_runtime.wire import as_utc
from yidi_services.clearing.models import LedgerEntryRecord, LedgerPostingRecord


class AccountKind(StrEnum):
    """What an account holds (see the module's postings scheme)."""

    ADVANCE = "advance"
    PAYABLE = "payable"
    RECEIVABLE = "receivable"
    CLEARING_TRANSIT = "clearing_transit"


class UnbalancedEntry(ValueError):
    """An entry whose postings do not sum to zero: a programming error, never written."""


@dataclass(frozen=True, slots=True)
class Posting:
    """Fen to one account: positive debit, negative credit."""

    admdvs: str
    kind: AccountKind
    amount_fen: int


@dataclass(frozen=True, slots=True)
class Entry:
    """A posted entry and its postings."""

    entry_id: str
    source_id: str
    description: str
    postings: tuple[Posting, ...]
    post_time: datetime


@dataclass(frozen=True, slots=True)
class Balance:
    """One account's balance."""

    admdvs: str
    kind: AccountKind
    balance_fen: int


@dataclass(frozen=True, slots=True)
class Ledger:
    """Account balances (optionally one province's) and the whole ledger's sum."""

    accounts: tuple[Balance, ...]
    total_fen: int

    @property
    def balanced(self) -> bool:
        """The invariant: every balance of the ledger sums to zero."""
        return self.total_fen == 0


def entry_id(seq: int) -> str:
    """The public id of a ledger entry."""
    return f"LE{seq:012d}"


def merged(postings: Iterable[Posting]) -> list[Posting]:
    """One posting per account (summed), zeros dropped, in a stable order."""
    sums: dict[tuple[str, AccountKind], int] = defaultdict(int)
    for posting in postings:
        sums[posting.admdvs, posting.kind] += posting.amount_fen
    return [Posting(admdvs, kind, fen) for (admdvs, kind), fen in sorted(sums.items()) if fen]


def post(
    session: Session, source_id: str, description: str, postings: Iterable[Posting], now: datetime
) -> str | None:
    """Write one balanced entry (postings merged per account); None when nothing moves.

    Raises :class:`UnbalancedEntry` when the postings do not sum to zero: nothing is written.
    """
    lines = merged(postings)
    total = sum(posting.amount_fen for posting in lines)
    if total != 0:
        raise UnbalancedEntry(f"ledger entry {source_id!r} does not balance: its postings sum to {total} fen")
    if not lines:
        return None
    seq = session.execute(
        insert(LedgerEntryRecord)
        .values(source_id=source_id, description=description, post_time=as_utc(now))
        .returning(LedgerEntryRecord.seq)
    ).scalar_one()
    session.execute(
        insert(LedgerPostingRecord),
        [
            {"entry_seq": seq, "admdvs": p.admdvs, "kind": p.kind.value, "amount_fen": p.amount_fen}
            for p in lines
        ],
    )
    return entry_id(seq)


def transfer(admdvs: str, amount_fen: int, *, into_pool: bool) -> list[Posting]:
    """The postings of money moved between a province and the pool's transit account."""
    signed = amount_fen if into_pool else -amount_fen
    return [
        Posting(NATIONAL_REGION, AccountKind.CLEARING_TRANSIT, signed),
        Posting(admdvs, AccountKind.CLEARING_TRANSIT, -signed),
    ]


def advance(admdvs: str, amount_fen: int) -> list[Posting]:
    """The postings of advance money a province pays into (or, negative, gets back from) the pool."""
    return [
        Posting(NATIONAL_REGION, AccountKind.ADVANCE, amount_fen),
        Posting(admdvs, AccountKind.ADVANCE, -amount_fen),
    ]


def clearing(payable: Mapping[str, int], receivable: Mapping[str, int]) -> list[Posting]:
    """The postings of a clearing run: each province's payable debited, its receivable credited."""
    return [Posting(admdvs, AccountKind.PAYABLE, fen) for admdvs, fen in payable.items()] + [
        Posting(admdvs, AccountKind.RECEIVABLE, -fen) for admdvs, fen in receivable.items()
    ]


def confirmation(admdvs: str, payable_fen: int, receivable_fen: int) -> list[Posting]:
    """The postings of a confirmed statement: its payable and receivable move into clearing transit."""
    return [
        Posting(admdvs, AccountKind.PAYABLE, -payable_fen),
        Posting(admdvs, AccountKind.RECEIVABLE, receivable_fen),
        Posting(admdvs, AccountKind.CLEARING_TRANSIT, payable_fen - receivable_fen),
    ]


def ledger(session: Session, admdvs: str = "") -> Ledger:
    """Every account's balance (or one province's accounts) and the sum of the whole ledger."""
    by_account = select(
        LedgerPostingRecord.admdvs, LedgerPostingRecord.kind, func.sum(LedgerPostingRecord.amount_fen)
    ).group_by(LedgerPostingRecord.admdvs, LedgerPostingRecord.kind)
    if admdvs:
        by_account = by_account.where(LedgerPostingRecord.admdvs == admdvs)
    accounts = tuple(
        Balance(region, AccountKind(kind), int(fen))
        for region, kind, fen in session.execute(
            by_account.order_by(LedgerPostingRecord.admdvs, LedgerPostingRecord.kind)
        )
    )
    return Ledger(accounts, total(session))


def total(session: Session) -> int:
    """The sum of every posting ever written: 0 unless the ledger was tampered with."""
    return int(session.scalar(select(func.coalesce(func.sum(LedgerPostingRecord.amount_fen), 0))) or 0)


def balanced(database: Database) -> bool:
    """The ledger-wide invariant the clearing service's health depends on: every posting sums to zero."""
    with database.unit_of_work() as uow:
        return total(uow.session) == 0


def list_entries(session: Session, admdvs: str, size: int, token: str) -> tuple[list[Entry], str]:
    """One page of entries in posting order (only those touching ``admdvs``'s accounts when given)."""
    key = f"ledger:{admdvs}"
    after = decode_token(token, key, 1)
    statement = select(LedgerEntryRecord).order_by(LedgerEntryRecord.seq).limit(size + 1)
    if after is not None:
        if not after[0].isdigit():
            raise bad_token()
        statement = statement.where(LedgerEntryRecord.seq > int(after[0]))
    if admdvs:
        touching = select(LedgerPostingRecord.entry_seq).where(LedgerPostingRecord.admdvs == admdvs)
        statement = statement.where(LedgerEntryRecord.seq.in_(touching))
    records = session.scalars(statement).all()
    page = records[:size]
    postings = _postings(session, [record.seq for record in page])
    entries = [
        Entry(
            entry_id(record.seq),
            record.source_id,
            record.description,
            postings.get(record.seq, ()),
            as_utc(record.post_time),
        )
        for record in page
    ]
    return entries, encode_token([str(page[-1].seq)], key) if len(records) > size else ""


def _postings(session: Session, seqs: Sequence[int]) -> dict[int, tuple[Posting, ...]]:
    if not seqs:
        return {}
    found: dict[int, list[Posting]] = defaultdict(list)
    rows = session.scalars(
        select(LedgerPostingRecord)
        .where(LedgerPostingRecord.entry_seq.in_(seqs))
        .order_by(LedgerPostingRecord.seq)
    )
    for row in rows:
        found[row.entry_seq].append(Posting(row.admdvs, AccountKind(row.kind), row.amount_fen))
    return {seq: tuple(postings) for seq, postings in found.items()}
