"""Tables of the national ledger, advances, alerts, clearing runs, statements and clawbacks.

Also two partial indexes over the journal entries not yet cleared (what clearing and advance
usage look for), so neither ever scans a month that is already closed.

Revision ID: clearing_0003
Revises: clearing_0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "clearing_0003"
down_revision = "clearing_0002"
branch_labels = None
depends_on = None

_SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UNCLEARED = sa.text("cleared_period IS NULL")
_JOURNAL_INDEXES = (
    ("ix_clearing_journal_uncleared_setl_time", ["setl_time"]),
    ("ix_clearing_journal_uncleared_insured", ["insured_province", "setl_time"]),
)


def _seq() -> sa.Column:
    return sa.Column("seq", _SEQUENCE, autoincrement=True, nullable=False)


def _time(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create the tables and the journal's partial indexes."""
    for name, columns in _JOURNAL_INDEXES:
        op.create_index(
            name, "clearing_journal", columns, sqlite_where=_UNCLEARED, postgresql_where=_UNCLEARED
        )
    op.create_table(
        "clearing_ledger_entries",
        _seq(),
        sa.Column("source_id", sa.String(80), nullable=False),
        sa.Column("description", sa.String(400), nullable=False),
        _time("post_time"),
        sa.PrimaryKeyConstraint("seq", name="pk_clearing_ledger_entries"),
    )
    op.create_table(
        "clearing_ledger_postings",
        _seq(),
        sa.Column("entry_seq", sa.BigInteger(), nullable=False),
        sa.Column("admdvs", sa.String(6), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_seq"],
            ["clearing_ledger_entries.seq"],
            name="fk_clearing_ledger_postings_entry_seq_clearing_ledger_entries",
        ),
        sa.PrimaryKeyConstraint("seq", name="pk_clearing_ledger_postings"),
    )
    op.create_index("ix_clearing_ledger_postings_entry_seq", "clearing_ledger_postings", ["entry_seq"])
    op.create_index(
        "ix_clearing_ledger_postings_admdvs_entry", "clearing_ledger_postings", ["admdvs", "entry_seq"]
    )
    op.create_table(
        "clearing_advances",
        sa.Column("admdvs", sa.String(6), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("set_fen", sa.BigInteger(), nullable=False),
        sa.Column("topped_up_fen", sa.BigInteger(), nullable=False),
        _time("update_time"),
        sa.PrimaryKeyConstraint("admdvs", "year", name="pk_clearing_advances"),
    )
    op.create_table(
        "clearing_alerts",
        _seq(),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("admdvs", sa.String(6), nullable=False),
        sa.Column("subject", sa.String(40), nullable=False),
        sa.Column("message", sa.String(400), nullable=False),
        _time("raise_time"),
        sa.Column("active", sa.Boolean(), nullable=False),
        _time("resolve_time", nullable=True),
        sa.Column("active_key", sa.String(80), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_clearing_alerts"),
        sa.UniqueConstraint("active_key", name="uq_clearing_alerts_active_key"),
    )
    op.create_table(
        "clearing_runs",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("active_period", sa.String(7), nullable=True),
        sa.Column("entries_counted", sa.BigInteger(), nullable=False),
        sa.Column("failure_reason", sa.String(400), nullable=False),
        _time("start_time"),
        _time("end_time", nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_clearing_runs"),
        sa.UniqueConstraint("active_period", name="uq_clearing_runs_active_period"),
    )
    op.create_index("ix_clearing_runs_period", "clearing_runs", ["period"])
    op.create_table(
        "clearing_statements",
        sa.Column("statement_id", sa.String(16), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("admdvs", sa.String(6), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("payable_fen", sa.BigInteger(), nullable=False),
        sa.Column("receivable_fen", sa.BigInteger(), nullable=False),
        sa.Column("net_fen", sa.BigInteger(), nullable=False),
        _time("issue_time"),
        sa.Column("confirm_by", sa.Date(), nullable=False),
        _time("confirm_time", nullable=True),
        sa.Column("confirmed_by", sa.String(64), nullable=False),
        sa.Column("transfer_by", sa.Date(), nullable=False),
        sa.Column("transferred_fen", sa.BigInteger(), nullable=False),
        _time("settle_time", nullable=True),
        sa.PrimaryKeyConstraint("statement_id", name="pk_clearing_statements"),
    )
    op.create_index("ix_clearing_statements_admdvs", "clearing_statements", ["admdvs"])
    op.create_table(
        "clearing_statement_lines",
        _seq(),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("insured_admdvs", sa.String(6), nullable=False),
        sa.Column("treatment_admdvs", sa.String(6), nullable=False),
        sa.Column("settlement_count", sa.Integer(), nullable=False),
        sa.Column("medfee_sumamt_fen", sa.BigInteger(), nullable=False),
        sa.Column("fund_pay_sumamt_fen", sa.BigInteger(), nullable=False),
        sa.Column("adjustment", sa.Boolean(), nullable=False),
        sa.Column("origin_period", sa.String(7), nullable=True),
        sa.Column("adjustment_note", sa.String(400), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_clearing_statement_lines"),
    )
    op.create_index(
        "ix_clearing_statement_lines_period_position",
        "clearing_statement_lines",
        ["period", "position"],
        unique=True,
    )
    op.create_table(
        "clearing_transfers",
        _seq(),
        sa.Column("statement_id", sa.String(16), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("bank_reference", sa.String(64), nullable=False),
        _time("transfer_time"),
        _time("record_time"),
        sa.ForeignKeyConstraint(
            ["statement_id"],
            ["clearing_statements.statement_id"],
            name="fk_clearing_transfers_statement_id_clearing_statements",
        ),
        sa.PrimaryKeyConstraint("seq", name="pk_clearing_transfers"),
    )
    op.create_index("ix_clearing_transfers_statement_id", "clearing_transfers", ["statement_id"])
    op.create_table(
        "clearing_clawbacks",
        _seq(),
        sa.Column("msgid", sa.String(64), nullable=False),
        sa.Column("insured_province", sa.String(6), nullable=False),
        sa.Column("treatment_province", sa.String(6), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(400), nullable=False),
        sa.Column("origin_period", sa.String(7), nullable=False),
        sa.Column("adjustment_period", sa.String(7), nullable=False),
        sa.Column("cleared_period", sa.String(7), nullable=True),
        _time("record_time"),
        sa.PrimaryKeyConstraint("seq", name="pk_clearing_clawbacks"),
    )
    op.create_index("ix_clearing_clawbacks_msgid", "clearing_clawbacks", ["msgid"])
    op.create_index("ix_clearing_clawbacks_cleared_period", "clearing_clawbacks", ["cleared_period"])


def downgrade() -> None:
    """Drop them again."""
    for table in (
        "clearing_clawbacks",
        "clearing_transfers",
        "clearing_statement_lines",
        "clearing_statements",
        "clearing_runs",
        "clearing_alerts",
        "clearing_advances",
        "clearing_ledger_postings",
        "clearing_ledger_entries",
    ):
        op.drop_table(table)
    for name, _columns in reversed(_JOURNAL_INDEXES):
        op.drop_index(name, table_name="clearing_journal")
