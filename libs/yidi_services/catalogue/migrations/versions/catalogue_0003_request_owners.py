"""Request ids kept per owner: the request log keyed by (owner, request_id).

Revision ID: catalogue_0003
Revises: catalogue_0002
Create Date: 2026-12-07
"""

from alembic import op

from yidi_runtime.idempotency import key_requests_by_id, key_requests_by_owner

revision = "catalogue_0003"
down_revision = "catalogue_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add owner to catalogue_requests and make it part of the key."""
    key_requests_by_owner(op, "catalogue")


def downgrade() -> None:
    """Key the log by request id alone again."""
    key_requests_by_id(op, "catalogue")
