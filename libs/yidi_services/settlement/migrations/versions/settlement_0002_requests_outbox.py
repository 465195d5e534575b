"""The settlement service's request log and outbox.

Revision ID: settlement_0002
Revises: settlement_0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from yidi_runtime.outbox import create_outbox_table, drop_outbox_table

revision = "settlement_0002"
down_revision = "settlement_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``settlement_requests`` and ``settlement_outbox``."""
    op.create_table(
        "settlement_requests",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("method", sa.String(80), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_settlement_requests"),
    )
    create_outbox_table(op, "settlement")


def downgrade() -> None:
    """Drop both tables."""
    drop_outbox_table(op, "settlement")
    op.drop_table("settlement_requests")
