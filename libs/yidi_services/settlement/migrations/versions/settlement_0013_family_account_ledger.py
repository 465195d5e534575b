"""The family account (门诊共济) kept in the insured ledger: debited by a settlement, restored by its undoing.

A person's account row gains ``family_balance_fen`` (NULL: not yet seeded from the person
record) and an application ``family_delta_fen`` (0: every application before this revision
debited no family account).

Revision ID: settlement_0013
Revises: settlement_0012
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "settlement_0013"
down_revision = "settlement_0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the family balance (unseeded) to the accounts and its change (none) to the applications."""
    op.add_column(
        "settlement_insured_accounts", sa.Column("family_balance_fen", sa.BigInteger(), nullable=True)
    )
    op.add_column(
        "settlement_insured_applications",
        sa.Column("family_delta_fen", sa.BigInteger(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    """Drop them (the family balance then reads from the person record again, undebited)."""
    for table, column in (
        ("settlement_insured_accounts", "family_balance_fen"),
        ("settlement_insured_applications", "family_delta_fen"),
    ):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
