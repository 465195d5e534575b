"""The collaboration service's tickets, their messages, its request log and its outbox.

Revision ID: collaboration_0001
Revises:
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

from yidi_runtime.outbox import create_outbox_table, drop_outbox_table

revision = "collaboration_0001"
down_revision = None
branch_labels = ("collaboration",)
depends_on = None


def upgrade() -> None:
    """Create the tables and the queue's index."""
    op.create_table(
        "collaboration_requests",
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("method", sa.String(80), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner", "request_id", name="pk_collaboration_requests"),
    )
    create_outbox_table(op, "collaboration")
    op.create_table(
        "collaboration_tickets",
        sa.Column("ticket_id", sa.String(30), nullable=False),
        sa.Column("subject_kind", sa.String(12), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("category", sa.String(20), nullable=False),
        sa.Column("treatment_admdvs", sa.String(6), nullable=False),
        sa.Column("insured_admdvs", sa.String(6), nullable=False),
        sa.Column("fixmedins_code", sa.String(12), nullable=False),
        sa.Column("opener", sa.String(10), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("awaiting", sa.String(10), nullable=False),
        sa.Column("awaits_here", sa.Boolean(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", name="pk_collaboration_tickets"),
    )
    op.create_index(
        "ix_collaboration_tickets_queue", "collaboration_tickets", ["awaits_here", "due_date", "ticket_id"]
    )
    op.create_index("ix_collaboration_tickets_fixmedins_code", "collaboration_tickets", ["fixmedins_code"])
    op.create_table(
        "collaboration_messages",
        sa.Column("ticket_id", sa.String(30), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("party", sa.String(10), nullable=False),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("text", sa.String(2000), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["collaboration_tickets.ticket_id"],
            name="fk_collaboration_messages_ticket",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", "seq", name="pk_collaboration_messages"),
    )


def downgrade() -> None:
    """Drop the tables."""
    op.drop_table("collaboration_messages")
    op.drop_index("ix_collaboration_tickets_fixmedins_code", "collaboration_tickets")
    op.drop_index("ix_collaboration_tickets_queue", "collaboration_tickets")
    op.drop_table("collaboration_tickets")
    drop_outbox_table(op, "collaboration")
    op.drop_table("collaboration_requests")
