"""Institutions, the services they opened, suspension notices and the request log.

Revision ID: registry_0002
Revises: registry_0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "registry_0002"
down_revision = "registry_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the registry's tables with the indexes its list filters use."""
    op.create_table(
        "registry_requests",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("method", sa.String(80), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_registry_requests"),
    )
    op.create_table(
        "registry_institutions",
        sa.Column("code", sa.String(12), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("type", sa.String(10), nullable=False),
        sa.Column("level", sa.String(1), nullable=False),
        sa.Column("admdvs", sa.String(6), nullable=False),
        sa.Column("address", sa.String(300), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("accepts_cross_province", sa.Boolean(), nullable=False),
        sa.Column("accepts_in_province", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name="pk_registry_institutions"),
    )
    op.create_index("ix_registry_institutions_admdvs", "registry_institutions", ["admdvs"])
    op.create_index("ix_registry_institutions_status_code", "registry_institutions", ["status", "code"])
    op.create_table(
        "registry_opened_services",
        sa.Column("institution_code", sa.String(12), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("chronic_disease", sa.String(6), nullable=False),
        sa.Column("open_date", sa.Date(), nullable=False),
        sa.Column("close_date", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["institution_code"],
            ["registry_institutions.code"],
            name="fk_registry_opened_services_institution",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "institution_code", "kind", "chronic_disease", name="pk_registry_opened_services"
        ),
    )
    op.create_index(
        "ix_registry_opened_services_kind",
        "registry_opened_services",
        ["kind", "chronic_disease", "institution_code"],
    )
    op.create_table(
        "registry_suspensions",
        sa.Column("suspension_id", sa.String(32), nullable=False),
        sa.Column("fixmedins_code", sa.String(12), nullable=True),
        sa.Column("admdvs", sa.String(6), nullable=True),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("publisher", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("suspension_id", name="pk_registry_suspensions"),
    )
    op.create_index("ix_registry_suspensions_fixmedins_code", "registry_suspensions", ["fixmedins_code"])
    op.create_index("ix_registry_suspensions_admdvs", "registry_suspensions", ["admdvs"])
    op.create_index(
        "ix_registry_suspensions_start_time", "registry_suspensions", ["start_time", "suspension_id"]
    )


def downgrade() -> None:
    """Drop the registry's tables."""
    op.drop_table("registry_suspensions")
    op.drop_index("ix_registry_opened_services_kind", "registry_opened_services")
    op.drop_table("registry_opened_services")
    op.drop_table("registry_institutions")
    op.drop_table("registry_requests")
