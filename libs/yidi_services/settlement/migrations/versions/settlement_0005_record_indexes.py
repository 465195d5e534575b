"""Indexes ListSettlementRecords pages by: settlements by settlement time, applications by apply time.

Revision ID: settlement_0005
Revises: settlement_0004
Create Date: 2026-11-25
"""

from alembic import op

revision = "settlement_0005"
down_revision = "settlement_0004"
branch_labels = None
depends_on = None

_INDEXES = (
    ("ix_settlement_settlements_setl_time", "settlement_settlements", ["setl_time", "id"]),
    (
        "ix_settlement_insured_applications_created_at",
        "settlement_insured_applications",
        ["created_at", "request_id"],
    ),
)


def upgrade() -> None:
    """Create the keyset indexes (time, then the tie-breaking key)."""
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    """Drop them."""
    for name, table, _columns in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
