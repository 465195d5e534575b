"""What the further funds and 门诊共济 read of a person: low income, civil servant, medical-assistance
category and the registered family member's account balance (settlement-rules.md, "Further funds").

Revision ID: filing_0005
Revises: filing_0004
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "filing_0005"
down_revision = "filing_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Four columns on persons, defaulting to what a person without these facts had: nothing."""
    op.add_column(
        "filing_persons", sa.Column("low_income", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column(
        "filing_persons", sa.Column("civil_servant", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column(
        "filing_persons", sa.Column("assistance_category", sa.String(20), nullable=False, server_default="")
    )
    op.add_column(
        "filing_persons",
        sa.Column("family_account_balance_fen", sa.BigInteger(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    """Drop the four columns, in place: rebuilding the table (batch mode) would break the filings' references."""
    for column in ("family_account_balance_fen", "assistance_category", "civil_servant", "low_income"):
        op.drop_column("filing_persons", column)
