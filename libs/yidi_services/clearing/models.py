"""Tables owned by the clearing service (table names start with `clearing_`).

The national settlement journal is append-only (DESIGN.md, performance notes): province
positions are aggregated from it rather than kept in hot balance rows, and the only
column ever updated is ``cleared_period``, set once when monthly clearing counts an entry.
Each entry keeps the provinces of both sides beside the regions, so the clearing sums
(per insured province, per treatment province, per month of ``setl_time``) are plain
indexed range scans; two partial indexes hold only the entries not yet cleared, which is
all that clearing and advance usage ever look for.

The ledger is double-entry: an entry's postings sum to zero, and balances are sums of
postings (no balance row is ever updated). Statements, their lines, transfers, clawbacks,
advances, alerts and clearing runs are small tables: a few rows per province and month.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from yidi_runtime.db import service_base
from yidi_runtime.idempotency import request_model

Base = service_base("clearing")
RequestRecord = request_model(Base)

SEQUENCE = BigInteger().with_variant(Integer(), "sqlite")
"""64-bit record order on PostgreSQL; SQLite autoincrements only an INTEGER primary key (its rowid)."""

PERIOD = String(7)
"""A clearing period, ``yyyy-MM``."""

REGION = String(6)
"""A region code (admdvs)."""


def _uncleared(name: str, *columns: str) -> Index:
    """A partial index over the journal entries no clearing has counted yet."""
    where = text("cleared_period IS NULL")
    return Index(name, *columns, sqlite_where=where, postgresql_where=where)


class JournalEntryRecord(Base):
    """One settlement or reversal as the treatment node delivered it; ``seq`` is the record order."""

    __tablename__ = "clearing_journal"
    __table_args__ = (
        # A msgid is unique per institution (the one that sent it); a settlement is reversed at
        # most once (NULL for a settlement).
        UniqueConstraint("fixmedins_code", "msgid"),
        UniqueConstraint("fixmedins_code", "reverses_msgid"),
        Index("ix_clearing_journal_setl_time", "setl_time"),
        Index("ix_clearing_journal_insured_province_setl_time", "insured_province", "setl_time"),
        Index("ix_clearing_journal_treatment_province_setl_time", "treatment_province", "setl_time"),
        _uncleared("ix_clearing_journal_uncleared_setl_time", "setl_time"),
        _uncleared("ix_clearing_journal_uncleared_insured", "insured_province", "setl_time"),
    )

    seq: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    msgid: Mapped[str] = mapped_column(String(64))
    content_sha256: Mapped[str] = mapped_column(String(64))
    source_admdvs: Mapped[str] = mapped_column(REGION)
    setl_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(12))
    reverses_msgid: Mapped[str | None] = mapped_column(String(64))
    mdtrt_id: Mapped[str] = mapped_column(String(64))
    psn_no: Mapped[str] = mapped_column(String(64))
    fixmedins_code: Mapped[str] = mapped_column(String(12))
    insuplc_admdvs: Mapped[str] = mapped_column(REGION)
    mdtrtarea_admvs: Mapped[str] = mapped_column(REGION)
    insured_province: Mapped[str] = mapped_column(REGION)
    treatment_province: Mapped[str] = mapped_column(REGION)
    insutype: Mapped[str] = mapped_column(String(6))
    clr_type: Mapped[str] = mapped_column(String(2))
    medfee_sumamt_fen: Mapped[int] = mapped_column(BigInteger)
    fund_pay_sumamt_fen: Mapped[int] = mapped_column(BigInteger)
    acct_pay_fen: Mapped[int] = mapped_column(BigInteger)
    psn_cash_pay_fen: Mapped[int] = mapped_column(BigInteger)
    setl_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    record_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The treatment node's seal (yidi_runtime.integrity), empty when the entry came unsealed.
    digest_algorithm: Mapped[str] = mapped_column(String(16), default="")
    payload_digest: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    signer_certificate: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    signer_admdvs: Mapped[str] = mapped_column(REGION)
    cleared_period: Mapped[str | None] = mapped_column(PERIOD)


class LedgerEntryRecord(Base):
    """One balanced ledger entry (its postings sum to zero); ``seq`` is the posting order."""

    __tablename__ = "clearing_ledger_entries"

    seq: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    source_id: Mapped[str] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(String(400))
    post_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LedgerPostingRecord(Base):
    """One posting: fen to one account (province, kind); positive debit, negative credit."""

    __tablename__ = "clearing_ledger_postings"
    __table_args__ = (Index("ix_clearing_ledger_postings_admdvs_entry", "admdvs", "entry_seq"),)

    seq: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    entry_seq: Mapped[int] = mapped_column(BigInteger, ForeignKey("clearing_ledger_entries.seq"), index=True)
    admdvs: Mapped[str] = mapped_column(REGION)
    kind: Mapped[str] = mapped_column(String(16))
    amount_fen: Mapped[int] = mapped_column(BigInteger)


class AdvanceRecord(Base):
    """A province's advance for a year (预付金): the amount set, and emergency top-ups (紧急调增) on top."""

    __tablename__ = "clearing_advances"

    admdvs: Mapped[str] = mapped_column(REGION, primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    set_fen: Mapped[int] = mapped_column(BigInteger)
    topped_up_fen: Mapped[int] = mapped_column(BigInteger)
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AdvanceProposalRecord(Base):
    """A province's proposed advance for a year and its basis (预付金测算); applied at most once."""

    __tablename__ = "clearing_advance_proposals"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    admdvs: Mapped[str] = mapped_column(REGION, primary_key=True)
    periods: Mapped[str] = mapped_column(String(100))
    outflow_fen: Mapped[int] = mapped_column(BigInteger)
    rule_months: Mapped[str] = mapped_column(String(16))
    minimum_fen: Mapped[int] = mapped_column(BigInteger)
    proposed_fen: Mapped[int] = mapped_column(BigInteger)
    propose_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    applied_fen: Mapped[int | None] = mapped_column(BigInteger)
    applied_by: Mapped[str] = mapped_column(String(64), default="")
    apply_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    override_reason: Mapped[str] = mapped_column(String(200), default="")


class AlertRecord(Base):
    """An alert; ``active_key`` (kind and subject) is unique while active, so a condition raises once."""

    __tablename__ = "clearing_alerts"

    seq: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(24))
    level: Mapped[str] = mapped_column(String(8))
    admdvs: Mapped[str] = mapped_column(REGION)
    subject: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(String(400))
    raise_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    active: Mapped[bool] = mapped_column(Boolean)
    resolve_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    active_key: Mapped[str | None] = mapped_column(String(80), unique=True)


class ClearingRunRecord(Base):
    """One attempt to clear a period; ``active_period`` (unique, NULL once failed) allows one live run per period."""

    __tablename__ = "clearing_runs"

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    period: Mapped[str] = mapped_column(PERIOD, index=True)
    state: Mapped[str] = mapped_column(String(12))
    active_period: Mapped[str | None] = mapped_column(PERIOD, unique=True)
    entries_counted: Mapped[int] = mapped_column(BigInteger)
    failure_reason: Mapped[str] = mapped_column(String(400))
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StatementRecord(Base):
    """A province's statement (清算单) for a period; its lines are the period's lines naming the province."""

    __tablename__ = "clearing_statements"

    statement_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    period: Mapped[str] = mapped_column(PERIOD)
    admdvs: Mapped[str] = mapped_column(REGION, index=True)
    run_id: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(12))
    payable_fen: Mapped[int] = mapped_column(BigInteger)
    receivable_fen: Mapped[int] = mapped_column(BigInteger)
    net_fen: Mapped[int] = mapped_column(BigInteger)
    issue_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    confirm_by: Mapped[date] = mapped_column(Date)
    confirm_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confirmed_by: Mapped[str] = mapped_column(String(64))
    transfer_by: Mapped[date] = mapped_column(Date)
    transferred_fen: Mapped[int] = mapped_column(BigInteger)
    settle_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispute_reason: Mapped[str] = mapped_column(String(200), default="")
    disputed_by: Mapped[str] = mapped_column(String(64), default="")
    dispute_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StatementLineRecord(Base):
    """One line of a period: a (insured, treatment) pair, or an adjustment carried from a closed period."""

    __tablename__ = "clearing_statement_lines"
    __table_args__ = (
        Index("ix_clearing_statement_lines_period_position", "period", "position", unique=True),
    )

    seq: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    period: Mapped[str] = mapped_column(PERIOD)
    position: Mapped[int] = mapped_column(Integer)
    insured_admdvs: Mapped[str] = mapped_column(REGION)
    treatment_admdvs: Mapped[str] = mapped_column(REGION)
    settlement_count: Mapped[int] = mapped_column(Integer)
    medfee_sumamt_fen: Mapped[int] = mapped_column(BigInteger)
    fund_pay_sumamt_fen: Mapped[int] = mapped_column(BigInteger)
    adjustment: Mapped[bool] = mapped_column(Boolean)
    origin_period: Mapped[str | None] = mapped_column(PERIOD)
    adjustment_note: Mapped[str] = mapped_column(String(400))


class TransferRecord(Base):
    """Money moved for a confirmed statement (in from a paying province, out to a paid one)."""

    __tablename__ = "clearing_transfers"

    seq: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    statement_id: Mapped[str] = mapped_column(
        String(16), ForeignKey("clearing_statements.statement_id"), index=True
    )
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    bank_reference: Mapped[str] = mapped_column(String(64))
    transfer_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    record_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ClawbackRecord(Base):
    """A clawback (追回) ordered by supervision; it enters the first clearing at or after ``adjustment_period``."""

    __tablename__ = "clearing_clawbacks"

    seq: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    fixmedins_code: Mapped[str] = mapped_column(String(12), default="")
    msgid: Mapped[str] = mapped_column(String(64), index=True)
    insured_province: Mapped[str] = mapped_column(REGION)
    treatment_province: Mapped[str] = mapped_column(REGION)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(400))
    origin_period: Mapped[str] = mapped_column(PERIOD)
    adjustment_period: Mapped[str] = mapped_column(PERIOD)
    cleared_period: Mapped[str | None] = mapped_column(PERIOD, index=True)
    record_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
