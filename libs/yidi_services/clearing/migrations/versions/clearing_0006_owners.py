"""Ids kept per owner: the request log keyed by (owner, request_id); a journal msgid unique per
institution (the one that sent it), and so a reversal's target; a clawback names the settlement's
institution (filled in from the journal for those recorded before).

Revision ID: clearing_0006
Revises: clearing_0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from yidi_runtime.idempotency import key_requests_by_id, key_requests_by_owner

revision = "clearing_0006"
down_revision = "clearing_0005"
branch_labels = None
depends_on = None

_JOURNAL = "clearing_journal"
_CLAWBACKS = "clearing_clawbacks"


def upgrade() -> None:
    """Owners on the request log; (institution, msgid) unique in the journal; clawbacks name the institution."""
    key_requests_by_owner(op, "clearing")
    with op.batch_alter_table(_JOURNAL) as batch:
        batch.drop_constraint(f"uq_{_JOURNAL}_msgid", type_="unique")
        batch.drop_constraint(f"uq_{_JOURNAL}_reverses_msgid", type_="unique")
        batch.create_unique_constraint(f"uq_{_JOURNAL}_fixmedins_code_msgid", ["fixmedins_code", "msgid"])
        batch.create_unique_constraint(
            f"uq_{_JOURNAL}_fixmedins_code_reverses_msgid", ["fixmedins_code", "reverses_msgid"]
        )
    op.add_column(_CLAWBACKS, sa.Column("fixmedins_code", sa.String(12), nullable=False, server_default=""))
    op.execute(
        sa.text(
            f"UPDATE {_CLAWBACKS} SET fixmedins_code = (SELECT j.fixmedins_code FROM {_JOURNAL} j "
            f"WHERE j.msgid = {_CLAWBACKS}.msgid) WHERE msgid IN (SELECT msgid FROM {_JOURNAL})"
        )
    )


def downgrade() -> None:
    """Back to msgids unique on their own (fails if two institutions used one)."""
    with op.batch_alter_table(_CLAWBACKS) as batch:
        batch.drop_column("fixmedins_code")
    with op.batch_alter_table(_JOURNAL) as batch:
        batch.drop_constraint(f"uq_{_JOURNAL}_fixmedins_code_reverses_msgid", type_="unique")
        batch.drop_constraint(f"uq_{_JOURNAL}_fixmedins_code_msgid", type_="unique")
        batch.create_unique_constraint(f"uq_{_JOURNAL}_reverses_msgid", ["reverses_msgid"])
        batch.create_unique_constraint(f"uq_{_JOURNAL}_msgid", ["msgid"])
    key_requests_by_id(op, "clearing")
