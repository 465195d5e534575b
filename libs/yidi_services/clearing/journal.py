"""The national settlement journal (跨省结算流水): every cross-province settlement and reversal, once.

Treatment nodes deliver entries through their durable outboxes, so the same entry may
arrive again, alone or inside another batch: an entry whose institution and ``msgid`` are
recorded with the same content is a repeat (counted, not written), with other content it is
``DUPLICATE_REQUEST``. A msgid is unique per institution, the one that sent it (so no
institution can take another's), and a reversal names a settlement of its own institution. A reversal undoes exactly one recorded settlement: it names it,
mirrors its regions and amounts negated, and a settlement is reversed at most once — so
clearing, which sums the journal, can never pay a settlement twice or undo one twice.

The journal is append-only; monthly clearing will only ever set ``cleared_period``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import insert, select, tuple_
from sqlalchemy.orm import Session

from yidi_core.errors import DomainError, combine, invalid
from yidi_runtime.config import region_contains
from yidi_runtime.integrity import Seal
from yidi_runtime.paging import bad_token, decode_token, encode_token
from yidi_runtime.regions import below
from yidi_runtime.wire import as_utc
from yidi_services.clearing.models import JournalEntryRecord

if TYPE_CHECKING:  # the commands carry entries: they import this module
    from yidi_services.clearing.commands import ListJournalEntries

MAX_ENTRIES = 1_000
AMOUNT_FIELDS = ("medfee_sumamt_fen", "fund_pay_sumamt_fen", "acct_pay_fen", "psn_cash_pay_fen")


class Kind(StrEnum):
    """A settlement (its province owes) or the reversal of one (the debt is undone)."""

    SETTLEMENT = "settlement"
    REVERSAL = "reversal"


@dataclass(frozen=True, slots=True)
class Amounts:
    """The entry's money in fen, in the order of :data:`AMOUNT_FIELDS`."""

    medfee_sumamt_fen: int
    fund_pay_sumamt_fen: int
    acct_pay_fen: int
    psn_cash_pay_fen: int

    def by_field(self) -> dict[str, int]:
        """Field name → fen, for messages that name the field."""
        return {name: getattr(self, name) for name in AMOUNT_FIELDS}

    def negated(self) -> Amounts:
        """What a reversal of these amounts carries."""
        return Amounts(*(-fen for fen in self.by_field().values()))


Key = tuple[str, str]
"""An entry's identity: the institution whose msgid it is, and the msgid."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One checked journal entry as plain values; ``content_sha256`` fingerprints what the sender said.

    ``seal`` is the treatment node's signature of the entry (empty when unsealed: from an
    insecure development node, or repaired from a treatment node's records).
    """

    msgid: str
    content_sha256: str
    setl_id: str
    kind: Kind
    reverses_msgid: str | None
    mdtrt_id: str
    psn_no: str
    fixmedins_code: str
    insuplc_admdvs: str
    mdtrtarea_admvs: str
    insutype: str
    clr_type: str
    amounts: Amounts
    setl_time: datetime
    seal: Seal

    @property
    def key(self) -> Key:
        """Whose msgid this is and the msgid: the entry's identity in the journal."""
        return (self.fixmedins_code, self.msgid)

    @property
    def reverses_key(self) -> Key | None:
        """The key of the settlement a reversal undoes (of the same institution)."""
        return None if self.reverses_msgid is None else (self.fixmedins_code, self.reverses_msgid)

    @property
    def insured_province(self) -> str:
        """The province that pays (its insured were treated elsewhere)."""
        return self.insuplc_admdvs[:2] + "0000"

    @property
    def treatment_province(self) -> str:
        """The province that is paid (it treated them)."""
        return self.mdtrtarea_admvs[:2] + "0000"

    @classmethod
    def of(cls, record: JournalEntryRecord) -> Entry:
        """The value of a recorded row."""
        return cls(
            msgid=record.msgid,
            content_sha256=record.content_sha256,
            setl_id=record.setl_id,
            kind=Kind(record.kind),
            reverses_msgid=record.reverses_msgid,
            mdtrt_id=record.mdtrt_id,
            psn_no=record.psn_no,
            fixmedins_code=record.fixmedins_code,
            insuplc_admdvs=record.insuplc_admdvs,
            mdtrtarea_admvs=record.mdtrtarea_admvs,
            insutype=record.insutype,
            clr_type=record.clr_type,
            amounts=Amounts(*(getattr(record, name) for name in AMOUNT_FIELDS)),
            setl_time=as_utc(record.setl_time),
            seal=Seal(
                record.digest_algorithm,
                record.payload_digest,
                record.signature,
                record.signer_certificate,
                record.signer_admdvs,
            ),
        )

    def row(self, source_admdvs: str, record_time: datetime) -> dict[str, object]:
        """The ``clearing_journal`` row (bulk inserts take plain dicts)."""
        return {
            "msgid": self.msgid,
            "content_sha256": self.content_sha256,
            "source_admdvs": source_admdvs,
            "setl_id": self.setl_id,
            "kind": self.kind.value,
            "reverses_msgid": self.reverses_msgid,
            "mdtrt_id": self.mdtrt_id,
            "psn_no": self.psn_no,
            "fixmedins_code": self.fixmedins_code,
            "insuplc_admdvs": self.insuplc_admdvs,
            "mdtrtarea_admvs": self.mdtrtarea_admvs,
            "insured_province": self.insured_province,
            "treatment_province": self.treatment_province,
            "insutype": self.insutype,
            "clr_type": self.clr_type,
            **self.amounts.by_field(),
            "setl_time": as_utc(self.setl_time),
            "record_time": as_utc(record_time),
            "digest_algorithm": self.seal.digest_algorithm,
            "payload_digest": self.seal.digest,
            "signature": self.seal.signature,
            "signer_certificate": self.seal.signer_certificate,
            "signer_admdvs": self.seal.signer_admdvs,
            "cleared_period": None,
        }


@dataclass(frozen=True, slots=True)
class Appended:
    """What one delivery changed: entries newly recorded, and repeats of recorded ones."""

    appended_count: int
    duplicate_count: int


def ensure_sent_by_treatment_node(source_admdvs: str, entries: Sequence[Entry]) -> None:
    """A node journals only settlements made in its own region (PERMISSION_DENIED_REGION otherwise)."""
    for index, entry in enumerate(entries):
        if not region_contains(source_admdvs, entry.mdtrtarea_admvs):
            raise DomainError(
                "PERMISSION_DENIED_REGION",
                f"entries[{index}]: node {source_admdvs} cannot journal a settlement made in "
                f"region {entry.mdtrtarea_admvs}",
                metadata={
                    "field": f"entries[{index}].mdtrtarea_admvs",
                    "admdvs": entry.mdtrtarea_admvs,
                    "source_admdvs": source_admdvs,
                },
            )


def _recorded(session: Session, keys: Iterable[Key]) -> dict[Key, Entry]:
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    records = session.scalars(
        select(JournalEntryRecord).where(
            tuple_(JournalEntryRecord.fixmedins_code, JournalEntryRecord.msgid).in_(wanted)
        )
    )
    return {(record.fixmedins_code, record.msgid): Entry.of(record) for record in records}


def _reversals_of(session: Session, targets: Iterable[Key]) -> dict[Key, str]:
    """Settlement key → the msgid of the recorded reversal that undid it."""
    wanted = sorted(set(targets))
    if not wanted:
        return {}
    rows = session.execute(
        select(
            JournalEntryRecord.fixmedins_code, JournalEntryRecord.reverses_msgid, JournalEntryRecord.msgid
        ).where(tuple_(JournalEntryRecord.fixmedins_code, JournalEntryRecord.reverses_msgid).in_(wanted))
    )
    return {(code, target): msgid for code, target, msgid in rows if target is not None}


def _reversal_problems(
    entry: Entry, index: int, target: Entry | None, reversed_by: str | None
) -> list[DomainError]:
    where = f"entries[{index}]"
    if target is None:
        return [
            invalid(
                "INVALID_ARGUMENT",
                f"{where}.reverses_msgid",
                f"names no recorded settlement nor one earlier in this batch: {entry.reverses_msgid}",
            )
        ]
    if target.kind is not Kind.SETTLEMENT:
        return [invalid("INVALID_ARGUMENT", f"{where}.reverses_msgid", "names a reversal, not a settlement")]
    if reversed_by is not None:
        return [
            invalid(
                "INVALID_ARGUMENT",
                f"{where}.reverses_msgid",
                f"settlement {target.msgid} is already reversed by {reversed_by}",
            )
        ]
    problems = [
        invalid("INVALID_ARGUMENT", f"{where}.{name}", f"must equal the reversed settlement's {ours!r}")
        for name, ours, theirs in (
            ("insuplc_admdvs", target.insuplc_admdvs, entry.insuplc_admdvs),
            ("mdtrtarea_admvs", target.mdtrtarea_admvs, entry.mdtrtarea_admvs),
        )
        if ours != theirs
    ]
    mirrored = target.amounts.negated().by_field()
    problems += [
        invalid(
            "INVALID_ARGUMENT",
            f"{where}.{name}",
            f"must be {mirrored[name]}, the reversed settlement's amount negated, got {fen}",
        )
        for name, fen in entry.amounts.by_field().items()
        if fen != mirrored[name]
    ]
    return problems


def append(session: Session, source_admdvs: str, entries: Sequence[Entry], now: datetime) -> Appended:
    """Record the entries not yet recorded, all or none; repeats are counted, conflicts refused."""
    targets = [key for entry in entries if (key := entry.reverses_key) is not None]
    known = _recorded(session, [entry.key for entry in entries] + targets)
    reversed_by = _reversals_of(session, targets)
    batch: dict[Key, Entry] = {}
    new: list[Entry] = []
    problems: list[DomainError] = []
    for index, entry in enumerate(entries):
        earlier = batch.get(entry.key) or known.get(entry.key)
        if earlier is not None:
            if earlier.content_sha256 != entry.content_sha256:
                raise invalid(
                    "DUPLICATE_REQUEST",
                    f"entries[{index}].msgid",
                    f"{entry.msgid} is already journalled with different content",
                    metadata={"msgid": entry.msgid},
                )
            continue
        reverses = entry.reverses_key
        if entry.kind is Kind.REVERSAL and reverses is not None:
            target = batch.get(reverses) or known.get(reverses)
            found = _reversal_problems(entry, index, target, reversed_by.get(reverses))
            problems += found
            if not found:
                reversed_by[reverses] = entry.msgid
        batch[entry.key] = entry
        new.append(entry)
    error = combine(problems)
    if error is not None:
        raise error
    if new:
        session.execute(insert(JournalEntryRecord), [entry.row(source_admdvs, now) for entry in new])
    return Appended(len(new), len(entries) - len(new))


@dataclass(frozen=True, slots=True)
class Recorded:
    """An entry as the journal holds it: the delivered content and what the national node added."""

    entry: Entry
    record_time: datetime
    cleared_period: str

    @classmethod
    def of(cls, record: JournalEntryRecord) -> Recorded:
        """The value of a recorded row."""
        return cls(Entry.of(record), as_utc(record.record_time), record.cleared_period or "")


def list_entries(session: Session, query: ListJournalEntries, within: str = "") -> tuple[list[Recorded], str]:
    """One page of entries in record order; the token resumes after the last entry served.

    ``within``: only entries whose insured or treatment region lies in that region (a child
    node reads only its own part of the journal).
    """
    bounds = [moment.isoformat() if moment else "" for moment in (query.start_time, query.end_time)]
    key = f"journal:{query.province}:{bounds[0]}:{bounds[1]}:{within}"
    after = decode_token(query.page_token, key, 1)
    statement = select(JournalEntryRecord)
    if after is not None:
        if not after[0].isdigit():
            raise bad_token()
        statement = statement.where(JournalEntryRecord.seq > int(after[0]))
    if query.province:
        statement = statement.where(
            (JournalEntryRecord.insured_province == query.province)
            | (JournalEntryRecord.treatment_province == query.province)
        )
    if within:
        statement = statement.where(
            below(JournalEntryRecord.insuplc_admdvs, within)
            | below(JournalEntryRecord.mdtrtarea_admvs, within)
        )
    if query.start_time is not None:
        statement = statement.where(JournalEntryRecord.setl_time >= as_utc(query.start_time))
    if query.end_time is not None:
        statement = statement.where(JournalEntryRecord.setl_time < as_utc(query.end_time))
    records = session.scalars(statement.order_by(JournalEntryRecord.seq).limit(query.page_size + 1)).all()
    page = records[: query.page_size]
    token = encode_token([str(page[-1].seq)], key) if len(records) > query.page_size else ""
    return [Recorded.of(record) for record in page], token
