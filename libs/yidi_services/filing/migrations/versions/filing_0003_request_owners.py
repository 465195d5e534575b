"""Ids and filings kept per owner: the request log keyed by (owner, request_id); each filing names who
entered it (an institution sees and changes only its own; those entered before name no one).

Revision ID: filing_0003
Revises: filing_0002
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from yidi_runtime.idempotency import key_requests_by_id, key_requests_by_owner

revision = "filing_0003"
down_revision = "filing_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Owners on the request log; ``entered_by`` on filings."""
    key_requests_by_owner(op, "filing")
    op.add_column(
        "filing_filings", sa.Column("entered_by", sa.String(100), nullable=False, server_default="")
    )
    op.create_index("ix_filing_filings_entered_by", "filing_filings", ["entered_by"])


def downgrade() -> None:
    """Drop ``entered_by``; key the log by request id alone again."""
    op.drop_index("ix_filing_filings_entered_by", table_name="filing_filings")
    with op.batch_alter_table("filing_filings") as batch:
        batch.drop_column("entered_by")
    key_requests_by_id(op, "filing")
