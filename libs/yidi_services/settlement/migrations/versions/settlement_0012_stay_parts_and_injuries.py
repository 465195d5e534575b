"""Mid-stay settlement (中途结算) and injuries with no liable third party (无第三方责任外伤).

A fee line remembers the part of its stay that settled it (``mid_setl_id``) and a settlement
record whether it is such a part (``mid_setl_flag``); a visit and its settlements say whether
they treat an injury the patient declared no third party liable for (``trauma_no_third_party``).
Every row before this revision is none of these.

Revision ID: settlement_0012
Revises: settlement_0011
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "settlement_0012"
down_revision = "settlement_0011"
branch_labels = None
depends_on = None

_FLAGS = (
    ("settlement_settlements", "mid_setl_flag"),
    ("settlement_settlements", "trauma_no_third_party"),
    ("settlement_visits", "trauma_no_third_party"),
)


def upgrade() -> None:
    """Add ``mid_setl_id`` (empty) to the lines and the flags (false) to the records and visits."""
    op.add_column("settlement_fee_lines", sa.Column("mid_setl_id", sa.String(30), nullable=True))
    for table, column in _FLAGS:
        op.add_column(table, sa.Column(column, sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    """Drop them (a stay settled in parts then reads as settled at once, an injury as any visit)."""
    for table, column in (("settlement_fee_lines", "mid_setl_id"), *_FLAGS):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
