"""Tables of the treatment side's visits, fee lines, settlements and bills.

Revision ID: settlement_0004
Revises: settlement_0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "settlement_0004"
down_revision = "settlement_0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the tables."""
    op.create_table(
        "settlement_visits",
        sa.Column("mdtrt_id", sa.String(30), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("fixmedins_code", sa.String(12), nullable=False),
        sa.Column("mdtrtarea_admvs", sa.String(6), nullable=False),
        sa.Column("insuplc_admdvs", sa.String(6), nullable=False),
        sa.Column("psn_no", sa.String(30), nullable=False),
        sa.Column("insutype", sa.String(6), nullable=False),
        sa.Column("facts", sa.LargeBinary(), nullable=False),
        sa.Column("ipt_otp_no", sa.String(30), nullable=False),
        sa.Column("dept_code", sa.String(30), nullable=False),
        sa.Column("atddr_no", sa.String(30), nullable=False),
        sa.Column("begin_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("setl_id", sa.String(30), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("mdtrt_id", name="pk_settlement_visits"),
    )
    op.create_table(
        "settlement_fee_lines",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("mdtrt_id", sa.String(30), nullable=False),
        sa.Column("feedetl_sn", sa.String(64), nullable=False),
        sa.Column("upload_request_id", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("item", sa.LargeBinary(), nullable=False),
        sa.Column("result", sa.LargeBinary(), nullable=False),
        sa.Column("catalogue_version", sa.String(100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_settlement_fee_lines"),
        sa.UniqueConstraint("mdtrt_id", "feedetl_sn", name="uq_settlement_fee_lines_mdtrt_id_feedetl_sn"),
    )
    op.create_table(
        "settlement_outcomes",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(24), nullable=False),
        sa.Column("mdtrt_id", sa.String(30), nullable=True),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("correction_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_settlement_outcomes"),
    )
    op.create_table(
        "settlement_settlements",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("setl_id", sa.String(30), nullable=False),
        sa.Column("medins_setl_id", sa.String(64), nullable=False),
        sa.Column("insured_request_id", sa.String(64), nullable=False),
        sa.Column("mdtrt_id", sa.String(30), nullable=False),
        sa.Column("psn_no", sa.String(30), nullable=False),
        sa.Column("fixmedins_code", sa.String(12), nullable=False),
        sa.Column("mdtrtarea_admvs", sa.String(6), nullable=False),
        sa.Column("insuplc_admdvs", sa.String(6), nullable=False),
        sa.Column("insutype", sa.String(6), nullable=False),
        sa.Column("med_type", sa.String(6), nullable=False),
        sa.Column("clr_type", sa.String(2), nullable=False),
        sa.Column("pay_loc", sa.String(1), nullable=False),
        sa.Column("invono", sa.String(64), nullable=False),
        sa.Column("setl_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", sa.LargeBinary(), nullable=False),
        sa.Column("audit_flag", sa.Boolean(), nullable=False),
        sa.Column("reversed", sa.Boolean(), nullable=False),
        sa.Column("reverses_setl_id", sa.String(30), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_settlement_settlements"),
        sa.UniqueConstraint("setl_id", name="uq_settlement_settlements_setl_id"),
        sa.UniqueConstraint("medins_setl_id", name="uq_settlement_settlements_medins_setl_id"),
    )
    op.create_index("ix_settlement_settlements_mdtrt_id", "settlement_settlements", ["mdtrt_id"])
    op.create_index("ix_settlement_settlements_fixmedins_code", "settlement_settlements", ["fixmedins_code"])
    op.create_table(
        "settlement_audit_cases",
        sa.Column("setl_id", sa.String(30), nullable=False),
        sa.Column("mdtrt_id", sa.String(30), nullable=False),
        sa.Column("fixmedins_code", sa.String(12), nullable=False),
        sa.Column("insuplc_admdvs", sa.String(6), nullable=False),
        sa.Column("medfee_sumamt_fen", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("setl_id", name="pk_settlement_audit_cases"),
    )
    op.create_table(
        "settlement_self_pay_bills",
        sa.Column("bill_id", sa.String(30), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("fixmedins_code", sa.String(12), nullable=False),
        sa.Column("insuplc_admdvs", sa.String(6), nullable=False),
        sa.Column("mdtrt_cert_type", sa.String(2), nullable=False),
        sa.Column("mdtrt_cert_no", sa.String(64), nullable=False),
        sa.Column("card_sn", sa.String(64), nullable=False),
        sa.Column("bill", sa.LargeBinary(), nullable=False),
        sa.Column("upload_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bill_id", name="pk_settlement_self_pay_bills"),
    )
    op.create_index(
        "ix_settlement_self_pay_bills_fixmedins_code", "settlement_self_pay_bills", ["fixmedins_code"]
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_settlement_self_pay_bills_fixmedins_code", table_name="settlement_self_pay_bills")
    op.drop_table("settlement_self_pay_bills")
    op.drop_table("settlement_audit_cases")
    op.drop_index("ix_settlement_settlements_fixmedins_code", table_name="settlement_settlements")
    op.drop_index("ix_settlement_settlements_mdtrt_id", table_name="settlement_settlements")
    op.drop_table("settlement_settlements")
    op.drop_table("settlement_outcomes")
    op.drop_table("settlement_fee_lines")
    op.drop_table("settlement_visits")
