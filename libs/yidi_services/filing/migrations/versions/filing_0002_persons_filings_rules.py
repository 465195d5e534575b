"""Insured persons, contribution gaps, filings, filing rules and the request log.

Revision ID: filing_0002
Revises: filing_0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "filing_0002"
down_revision = "filing_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the filing service's tables with the indexes its queue and lists use."""
    op.create_table(
        "filing_requests",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("method", sa.String(80), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_filing_requests"),
    )
    op.create_table(
        "filing_persons",
        sa.Column("psn_no", sa.String(30), nullable=False),
        sa.Column("certno", sa.String(18), nullable=False),
        sa.Column("psn_name", sa.String(50), nullable=False),
        sa.Column("insuplc_admdvs", sa.String(6), nullable=False),
        sa.Column("insutype", sa.String(3), nullable=False),
        sa.Column("psn_type", sa.String(4), nullable=False),
        sa.Column("insured_since", sa.Date(), nullable=True),
        sa.Column("credential_activated", sa.Boolean(), nullable=False),
        sa.Column("has_personal_account", sa.Boolean(), nullable=False),
        sa.Column("emp_name", sa.String(200), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("psn_no", name="pk_filing_persons"),
        sa.UniqueConstraint("certno", name="uq_filing_persons_certno"),
    )
    op.create_index("ix_filing_persons_region", "filing_persons", ["insuplc_admdvs", "psn_no"])
    op.create_table(
        "filing_contribution_gaps",
        sa.Column("psn_no", sa.String(30), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["psn_no"],
            ["filing_persons.psn_no"],
            name="fk_filing_contribution_gaps_person",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("psn_no", "start_date", name="pk_filing_contribution_gaps"),
    )
    op.create_table(
        "filing_filings",
        sa.Column("filing_id", sa.String(30), nullable=False),
        sa.Column("psn_no", sa.String(30), nullable=False),
        sa.Column("insuplc_admdvs", sa.String(6), nullable=False),
        sa.Column("treatment_admdvs", sa.String(6), nullable=False),
        sa.Column("category", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(30), nullable=False),
        sa.Column("applicant", sa.JSON(), nullable=False),
        sa.Column("materials", sa.JSON(), nullable=False),
        sa.Column("designated_institutions", sa.JSON(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("retroactive", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("state_reason", sa.String(500), nullable=False),
        sa.Column("review_deadline", sa.Date(), nullable=True),
        sa.Column("supersedes_filing_id", sa.String(30), nullable=False),
        sa.Column("superseded_by_filing_id", sa.String(30), nullable=False),
        sa.Column("submit_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decide_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewer", sa.String(100), nullable=False),
        sa.ForeignKeyConstraint(["psn_no"], ["filing_persons.psn_no"], name="fk_filing_filings_person"),
        sa.PrimaryKeyConstraint("filing_id", name="pk_filing_filings"),
    )
    op.create_index("ix_filing_filings_person", "filing_filings", ["psn_no", "state"])
    op.create_index(
        "ix_filing_filings_queue",
        "filing_filings",
        ["insuplc_admdvs", "state", "review_deadline", "filing_id"],
    )
    op.create_table(
        "filing_rules",
        sa.Column("insuplc_admdvs", sa.String(6), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("insuplc_admdvs", "effective_date", name="pk_filing_rules"),
    )


def downgrade() -> None:
    """Drop the filing service's tables."""
    op.drop_table("filing_rules")
    op.drop_index("ix_filing_filings_queue", "filing_filings")
    op.drop_index("ix_filing_filings_person", "filing_filings")
    op.drop_table("filing_filings")
    op.drop_table("filing_contribution_gaps")
    op.drop_index("ix_filing_persons_region", "filing_persons")
    op.drop_table("filing_persons")
    op.drop_table("filing_requests")
