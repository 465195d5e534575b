"""Tables of reconciliation runs and discrepancies.

Revision ID: clearing_0004
Revises: clearing_0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "clearing_0004"
down_revision = "clearing_0003"
branch_labels = None
depends_on = None

_SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_SUMS = (
    "treatment_count",
    "treatment_medfee_fen",
    "treatment_fund_fen",
    "national_count",
    "national_medfee_fen",
    "national_fund_fen",
    "insured_count",
    "insured_medfee_fen",
    "insured_fund_fen",
    "discrepancy_count",
)
_INDEXES = (
    ("ix_clearing_reconciliation_runs_state", "clearing_reconciliation_runs", ["state"]),
    (
        "ix_clearing_reconciliation_discrepancies_run_id_seq",
        "clearing_reconciliation_discrepancies",
        ["run_id", "seq"],
    ),
    (
        "ix_clearing_reconciliation_discrepancies_repaired_seq",
        "clearing_reconciliation_discrepancies",
        ["repaired", "seq"],
    ),
)


def upgrade() -> None:
    """Create the runs, their discrepancies and their report lines."""
    op.create_table(
        "clearing_reconciliation_runs",
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("admdvs", sa.String(6), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("compared_count", sa.BigInteger(), nullable=False),
        sa.Column("discrepancy_count", sa.BigInteger(), nullable=False),
        sa.Column("failure_reason", sa.String(500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_clearing_reconciliation_runs"),
    )
    op.create_table(
        "clearing_reconciliation_discrepancies",
        sa.Column("seq", _SEQUENCE, autoincrement=True, nullable=False),
        sa.Column("discrepancy_id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("msgid", sa.String(64), nullable=False),
        sa.Column("setl_id", sa.String(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("insured_province", sa.String(6), nullable=False),
        sa.Column("treatment_province", sa.String(6), nullable=False),
        sa.Column("insutype", sa.String(6), nullable=False),
        sa.Column("treatment_node", sa.String(6), nullable=False),
        sa.Column("insured_node", sa.String(6), nullable=False),
        sa.Column("treatment_record", sa.LargeBinary(), nullable=True),
        sa.Column("national_record", sa.LargeBinary(), nullable=True),
        sa.Column("insured_record", sa.LargeBinary(), nullable=True),
        sa.Column("reverses_msgid", sa.String(64), nullable=False),
        sa.Column("repaired", sa.Boolean(), nullable=False),
        sa.Column("repair_note", sa.String(500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("repaired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_clearing_reconciliation_discrepancies"),
        sa.UniqueConstraint("discrepancy_id", name="uq_clearing_reconciliation_discrepancies_discrepancy_id"),
    )
    op.create_table(
        "clearing_reconciliation_lines",
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("insured_province", sa.String(6), nullable=False),
        sa.Column("treatment_province", sa.String(6), nullable=False),
        sa.Column("insutype", sa.String(6), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _SUMS),
        sa.PrimaryKeyConstraint(
            "run_id",
            "day",
            "insured_province",
            "treatment_province",
            "insutype",
            name="pk_clearing_reconciliation_lines",
        ),
    )
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    """Drop them."""
    for name, table, _columns in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_table("clearing_reconciliation_lines")
    op.drop_table("clearing_reconciliation_discrepancies")
    op.drop_table("clearing_reconciliation_runs")
