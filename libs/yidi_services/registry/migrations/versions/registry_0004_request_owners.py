"""Request ids kept per owner: the request log keyed by (owner, request_id).

Revision ID: registry_0004
Revises: registry_0003
Create Date: 2026-12-07
"""

from alembic import op

from yidi_runtime.idempotency import key_requests_by_id, key_requests_by_owner

revision = "registry_0004"
down_revision = "registry_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add owner to registry_requests and make it part of the key."""
    key_requests_by_owner(op, "registry")


def downgrade() -> None:
    """Key the log by request id alone again."""
    key_requests_by_id(op, "registry")
