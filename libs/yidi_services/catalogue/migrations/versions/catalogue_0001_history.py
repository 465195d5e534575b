"""Start the catalogue service's own migration history (its tables arrive in later revisions).

Revision ID: catalogue_0001
Revises:
Create Date: 2026-11-24
"""

revision = "catalogue_0001"
down_revision = None
branch_labels = ("catalogue",)
depends_on = None


def upgrade() -> None:
    """Nothing yet: the revision marks the service's schema as managed."""


def downgrade() -> None:
    """Nothing to undo."""
