"""Tables owned by the clearing service (table names start with `clearing_`).

The national settlement journal is append-only (DESIGN.md, performance notes): province
positions are aggregated from it rather than kept in hot balance rows, and the only
column ever updated is ``cleared_period``, set once when monthly clearing counts an entry.
Each entry keeps the provinces of both sides beside the regions, so the clearing sums
(per insured province, per treatment province, per month of ``setl_time``) are plain
indexed range scans.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from yidi_runtime.db import service_base
from yidi_runtime.idempotency import request_model

Base = service_base("clearing")
RequestRecord = request_model(Base)

SEQUENCE = BigInteger().with_variant(Integer(), "sqlite")
"""64-bit record order on PostgreSQL; SQLite autoincrements only an INTEGER primary key (its rowid)."""


class JournalEntryRecord(Base):
    """One settlement or reversal as the treatment node delivered it; ``seq`` is the record order."""

    __tablename__ = "clearing_journal"
    __table_args__ = (
        Index("ix_clearing_journal_setl_time", "setl_time"),
        Index("ix_clearing_journal_insured_province_setl_time", "insured_province", "setl_time"),
        Index("ix_clearing_journal_treatment_province_setl_time", "treatment_province", "setl_time"),
    )

    seq: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    msgid: Mapped[str] = mapped_column(String(64), unique=True)
    content_sha256: Mapped[str] = mapped_column(String(64))
    source_admdvs: Mapped[str] = mapped_column(String(6))
    setl_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(12))
    # Unique: a settlement is reversed at most once (NULL for a settlement).
    reverses_msgid: Mapped[str | None] = mapped_column(String(64), unique=True)
    mdtrt_id: Mapped[str] = mapped_column(String(64))
    psn_no: Mapped[str] = mapped_column(String(64))
    fixmedins_code: Mapped[str] = mapped_column(String(12))
    insuplc_admdvs: Mapped[str] = mapped_column(String(6))
    mdtrtarea_admvs: Mapped[str] = mapped_column(String(6))
    insured_province: Mapped[str] = mapped_column(String(6))
    treatment_province: Mapped[str] = mapped_column(String(6))
    insutype: Mapped[str] = mapped_column(String(6))
    clr_type: Mapped[str] = mapped_column(String(2))
    medfee_sumamt_fen: Mapped[int] = mapped_column(BigInteger)
    fund_pay_sumamt_fen: Mapped[int] = mapped_column(BigInteger)
    acct_pay_fen: Mapped[int] = mapped_column(BigInteger)
    psn_cash_pay_fen: Mapped[int] = mapped_column(BigInteger)
    setl_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    record_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payload_digest: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    signer_admdvs: Mapped[str] = mapped_column(String(6))
    cleared_period: Mapped[str | None] = mapped_column(String(7))
