"""The audit trail: append-only ``audit_records``, guarded on PostgreSQL by a trigger.

Revision ID: audit_0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "audit_0001"
down_revision = None
branch_labels = ("audit",)
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite numbers rows only as INTEGER PRIMARY KEY

# Row-level for UPDATE and DELETE, statement-level for TRUNCATE: history is only ever added to.
# SQLite gets no trigger: its batch migrations rebuild tables and would drop it silently.
_REFUSE = """
CREATE FUNCTION audit_records_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_records is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""
_TRIGGERS = (
    "CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records "
    "FOR EACH ROW EXECUTE FUNCTION audit_records_refuse_change()",
    "CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_records_refuse_change()",
)


def upgrade() -> None:
    """Create the trail and, on PostgreSQL, the triggers that refuse to change it."""
    op.create_table(
        "audit_records",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("node_region", sa.String(6), nullable=False),
        sa.Column("caller_role", sa.String(16), nullable=False),
        sa.Column("caller", sa.String(100), nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("service", sa.String(100), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("grpc_code", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("peer", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_records"),
    )
    op.create_index("ix_audit_records_recorded_at", "audit_records", ["recorded_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_REFUSE)
        for trigger in _TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    """Drop the trail (its triggers go with it)."""
    op.drop_index("ix_audit_records_recorded_at", "audit_records")
    op.drop_table("audit_records")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_records_refuse_change()")
