"""Tables of the insured side of settlement: personal accounts, annual accumulators, applications.

Money is integer fen (``BigInteger``). The account row doubles as the person's lock: every
change to a person's accumulators or account first locks it, so concurrent settlements of
one person apply one after the other and a cap is never overrun (the account spans years,
so the person, not the person-year, is the unit that must be serialized).

An application is keyed by the ``request_id`` of the ApplySettlement that made it. The same
key holds the tombstone a revert leaves for an application that never arrived, so of an
apply and a revert racing for one id exactly one insert wins.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from yidi_services.settlement.models import Base


class ApplicationState(StrEnum):
    """Where an applied settlement stands at the insured node (a hold until confirmed)."""

    HELD = "held"
    CONFIRMED = "confirmed"
    EXPIRED = "expired"
    """Voided: its hold timed out and the treatment node answered that it never recorded it (and never will)."""
    REVERTED = "reverted"
    """Voided by RevertSettlement; refused (CORRECTED) for ever after."""
    TOMBSTONE = "tombstone"
    """Never applied, reverted in advance: the apply is refused (CORRECTED) if it ever arrives."""


class ApplicationKind(StrEnum):
    """What an application records: a settlement the treatment node applied, or a bill reimbursed here."""

    DIRECT = "direct"
    MANUAL_REIMBURSEMENT = "manual_reimbursement"
    """A self-pay bill reimbursed online by this node's operators (手工报销线上办理): final at once."""


class AccountRow(Base):
    """A person's personal account (个人账户) balance, and the row every change of the person locks.

    ``family_balance_fen`` is what is left of the registered family member's account (门诊共济)
    for this patient: NULL until it first pays, when it is seeded from the person record's
    ``family_account_balance_fen`` and debited; from then on the ledger, not the record, counts.
    """

    __tablename__ = "settlement_insured_accounts"

    psn_no: Mapped[str] = mapped_column(String(30), primary_key=True)
    balance_fen: Mapped[int] = mapped_column(BigInteger)
    family_balance_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class AccumulatorRow(Base):
    """One annual accumulator (年度累计) of a person: deductible, segment scale or cap, by key."""

    __tablename__ = "settlement_insured_accumulators"

    psn_no: Mapped[str] = mapped_column(String(30), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(12), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value_fen: Mapped[int] = mapped_column(BigInteger)


class ApplicationRow(Base):
    """One applied settlement (or a tombstone): exactly what it changed, so it can be undone exactly.

    ``changes`` lists ``[kind, key, delta_fen]`` of the accumulators; ``account_delta_fen`` is
    the account's change (minus the account payment), ``family_delta_fen`` the family account's
    (minus ``acct_mulaid_pay``).
    """

    __tablename__ = "settlement_insured_applications"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(12))
    psn_no: Mapped[str] = mapped_column(String(30))
    year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    setl_id: Mapped[str] = mapped_column(String(40))
    policy_version: Mapped[str] = mapped_column(String(80))
    changes: Mapped[list[Any]] = mapped_column(JSON)
    account_delta_fen: Mapped[int] = mapped_column(BigInteger)
    family_delta_fen: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    medfee_sumamt_fen: Mapped[int] = mapped_column(BigInteger)
    fund_pay_sumamt_fen: Mapped[int] = mapped_column(BigInteger)
    acct_pay_fen: Mapped[int] = mapped_column(BigInteger)
    psn_cash_pay_fen: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    hold_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    voided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The treatment node's seal of the ApplySettlement (yidi_runtime.integrity), so a dispute
    # can show which node sent what; empty when it came unsealed (insecure development nodes).
    digest_algorithm: Mapped[str] = mapped_column(String(16), default="")
    payload_digest: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    signature: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    signer_certificate: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    signer_admdvs: Mapped[str] = mapped_column(String(6), default="")
    # The node that applied it (the route's origin, its seal's signer between mTLS nodes): the
    # only node that may confirm or revert it, and the one asked when its hold times out.
    origin_admdvs: Mapped[str] = mapped_column(String(6), default="")
    # Times the treatment node was asked about the timed-out hold without an answer.
    resolve_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # An ApplicationKind: a manual reimbursement is keyed by its bill (``<bill_id>:reimburse``), its
    # ``setl_id`` is the bill's id and its ``origin_admdvs`` this node.
    kind: Mapped[str] = mapped_column(String(24), default=ApplicationKind.DIRECT.value)

    __table_args__ = (
        Index("ix_settlement_insured_applications_holds", "state", "hold_expires_at"),
        # ListSettlementRecords pages by apply time (reconciliation).
        Index("ix_settlement_insured_applications_created_at", "created_at", "request_id"),
    )


class AuditAdjustmentRow(Base):
    """A treatment place's large-bill audit adjustment (大额协查核减) of one of this node's settlements.

    The fund over-paid the hospital by ``disallowed_fen``; it recovers that from the hospital
    (a clawback in the next clearing), so the application, the person's accumulators and
    account stay as they are: the patient's share is unchanged.
    """

    __tablename__ = "settlement_insured_audit_adjustments"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    application_request_id: Mapped[str] = mapped_column(String(64))
    setl_id: Mapped[str] = mapped_column(String(40), index=True)
    psn_no: Mapped[str] = mapped_column(String(30))
    treatment_admdvs: Mapped[str] = mapped_column(String(6))
    disallowed_fen: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
