"""The test sender's outbox table, created the way a service's migration creates it.

Revision ID: outboxtest_0001
Revises:
"""

from alembic import op

from yidi_runtime.outbox import create_outbox_table, drop_outbox_table

revision = "outboxtest_0001"
down_revision = None
branch_labels = ("outboxtest",)
depends_on = None


def upgrade() -> None:
    """Create ``outboxtest_outbox``."""
    create_outbox_table(op, "outboxtest")


def downgrade() -> None:
    """Drop it."""
    drop_outbox_table(op, "outboxtest")
