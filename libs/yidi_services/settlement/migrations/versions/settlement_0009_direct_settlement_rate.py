"""The direct-settlement rate (应结尽结): what became of each visit that was not settled directly.

- A visit keeps the reason its last Settle or PreSettle was refused for, and when.
- A self-pay bill may name the visit it reimburses manually; the visit then names the bill.
- Visits are counted by service date.

Revision ID: settlement_0009
Revises: settlement_0008
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "settlement_0009"
down_revision = "settlement_0008"
branch_labels = None
depends_on = None

_VISITS = "settlement_visits"
_BILLS = "settlement_self_pay_bills"
_BY_DAY = "ix_settlement_visits_service_date"


def upgrade() -> None:
    """Refusal and bill columns on visits, the visit on bills, visits indexed by service date."""
    with op.batch_alter_table(_VISITS) as batch:
        batch.add_column(sa.Column("refusal_reason", sa.String(40), nullable=True))
        batch.add_column(sa.Column("refused_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("self_pay_bill_id", sa.String(30), nullable=True))
    with op.batch_alter_table(_BILLS) as batch:
        batch.add_column(sa.Column("mdtrt_id", sa.String(30), nullable=True))
    op.create_index(_BY_DAY, _VISITS, ["service_date"])


def downgrade() -> None:
    """Drop them again (what they recorded is lost; the visits and bills stay)."""
    op.drop_index(_BY_DAY, table_name=_VISITS)
    with op.batch_alter_table(_BILLS) as batch:
        batch.drop_column("mdtrt_id")
    with op.batch_alter_table(_VISITS) as batch:
        batch.drop_column("self_pay_bill_id")
        batch.drop_column("refused_at")
        batch.drop_column("refusal_reason")
