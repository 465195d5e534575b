"""The versions of each institution the parent node has acknowledged (PushInstitutions).

Revision ID: registry_0003
Revises: registry_0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "registry_0003"
down_revision = "registry_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the acknowledgement table (empty: the first push sends every record)."""
    op.create_table(
        "registry_pushed_versions",
        sa.Column("parent_region", sa.String(6), nullable=False),
        sa.Column("code", sa.String(12), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("parent_region", "code", name="pk_registry_pushed_versions"),
    )


def downgrade() -> None:
    """Drop it (the next push after an upgrade re-sends everything, which the parent ignores as stale)."""
    op.drop_table("registry_pushed_versions")
