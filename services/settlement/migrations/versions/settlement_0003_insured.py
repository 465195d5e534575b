"""Tables of the insured side's accumulators, accounts and holds.

Revision ID: settlement_0003
Revises: settlement_0002
Create Date: 2026-11-25
"""

revision = "settlement_0003"
down_revision = "settlement_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the tables."""


def downgrade() -> None:
    """Drop them."""
