"""Tables owned by the filing service (table names start with `filing_`).

Person numbers and filing ids start with the insured region's code, so a region filter is
a range of the key and keyset pages stay cheap. Filing ids also carry the submission time
(``PPCCDD`` + ``yyyyMMddHHmmss`` + 10 characters), so ordering by id is ordering by age.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from yidi_runtime.db import service_base
from yidi_runtime.idempotency import request_model

Base = service_base("filing")

RequestRecord = request_model(Base)


class PersonRow(Base):
    """An insured person (参保人员) at this insured-place node."""

    __tablename__ = "filing_persons"

    psn_no: Mapped[str] = mapped_column(String(30), primary_key=True)
    certno: Mapped[str] = mapped_column(String(18), unique=True)
    psn_name: Mapped[str] = mapped_column(String(50))
    insuplc_admdvs: Mapped[str] = mapped_column(String(6))
    insutype: Mapped[str] = mapped_column(String(3))
    psn_type: Mapped[str] = mapped_column(String(4))
    insured_since: Mapped[date | None] = mapped_column(Date, nullable=True)
    credential_activated: Mapped[bool] = mapped_column(Boolean)
    has_personal_account: Mapped[bool] = mapped_column(Boolean)
    emp_name: Mapped[str] = mapped_column(String(200))
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # What the further funds and 门诊共济 read (settlement-rules.md, "Further funds").
    low_income: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    civil_servant: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    assistance_category: Mapped[str] = mapped_column(String(20), default="", server_default="")
    family_account_balance_fen: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    __table_args__ = (Index("ix_filing_persons_region", "insuplc_admdvs", "psn_no"),)


class ContributionGapRow(Base):
    """A period without contributions (中断缴费), inclusive; ``end_date`` is None while open."""

    __tablename__ = "filing_contribution_gaps"

    psn_no: Mapped[str] = mapped_column(
        String(30),
        ForeignKey("filing_persons.psn_no", ondelete="CASCADE", name="fk_filing_contribution_gaps_person"),
        primary_key=True,
    )
    start_date: Mapped[date] = mapped_column(Date, primary_key=True)
    end_date: Mapped[date | None] = mapped_column(Date, nullable=True)


class FilingRow(Base):
    """One out-of-area filing (异地就医备案) and its life-cycle state.

    ``applicant`` and ``materials`` are stored as documents: they are shown and re-checked,
    never searched.
    """

    __tablename__ = "filing_filings"

    filing_id: Mapped[str] = mapped_column(String(30), primary_key=True)
    psn_no: Mapped[str] = mapped_column(
        String(30), ForeignKey("filing_persons.psn_no", name="fk_filing_filings_person")
    )
    insuplc_admdvs: Mapped[str] = mapped_column(String(6))
    treatment_admdvs: Mapped[str] = mapped_column(String(6))
    category: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(30))
    applicant: Mapped[dict[str, Any]] = mapped_column(JSON)
    materials: Mapped[dict[str, Any]] = mapped_column(JSON)
    designated_institutions: Mapped[list[str]] = mapped_column(JSON)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    retroactive: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(20))
    state_reason: Mapped[str] = mapped_column(String(500))
    review_deadline: Mapped[date | None] = mapped_column(Date, nullable=True)
    supersedes_filing_id: Mapped[str] = mapped_column(String(30))
    superseded_by_filing_id: Mapped[str] = mapped_column(String(30))
    submit_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decide_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reviewer: Mapped[str] = mapped_column(String(100))
    # Who entered it (the caller's subject): an institution sees and changes only its own.
    entered_by: Mapped[str] = mapped_column(String(100), default="", index=True)
    # The rules the application was checked against (``rules.version_label``); "legacy" before issue 21.
    rules_version: Mapped[str] = mapped_column(String(20), default="legacy")

    __table_args__ = (
        Index("ix_filing_filings_person", "psn_no", "state"),
        Index("ix_filing_filings_queue", "insuplc_admdvs", "state", "review_deadline", "filing_id"),
    )


class RulesRow(Base):
    """An insured region's filing rules (参保地备案规则) from their effective date, as one document."""

    __tablename__ = "filing_rules"

    insuplc_admdvs: Mapped[str] = mapped_column(String(6), primary_key=True)
    effective_date: Mapped[date] = mapped_column(Date, primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The region's n-th rules stored (a correction on the same effective date is a new version).
    version: Mapped[int] = mapped_column(Integer, default=1)


class RecheckRow(Base):
    """A filing that no longer passes its region's new rules, and what the operator decided.

    ``failures`` is a list of ``{"reason", "field", "message"}``: the refusals a new
    application with the filing's contents would get under the new rules.
    """

    __tablename__ = "filing_rechecks"

    filing_id: Mapped[str] = mapped_column(
        String(30), ForeignKey("filing_filings.filing_id", name="fk_filing_rechecks_filing"), primary_key=True
    )
    new_rules_version: Mapped[str] = mapped_column(String(20), primary_key=True)
    insuplc_admdvs: Mapped[str] = mapped_column(String(6))
    old_rules_version: Mapped[str] = mapped_column(String(20))
    failures: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20))
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decision_reason: Mapped[str] = mapped_column(String(500), default="")
    decided_by: Mapped[str] = mapped_column(String(100), default="")
    decide_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (Index("ix_filing_rechecks_region", "insuplc_admdvs", "state", "filing_id"),)
