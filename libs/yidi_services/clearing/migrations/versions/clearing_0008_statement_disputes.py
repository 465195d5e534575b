"""A province may dispute its statement: who disputed it, when and why.

Adds ``dispute_reason``, ``disputed_by`` and ``dispute_time`` to ``clearing_statements``
(the state column already holds any state name, ``disputed`` among them). Existing rows
get an empty reason and author, and no time. The downgrade drops the columns; a statement
still disputed then goes back to issued, the state it was disputed from.

Revision ID: clearing_0008
Revises: clearing_0007
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "clearing_0008"
down_revision = "clearing_0007"
branch_labels = None
depends_on = None

_TABLE = "clearing_statements"


def upgrade() -> None:
    with op.batch_alter_table(_TABLE) as batch:
        batch.add_column(sa.Column("dispute_reason", sa.String(200), nullable=False, server_default=""))
        batch.add_column(sa.Column("disputed_by", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("dispute_time", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.execute(sa.text(f"UPDATE {_TABLE} SET state = 'issued' WHERE state = 'disputed'"))
    with op.batch_alter_table(_TABLE) as batch:
        batch.drop_column("dispute_time")
        batch.drop_column("disputed_by")
        batch.drop_column("dispute_reason")
