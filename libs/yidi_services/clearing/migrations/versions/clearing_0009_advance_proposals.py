"""Advance sizing: each province's proposed advance for a year, its basis and whether it was applied.

Adds ``clearing_advance_proposals`` (one row per year and province). The downgrade drops
it; the advances already applied stay in ``clearing_advances`` and the ledger.

Revision ID: clearing_0009
Revises: clearing_0008
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "clearing_0009"
down_revision = "clearing_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clearing_advance_proposals",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("admdvs", sa.String(6), nullable=False),
        sa.Column("periods", sa.String(100), nullable=False),
        sa.Column("outflow_fen", sa.BigInteger(), nullable=False),
        sa.Column("rule_months", sa.String(16), nullable=False),
        sa.Column("minimum_fen", sa.BigInteger(), nullable=False),
        sa.Column("proposed_fen", sa.BigInteger(), nullable=False),
        sa.Column("propose_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_fen", sa.BigInteger(), nullable=True),
        sa.Column("applied_by", sa.String(64), nullable=False),
        sa.Column("apply_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("override_reason", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("year", "admdvs", name="pk_clearing_advance_proposals"),
    )


def downgrade() -> None:
    op.drop_table("clearing_advance_proposals")
