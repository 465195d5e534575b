"""The rest of each journal entry's seal: the digest algorithm and the signer's certificate.

The digest, signature and signer region had columns from the start (empty until issue 9);
entries journalled before this revision keep empty values, as unsealed entries do.

Revision ID: clearing_0005
Revises: clearing_0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "clearing_0005"
down_revision = "clearing_0004"
branch_labels = None
depends_on = None


def _empty_bytes() -> sa.TextClause:
    """An empty byte string as a column default: a BLOB literal on SQLite, bytea on PostgreSQL."""
    return sa.text("X''") if op.get_bind().dialect.name == "sqlite" else sa.text("''::bytea")


def upgrade() -> None:
    """Add the columns, empty for the entries already journalled."""
    op.add_column(
        "clearing_journal",
        sa.Column("digest_algorithm", sa.String(16), nullable=False, server_default=""),
    )
    op.add_column(
        "clearing_journal",
        sa.Column("signer_certificate", sa.LargeBinary(), nullable=False, server_default=_empty_bytes()),
    )


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("clearing_journal") as batch:
        batch.drop_column("signer_certificate")
        batch.drop_column("digest_algorithm")
