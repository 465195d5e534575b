"""Tables of the three-way reconciliation: runs, the discrepancies they found, and their report lines.

A discrepancy keeps each side's record as that side stated it (the national side's built
from its journal entry) as a snapshot: a versioned JSON document (:mod:`~.snapshots`), so
an operator sees them side by side and a repair replays exactly what the treatment node
recorded. A report
line sums, for one run, one China calendar day, one (insured province, treatment
province) pair and one insurance type, what each side recorded.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from yidi_services.clearing.models import SEQUENCE, Base

SNAPSHOT = JSON(none_as_null=True)
"""A side's snapshot document; a side that lacks the record is SQL NULL, not JSON null."""


class ReconciliationRunRow(Base):
    """One Reconcile request: its days, its state as a long-running job, and what it found."""

    __tablename__ = "clearing_reconciliation_runs"
    __table_args__ = (Index("ix_clearing_reconciliation_runs_state", "state"),)

    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    admdvs: Mapped[str] = mapped_column(String(6))
    state: Mapped[str] = mapped_column(String(12))
    compared_count: Mapped[int] = mapped_column(BigInteger)
    discrepancy_count: Mapped[int] = mapped_column(BigInteger)
    failure_reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DiscrepancyRow(Base):
    """One difference between the sides for one msgid; ``seq`` is the listing order."""

    __tablename__ = "clearing_reconciliation_discrepancies"
    __table_args__ = (
        Index("ix_clearing_reconciliation_discrepancies_run_id_seq", "run_id", "seq"),
        Index("ix_clearing_reconciliation_discrepancies_repaired_seq", "repaired", "seq"),
    )

    seq: Mapped[int] = mapped_column(SEQUENCE, primary_key=True, autoincrement=True)
    discrepancy_id: Mapped[str] = mapped_column(String(64), unique=True)
    run_id: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(24))
    msgid: Mapped[str] = mapped_column(String(64))
    setl_id: Mapped[str] = mapped_column(String(64))
    day: Mapped[date] = mapped_column(Date)
    insured_province: Mapped[str] = mapped_column(String(6))
    treatment_province: Mapped[str] = mapped_column(String(6))
    insutype: Mapped[str] = mapped_column(String(6))
    # The nodes that listed the treatment and insured records ("" when that side lacks it).
    treatment_node: Mapped[str] = mapped_column(String(6))
    insured_node: Mapped[str] = mapped_column(String(6))
    # Each side's record as a snapshot document; NULL when that side lacks it.
    treatment_snapshot: Mapped[dict[str, Any] | None] = mapped_column(SNAPSHOT, nullable=True)
    national_snapshot: Mapped[dict[str, Any] | None] = mapped_column(SNAPSHOT, nullable=True)
    insured_snapshot: Mapped[dict[str, Any] | None] = mapped_column(SNAPSHOT, nullable=True)
    # For a reversing record: the msgid of the settlement it undoes, as its record names it.
    reverses_msgid: Mapped[str] = mapped_column(String(64))
    repaired: Mapped[bool] = mapped_column(Boolean)
    repair_note: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    repaired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ReportLineRow(Base):
    """A run's report line for one day, province pair and insurance type.

    Per side: settlements net of reversals (a reversing record counts −1, as 3201 counts),
    total fees and fund payments.
    """

    __tablename__ = "clearing_reconciliation_lines"

    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    insured_province: Mapped[str] = mapped_column(String(6), primary_key=True)
    treatment_province: Mapped[str] = mapped_column(String(6), primary_key=True)
    insutype: Mapped[str] = mapped_column(String(6), primary_key=True)
    treatment_count: Mapped[int] = mapped_column(BigInteger)
    treatment_medfee_fen: Mapped[int] = mapped_column(BigInteger)
    treatment_fund_fen: Mapped[int] = mapped_column(BigInteger)
    national_count: Mapped[int] = mapped_column(BigInteger)
    national_medfee_fen: Mapped[int] = mapped_column(BigInteger)
    national_fund_fen: Mapped[int] = mapped_column(BigInteger)
    insured_count: Mapped[int] = mapped_column(BigInteger)
    insured_medfee_fen: Mapped[int] = mapped_column(BigInteger)
    insured_fund_fen: Mapped[int] = mapped_column(BigInteger)
    discrepancy_count: Mapped[int] = mapped_column(BigInteger)
