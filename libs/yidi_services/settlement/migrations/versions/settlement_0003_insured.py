"""Tables of the insured side's accumulators, accounts and holds.

Revision ID: settlement_0003
Revises: settlement_0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "settlement_0003"
down_revision = "settlement_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the personal accounts, annual accumulators and applied settlements (holds)."""
    op.create_table(
        "settlement_insured_accounts",
        sa.Column("psn_no", sa.String(30), nullable=False),
        sa.Column("balance_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("psn_no", name="pk_settlement_insured_accounts"),
    )
    op.create_table(
        "settlement_insured_accumulators",
        sa.Column("psn_no", sa.String(30), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value_fen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("psn_no", "year", "kind", "key", name="pk_settlement_insured_accumulators"),
    )
    op.create_table(
        "settlement_insured_applications",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("psn_no", sa.String(30), nullable=False),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("setl_id", sa.String(40), nullable=False),
        sa.Column("policy_version", sa.String(80), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("account_delta_fen", sa.BigInteger(), nullable=False),
        sa.Column("medfee_sumamt_fen", sa.BigInteger(), nullable=False),
        sa.Column("fund_pay_sumamt_fen", sa.BigInteger(), nullable=False),
        sa.Column("acct_pay_fen", sa.BigInteger(), nullable=False),
        sa.Column("psn_cash_pay_fen", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hold_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("request_id", name="pk_settlement_insured_applications"),
    )
    op.create_index(
        "ix_settlement_insured_applications_holds",
        "settlement_insured_applications",
        ["state", "hold_expires_at"],
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_settlement_insured_applications_holds", "settlement_insured_applications")
    op.drop_table("settlement_insured_applications")
    op.drop_table("settlement_insured_accumulators")
    op.drop_table("settlement_insured_accounts")
