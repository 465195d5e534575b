"""Rules versions and rechecks: each region's rules are numbered, each filing names the rules it was
checked against, and a recheck lists a filing that no longer passes its region's new rules.

Existing rules are numbered per region in effective-date order. Existing filings are marked
``legacy``: a rules row replaced on its own effective date is gone, so the version a filing was
really checked against cannot be told afterwards; a legacy filing is rechecked at its region's
next rules change like any other.

Revision ID: filing_0004
Revises: filing_0003
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "filing_0004"
down_revision = "filing_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Number the rules; mark filings legacy; create the rechecks table."""
    op.add_column("filing_rules", sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    rules = sa.table(
        "filing_rules",
        sa.column("insuplc_admdvs", sa.String),
        sa.column("effective_date", sa.Date),
        sa.column("version", sa.Integer),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(rules.c.insuplc_admdvs, rules.c.effective_date).order_by(
            rules.c.insuplc_admdvs, rules.c.effective_date
        )
    ).all()
    numbers: dict[str, int] = {}
    for region, effective_date in rows:
        numbers[region] = numbers.get(region, 0) + 1
        connection.execute(
            rules.update()
            .where(rules.c.insuplc_admdvs == region, rules.c.effective_date == effective_date)
            .values(version=numbers[region])
        )
    op.add_column(
        "filing_filings",
        sa.Column("rules_version", sa.String(20), nullable=False, server_default="legacy"),
    )
    op.create_table(
        "filing_rechecks",
        sa.Column("filing_id", sa.String(30), nullable=False),
        sa.Column("new_rules_version", sa.String(20), nullable=False),
        sa.Column("insuplc_admdvs", sa.String(6), nullable=False),
        sa.Column("old_rules_version", sa.String(20), nullable=False),
        sa.Column("failures", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision_reason", sa.String(500), nullable=False),
        sa.Column("decided_by", sa.String(100), nullable=False),
        sa.Column("decide_time", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["filing_id"], ["filing_filings.filing_id"], name="fk_filing_rechecks_filing"
        ),
        sa.PrimaryKeyConstraint("filing_id", "new_rules_version", name="pk_filing_rechecks"),
    )
    op.create_index("ix_filing_rechecks_region", "filing_rechecks", ["insuplc_admdvs", "state", "filing_id"])


def downgrade() -> None:
    """Drop the rechecks, the filings' rules version and the rules' numbers."""
    op.drop_index("ix_filing_rechecks_region", table_name="filing_rechecks")
    op.drop_table("filing_rechecks")
    with op.batch_alter_table("filing_filings") as batch:
        batch.drop_column("rules_version")
    with op.batch_alter_table("filing_rules") as batch:
        batch.drop_column("version")
