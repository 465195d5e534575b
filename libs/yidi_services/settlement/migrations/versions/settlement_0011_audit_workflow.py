"""The large-bill audit as a workflow: a case's state, deadline and decision; the insured side's adjustments.

Every case queued before this revision is open and has no deadline.

Revision ID: settlement_0011
Revises: settlement_0010
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "settlement_0011"
down_revision = "settlement_0010"
branch_labels = None
depends_on = None

_CASES = "settlement_audit_cases"
_ADJUSTMENTS = "settlement_insured_audit_adjustments"
_DECISION = (
    "state",
    "due_date",
    "disallowed_fen",
    "reason",
    "decided_by",
    "decision_request_id",
    "decided_at",
)


def upgrade() -> None:
    """Add the decision columns to the cases (open for those already queued) and the adjustments table."""
    with op.batch_alter_table(_CASES) as batch:
        batch.add_column(sa.Column("state", sa.String(12), nullable=False, server_default="open"))
        batch.add_column(sa.Column("due_date", sa.Date(), nullable=True))
        batch.add_column(sa.Column("disallowed_fen", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("reason", sa.String(200), nullable=False, server_default=""))
        batch.add_column(sa.Column("decided_by", sa.String(100), nullable=False, server_default=""))
        batch.add_column(sa.Column("decision_request_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_settlement_audit_cases_state", _CASES, ["state", "created_at"])
    op.create_table(
        _ADJUSTMENTS,
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("application_request_id", sa.String(64), nullable=False),
        sa.Column("setl_id", sa.String(40), nullable=False),
        sa.Column("psn_no", sa.String(30), nullable=False),
        sa.Column("treatment_admdvs", sa.String(6), nullable=False),
        sa.Column("disallowed_fen", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=f"pk_{_ADJUSTMENTS}"),
        sa.UniqueConstraint("request_id", name=f"uq_{_ADJUSTMENTS}_request_id"),
    )
    op.create_index(f"ix_{_ADJUSTMENTS}_setl_id", _ADJUSTMENTS, ["setl_id"])


def downgrade() -> None:
    """Drop the adjustments and the cases' decisions."""
    op.drop_index(f"ix_{_ADJUSTMENTS}_setl_id", table_name=_ADJUSTMENTS)
    op.drop_table(_ADJUSTMENTS)
    op.drop_index("ix_settlement_audit_cases_state", table_name=_CASES)
    with op.batch_alter_table(_CASES) as batch:
        for column in _DECISION:
            batch.drop_column(column)
