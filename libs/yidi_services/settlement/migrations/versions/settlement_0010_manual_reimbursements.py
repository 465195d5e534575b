"""Online manual reimbursements in the insured ledger: each application says what kind it is.

Every application recorded before this revision is a direct settlement.

Revision ID: settlement_0010
Revises: settlement_0009
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "settlement_0010"
down_revision = "settlement_0009"
branch_labels = None
depends_on = None

_TABLE = "settlement_insured_applications"


def upgrade() -> None:
    """Add ``kind``, ``direct`` for the applications already recorded."""
    op.add_column(_TABLE, sa.Column("kind", sa.String(24), nullable=False, server_default="direct"))


def downgrade() -> None:
    """Drop it (and with it the difference between the two kinds)."""
    with op.batch_alter_table(_TABLE) as batch:
        batch.drop_column("kind")
