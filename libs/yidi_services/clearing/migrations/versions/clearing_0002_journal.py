"""The national settlement journal and the clearing service's request log.

Revision ID: clearing_0002
Revises: clearing_0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "clearing_0002"
down_revision = "clearing_0001"
branch_labels = None
depends_on = None

_INDEXES = (
    ("ix_clearing_journal_setl_time", ["setl_time"]),
    ("ix_clearing_journal_insured_province_setl_time", ["insured_province", "setl_time"]),
    ("ix_clearing_journal_treatment_province_setl_time", ["treatment_province", "setl_time"]),
)


def upgrade() -> None:
    """Create the request log and the journal with the indexes clearing reads by."""
    op.create_table(
        "clearing_requests",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("method", sa.String(80), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_clearing_requests"),
    )
    op.create_table(
        "clearing_journal",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("msgid", sa.String(64), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("source_admdvs", sa.String(6), nullable=False),
        sa.Column("setl_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("reverses_msgid", sa.String(64), nullable=True),
        sa.Column("mdtrt_id", sa.String(64), nullable=False),
        sa.Column("psn_no", sa.String(64), nullable=False),
        sa.Column("fixmedins_code", sa.String(12), nullable=False),
        sa.Column("insuplc_admdvs", sa.String(6), nullable=False),
        sa.Column("mdtrtarea_admvs", sa.String(6), nullable=False),
        sa.Column("insured_province", sa.String(6), nullable=False),
        sa.Column("treatment_province", sa.String(6), nullable=False),
        sa.Column("insutype", sa.String(6), nullable=False),
        sa.Column("clr_type", sa.String(2), nullable=False),
        sa.Column("medfee_sumamt_fen", sa.BigInteger(), nullable=False),
        sa.Column("fund_pay_sumamt_fen", sa.BigInteger(), nullable=False),
        sa.Column("acct_pay_fen", sa.BigInteger(), nullable=False),
        sa.Column("psn_cash_pay_fen", sa.BigInteger(), nullable=False),
        sa.Column("setl_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload_digest", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("signer_admdvs", sa.String(6), nullable=False),
        sa.Column("cleared_period", sa.String(7), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_clearing_journal"),
        sa.UniqueConstraint("msgid", name="uq_clearing_journal_msgid"),
        sa.UniqueConstraint("reverses_msgid", name="uq_clearing_journal_reverses_msgid"),
    )
    for name, columns in _INDEXES:
        op.create_index(name, "clearing_journal", columns)


def downgrade() -> None:
    """Drop them again."""
    for name, _columns in reversed(_INDEXES):
        op.drop_index(name, table_name="clearing_journal")
    op.drop_table("clearing_journal")
    op.drop_table("clearing_requests")
