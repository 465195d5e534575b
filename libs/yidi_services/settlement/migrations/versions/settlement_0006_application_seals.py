"""The treatment node's seal kept with each insured-side application.

Applications recorded before this revision keep empty values, as unsealed ones do.

Revision ID: settlement_0006
Revises: settlement_0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "settlement_0006"
down_revision = "settlement_0005"
branch_labels = None
depends_on = None

_TABLE = "settlement_insured_applications"


def _empty_bytes() -> sa.TextClause:
    """An empty byte string as a column default: a BLOB literal on SQLite, bytea on PostgreSQL."""
    return sa.text("X''") if op.get_bind().dialect.name == "sqlite" else sa.text("''::bytea")


def _columns() -> tuple[sa.Column, ...]:
    return (
        sa.Column("digest_algorithm", sa.String(16), nullable=False, server_default=""),
        sa.Column("payload_digest", sa.LargeBinary(), nullable=False, server_default=_empty_bytes()),
        sa.Column("signature", sa.LargeBinary(), nullable=False, server_default=_empty_bytes()),
        sa.Column("signer_certificate", sa.LargeBinary(), nullable=False, server_default=_empty_bytes()),
        sa.Column("signer_admdvs", sa.String(6), nullable=False, server_default=""),
    )


def upgrade() -> None:
    """Add the seal's columns, empty for the applications already recorded."""
    for column in _columns():
        op.add_column(_TABLE, column)


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table(_TABLE) as batch:
        for column in reversed(_columns()):
            batch.drop_column(column.name)
