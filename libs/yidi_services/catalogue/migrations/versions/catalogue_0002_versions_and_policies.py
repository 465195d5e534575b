"""Catalogue versions with their items, policy versions, and the request log.

Revision ID: catalogue_0002
Revises: catalogue_0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "catalogue_0002"
down_revision = "catalogue_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the version, item, policy and request tables."""
    op.create_table(
        "catalogue_requests",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("method", sa.String(80), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_catalogue_requests"),
    )
    op.create_table(
        "catalogue_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("admdvs", sa.String(6), nullable=False),
        sa.Column("layer", sa.String(20), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("import_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_catalogue_versions"),
    )
    op.create_index("ix_catalogue_versions_region_date", "catalogue_versions", ["admdvs", "effective_date"])
    op.create_table(
        "catalogue_items",
        sa.Column("version_pk", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("chrgitm_lv", sa.String(2), nullable=False),
        sa.Column("selfpay_prop", sa.String(12), nullable=False),
        sa.Column("pric_uplmt_amt", sa.String(24), nullable=True),
        sa.Column("restriction_med_types", sa.String(200), nullable=False),
        sa.Column("restriction_diagnosis_prefixes", sa.String(400), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["version_pk"], ["catalogue_versions.id"], name="fk_catalogue_items_version_pk_catalogue_versions"
        ),
        sa.PrimaryKeyConstraint("version_pk", "code", name="pk_catalogue_items"),
    )
    op.create_table(
        "catalogue_policies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("insuplc_admdvs", sa.String(6), nullable=False),
        sa.Column("insutype", sa.String(6), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("import_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_catalogue_policies"),
    )
    op.create_index(
        "ix_catalogue_policies_region_insutype_date",
        "catalogue_policies",
        ["insuplc_admdvs", "insutype", "effective_date"],
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_catalogue_policies_region_insutype_date", table_name="catalogue_policies")
    op.drop_table("catalogue_policies")
    op.drop_table("catalogue_items")
    op.drop_index("ix_catalogue_versions_region_date", table_name="catalogue_versions")
    op.drop_table("catalogue_versions")
    op.drop_table("catalogue_requests")
