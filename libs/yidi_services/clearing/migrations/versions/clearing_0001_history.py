"""Start the clearing service's own migration history (its tables arrive in later revisions).

Revision ID: clearing_0001
Revises:
Create Date: 2026-11-24
"""

revision = "clearing_0001"
down_revision = None
branch_labels = ("clearing",)
depends_on = None


def upgrade() -> None:
    """Nothing yet: the revision marks the service's schema as managed."""


def downgrade() -> None:
    """Nothing to undo."""
