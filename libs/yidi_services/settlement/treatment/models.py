"""Tables of the treatment side: visits, fee lines, settlements, outcomes, audit cases, self-pay bills.

A record reads without protobuf, in SQL as in code. What is queried, summed or compared is a
typed column named as the proto's field (a settlement's amounts in fen, a fee line's split,
a visit's facts, a bill's total); what nests (diagnoses, fund lines, classified lines,
accumulator changes, the explanation, a bill's facts and lines) is a versioned JSON
document, ``{"v": 1, ...}``, money in fen. :mod:`yidi_codec.documents` converts both ways.
Only a signed answer stays bytes (``ReceiptRow.answer``: its exact bytes are the evidence).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from yidi_services.settlement.models import Base

_ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite numbers rows only as INTEGER PRIMARY KEY


class VisitState(StrEnum):
    """A visit's life (就诊状态): open, discharged (inpatient), settled or cancelled."""

    OPEN = "open"
    DISCHARGED = "discharged"
    SETTLED = "settled"
    CANCELLED = "cancelled"


class Outcome(StrEnum):
    """What became of a correctable request id: it took effect, a correction (冲正) barred it, or the
    insured node whose hold timed out fenced it (it is then never recorded)."""

    APPLIED = "applied"
    CORRECTED = "corrected"
    FENCED = "fenced"


class VisitRow(Base):
    """One visit (就诊, ``mdtrt_id``) registered by an institution of this node's region.

    Its facts (VisitFacts) are ``fixmedins_code``, ``mdtrtarea_admvs`` and the columns from
    ``med_type`` to ``diagnoses`` (a document, ``{"v": 1, "codes": [...]}``).
    """

    __tablename__ = "settlement_visits"

    mdtrt_id: Mapped[str] = mapped_column(String(30), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64))
    fixmedins_code: Mapped[str] = mapped_column(String(12))
    mdtrtarea_admvs: Mapped[str] = mapped_column(String(6))
    insuplc_admdvs: Mapped[str] = mapped_column(String(6))
    psn_no: Mapped[str] = mapped_column(String(30))
    insutype: Mapped[str] = mapped_column(String(6))
    med_type: Mapped[str] = mapped_column(String(6))
    service_date: Mapped[date] = mapped_column(Date)
    """The discharge day of an inpatient stay once discharged."""
    institution_level: Mapped[str] = mapped_column(String)
    """As the HIS sent it (spaces around the code kept), else the registry's."""
    chronic_disease: Mapped[str] = mapped_column(String(6))
    emergency: Mapped[bool] = mapped_column(Boolean)
    diagnoses: Mapped[dict[str, Any]] = mapped_column(JSON)
    ipt_otp_no: Mapped[str] = mapped_column(String(30))
    dept_code: Mapped[str] = mapped_column(String(30))
    atddr_no: Mapped[str] = mapped_column(String(30))
    begin_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    state: Mapped[str] = mapped_column(String(12))
    setl_id: Mapped[str | None] = mapped_column(String(30), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    refusal_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    """The stable reason the visit's last Settle or PreSettle was refused for (the direct-settlement rate)."""
    refused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    self_pay_bill_id: Mapped[str | None] = mapped_column(String(30), nullable=True)
    """The self-pay bill uploaded to reimburse this visit manually, if one names it."""
    trauma_no_third_party: Mapped[bool] = mapped_column(Boolean, default=False)
    """An injury (外伤) whose patient declared no third party liable: the only injury registered."""

    __table_args__ = (Index("ix_settlement_visits_service_date", "service_date"),)


class FeeLineRow(Base):
    """One fee line of a visit (费用明细) as uploaded, with its classification by the catalogue in force.

    ``fingerprint`` is the digest of the uploaded line: the same serial again with the same
    digest is a no-op, with another one DUPLICATE_REQUEST. A cancelled line stays, inactive.
    ``uploaded`` is the FeeItem, a document. Its classification (ItemResult) is its split in
    fen, typed (the visit's lines are summed), and the rest in ``classified``, a document.
    """

    __tablename__ = "settlement_fee_lines"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    mdtrt_id: Mapped[str] = mapped_column(String(30))
    feedetl_sn: Mapped[str] = mapped_column(String(64))
    upload_request_id: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    uploaded: Mapped[dict[str, Any]] = mapped_column(JSON)
    det_item_fee_sumamt_fen: Mapped[int] = mapped_column(BigInteger)
    fulamt_ownpay_amt_fen: Mapped[int] = mapped_column(BigInteger)
    overlmt_amt_fen: Mapped[int] = mapped_column(BigInteger)
    preselfpay_amt_fen: Mapped[int] = mapped_column(BigInteger)
    inscp_scp_amt_fen: Mapped[int] = mapped_column(BigInteger)
    classified: Mapped[dict[str, Any]] = mapped_column(JSON)
    catalogue_version: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    mid_setl_id: Mapped[str | None] = mapped_column(String(30), nullable=True)
    """The mid-stay settlement (中途结算) that settled the line while its stay went on; a later
    settlement of the stay covers only the lines without one."""

    __table_args__ = (UniqueConstraint("mdtrt_id", "feedetl_sn"),)


class OutcomeRow(Base):
    """The fate of a correctable request id (register, upload, settle): applied or corrected.

    One row per institution (``owner``) and id, inserted by whichever of the request and its correction commits first,
    so exactly one of them wins; ``mdtrt_id`` is the visit an applied request acted on and
    ``correction_id`` the correction that barred or undid it.
    """

    __tablename__ = "settlement_outcomes"

    owner: Mapped[str] = mapped_column(String(100), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    operation: Mapped[str] = mapped_column(String(24))
    mdtrt_id: Mapped[str | None] = mapped_column(String(30), nullable=True)
    outcome: Mapped[str] = mapped_column(String(12))
    correction_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fenced_by: Mapped[str | None] = mapped_column(String(6), nullable=True)
    """The insured node that fenced a Settle its hold timed out on (FENCED only)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SettlementRow(Base):
    """One settlement record (结算) or its reversing record, as the treatment place keeps it.

    ``insured_request_id`` is the id the insured node knows it by: the ApplySettlement id of
    a settlement, the RevertSettlement id of a reversal. The SettlementResult the insured node
    answered (negated for a reversal) is the columns from ``medfee_sumamt_fen`` to ``details``:
    its amounts in fen and its versions typed (the journal and the reconciliation read them),
    its fund lines, classified lines, accumulator changes and explanation a document.
    """

    __tablename__ = "settlement_settlements"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    setl_id: Mapped[str] = mapped_column(String(30), unique=True)
    medins_setl_id: Mapped[str] = mapped_column(String(64))
    insured_request_id: Mapped[str] = mapped_column(String(64))
    mdtrt_id: Mapped[str] = mapped_column(String(30), index=True)
    psn_no: Mapped[str] = mapped_column(String(30))
    fixmedins_code: Mapped[str] = mapped_column(String(12), index=True)
    mdtrtarea_admvs: Mapped[str] = mapped_column(String(6))
    insuplc_admdvs: Mapped[str] = mapped_column(String(6))
    insutype: Mapped[str] = mapped_column(String(6))
    med_type: Mapped[str] = mapped_column(String(6))
    clr_type: Mapped[str] = mapped_column(String(2))
    pay_loc: Mapped[str] = mapped_column(String(1))
    invono: Mapped[str] = mapped_column(String(64))
    setl_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    medfee_sumamt_fen: Mapped[int] = mapped_column(BigInteger)
    fulamt_ownpay_amt_fen: Mapped[int] = mapped_column(BigInteger)
    overlmt_selfpay_fen: Mapped[int] = mapped_column(BigInteger)
    preselfpay_amt_fen: Mapped[int] = mapped_column(BigInteger)
    inscp_scp_amt_fen: Mapped[int] = mapped_column(BigInteger)
    act_pay_dedc_fen: Mapped[int] = mapped_column(BigInteger)
    hifp_pay_fen: Mapped[int] = mapped_column(BigInteger)
    pool_prop_selfpay: Mapped[str] = mapped_column(String(24))
    fund_pay_sumamt_fen: Mapped[int] = mapped_column(BigInteger)
    psn_part_amt_fen: Mapped[int] = mapped_column(BigInteger)
    acct_pay_fen: Mapped[int] = mapped_column(BigInteger)
    psn_cash_pay_fen: Mapped[int] = mapped_column(BigInteger)
    balc_fen: Mapped[int] = mapped_column(BigInteger)
    cap_exhausted: Mapped[bool] = mapped_column(Boolean)
    catalogue_version: Mapped[str] = mapped_column(String(100))
    policy_version: Mapped[str] = mapped_column(String(80))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    audit_flag: Mapped[bool] = mapped_column(Boolean)
    reversed: Mapped[bool] = mapped_column(Boolean)
    reverses_setl_id: Mapped[str | None] = mapped_column(String(30), nullable=True)
    mid_setl_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    """A part of an inpatient stay settled while it went on (中途结算); its reversal says so too."""
    trauma_no_third_party: Mapped[bool] = mapped_column(Boolean, default=False)
    """Its visit's injury with no liable third party (the visit's flag, copied)."""

    __table_args__ = (
        # ListSettlementRecords pages by settlement time (reconciliation).
        Index("ix_settlement_settlements_setl_time", "setl_time", "id"),
        # A msgid is unique per institution, the one that sent it.
        UniqueConstraint("fixmedins_code", "medins_setl_id"),
    )


class AuditState(StrEnum):
    """Where a large-bill audit case stands: queued, accepted as billed, or adjusted (part disallowed)."""

    OPEN = "open"
    ACCEPTED = "accepted"
    ADJUSTED = "adjusted"


class AuditCaseRow(Base):
    """A large cross-province inpatient bill (≥ 30,000 yuan) opened for treatment-place audit (费用协查).

    Decided once by an operator of the treatment region (:mod:`~yidi_services.settlement.treatment.audit`):
    ``decision_request_id`` is the decision's msgid, ``decided_by`` the operator.
    """

    __tablename__ = "settlement_audit_cases"

    setl_id: Mapped[str] = mapped_column(String(30), primary_key=True)
    mdtrt_id: Mapped[str] = mapped_column(String(30))
    fixmedins_code: Mapped[str] = mapped_column(String(12))
    insuplc_admdvs: Mapped[str] = mapped_column(String(6))
    medfee_sumamt_fen: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(12), default=AuditState.OPEN.value)
    due_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    """The last working day to decide on; None for a case queued before deadlines existed."""
    disallowed_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    reason: Mapped[str] = mapped_column(String(200), default="")
    decided_by: Mapped[str] = mapped_column(String(100), default="")
    decision_request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (Index("ix_settlement_audit_cases_state", "state", "created_at"),)


class SelfPayBillRow(Base):
    """A full bill uploaded for online manual reimbursement (手工报销线上办理).

    The credential is kept as presented (the insured place identifies the person by it) and
    masked in every view. The rest of the SelfPayBill message is ``fixmedins_code``,
    ``insuplc_admdvs`` and the columns from ``medfee_sumamt_fen`` to ``details``, a document
    of its facts, lines and invoice numbers.
    """

    __tablename__ = "settlement_self_pay_bills"

    bill_id: Mapped[str] = mapped_column(String(30), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64))
    fixmedins_code: Mapped[str] = mapped_column(String(12), index=True)
    insuplc_admdvs: Mapped[str] = mapped_column(String(6))
    mdtrt_cert_type: Mapped[str] = mapped_column(String(2))
    mdtrt_cert_no: Mapped[str] = mapped_column(String(64))
    card_sn: Mapped[str] = mapped_column(String(64))
    medfee_sumamt_fen: Mapped[int] = mapped_column(BigInteger)
    service_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    direct_settlement_failure_reason: Mapped[str] = mapped_column(String(40))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    mdtrt_id: Mapped[str | None] = mapped_column(String(30), nullable=True)
    upload_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReceiptRow(Base):
    """An answer another node signed for a sealed message this node sent it (回执), kept for disputes.

    ``answer`` is the receiver's encoded response, its ``receipt`` seal included, so anyone can
    later check what that node acknowledged (``yidi_runtime.integrity.matches``).
    """

    __tablename__ = "settlement_receipts"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    method: Mapped[str] = mapped_column(String(40), primary_key=True)
    signer_admdvs: Mapped[str] = mapped_column(String(6))
    answer: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
