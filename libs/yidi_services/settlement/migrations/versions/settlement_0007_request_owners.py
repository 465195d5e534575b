"""The trust boundary: request ids kept per owner, applications kept with the node that made them,
fences and receipts.

- The request log and the outcomes are keyed by (owner, request_id); outcomes already
  recorded take their owner from the visit they acted on (the institution that registered
  it); a correction's bar of a request that never arrived keeps the legacy owner.
- A settlement's msgid is unique per institution.
- An outcome may be a fence, naming the insured node that fenced it.
- An application names the node that applied it (its route's origin; for those applied
  before, the region its settlement id starts with) and counts unanswered resolutions.
- Receipts the other nodes signed are kept.

Revision ID: settlement_0007
Revises: settlement_0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from yidi_runtime.idempotency import LEGACY_OWNER, MAX_OWNER, key_requests_by_id, key_requests_by_owner

revision = "settlement_0007"
down_revision = "settlement_0006"
branch_labels = None
depends_on = None

_OUTCOMES = "settlement_outcomes"
_SETTLEMENTS = "settlement_settlements"
_APPLICATIONS = "settlement_insured_applications"
_RECEIPTS = "settlement_receipts"


def upgrade() -> None:
    """Owners on the request log and the outcomes; (institution, msgid) unique on settlements."""
    key_requests_by_owner(op, "settlement")
    with op.batch_alter_table(_OUTCOMES) as batch:
        batch.add_column(
            sa.Column("owner", sa.String(MAX_OWNER), nullable=False, server_default=LEGACY_OWNER)
        )
        batch.drop_constraint(f"pk_{_OUTCOMES}", type_="primary")
        batch.create_primary_key(f"pk_{_OUTCOMES}", ["owner", "request_id"])
    op.execute(
        sa.text(
            f"UPDATE {_OUTCOMES} SET owner = 'institution/' || ("
            f"SELECT fixmedins_code FROM settlement_visits WHERE settlement_visits.mdtrt_id = {_OUTCOMES}.mdtrt_id)"
            f" WHERE mdtrt_id IN (SELECT mdtrt_id FROM settlement_visits)"
        )
    )
    op.add_column(_OUTCOMES, sa.Column("fenced_by", sa.String(6), nullable=True))
    with op.batch_alter_table(_SETTLEMENTS) as batch:
        batch.drop_constraint(f"uq_{_SETTLEMENTS}_medins_setl_id", type_="unique")
        batch.create_unique_constraint(
            f"uq_{_SETTLEMENTS}_fixmedins_code_medins_setl_id", ["fixmedins_code", "medins_setl_id"]
        )
    op.add_column(_APPLICATIONS, sa.Column("origin_admdvs", sa.String(6), nullable=False, server_default=""))
    op.add_column(
        _APPLICATIONS, sa.Column("resolve_attempts", sa.Integer(), nullable=False, server_default="0")
    )
    op.execute(
        sa.text(f"UPDATE {_APPLICATIONS} SET origin_admdvs = substr(setl_id, 1, 6) WHERE setl_id <> ''")
    )
    op.create_table(
        _RECEIPTS,
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("method", sa.String(40), nullable=False),
        sa.Column("signer_admdvs", sa.String(6), nullable=False),
        sa.Column("answer", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "method", name=f"pk_{_RECEIPTS}"),
    )


def downgrade() -> None:
    """Back to ids unique on their own (fails if two institutions used one msgid)."""
    op.drop_table(_RECEIPTS)
    with op.batch_alter_table(_APPLICATIONS) as batch:
        batch.drop_column("resolve_attempts")
        batch.drop_column("origin_admdvs")
    with op.batch_alter_table(_SETTLEMENTS) as batch:
        batch.drop_constraint(f"uq_{_SETTLEMENTS}_fixmedins_code_medins_setl_id", type_="unique")
        batch.create_unique_constraint(f"uq_{_SETTLEMENTS}_medins_setl_id", ["medins_setl_id"])
    with op.batch_alter_table(_OUTCOMES) as batch:
        batch.drop_constraint(f"pk_{_OUTCOMES}", type_="primary")
        batch.drop_column("fenced_by")
        batch.drop_column("owner")
        batch.create_primary_key(f"pk_{_OUTCOMES}", ["request_id"])
    key_requests_by_id(op, "settlement")
