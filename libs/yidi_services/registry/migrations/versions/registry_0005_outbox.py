"""The registry outbox and the publishing node of each suspension notice.

Revision ID: registry_0005
Revises: registry_0004
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

from yidi_runtime.outbox import create_outbox_table, drop_outbox_table

revision = "registry_0005"
down_revision = "registry_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``registry_outbox``; add ``registry_suspensions.origin_admdvs`` (empty for older notices)."""
    create_outbox_table(op, "registry")
    with op.batch_alter_table("registry_suspensions") as batch:
        batch.add_column(sa.Column("origin_admdvs", sa.String(6), nullable=True))


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("registry_suspensions") as batch:
        batch.drop_column("origin_admdvs")
    drop_outbox_table(op, "registry")
