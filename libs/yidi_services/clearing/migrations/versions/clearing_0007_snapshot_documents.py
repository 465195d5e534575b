"""Each discrepancy's side records as versioned JSON documents, not encoded ``SettlementRecord`` bytes.

``treatment_record``, ``national_record`` and ``insured_record`` become ``treatment_snapshot``,
``national_snapshot`` and ``insured_snapshot``. The rows already there are decoded with the
generated stubs and written by the snapshot codec
(:mod:`yidi_services.clearing.reconciliation.snapshots`: the one codec, which reads every
version it ever wrote); the downgrade encodes them back. A side that lacks the record stays NULL.

Revision ID: clearing_0007
Revises: clearing_0006
Create Date: 2026-12-08
"""

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

from yidi.settlement.v1.insured_settlement_service_pb2 import SettlementRecord
from yidi_services.clearing.reconciliation import snapshots

revision = "clearing_0007"
down_revision = "clearing_0006"
branch_labels = None
depends_on = None

_TABLE = "clearing_reconciliation_discrepancies"
_SIDES = ("treatment", "national", "insured")
_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "record": sa.LargeBinary(),
    "snapshot": sa.JSON(none_as_null=True),
}


def _document(data: bytes | None) -> dict[str, Any] | None:
    return None if data is None else snapshots.document(SettlementRecord.FromString(data))


def _encoded(snapshot: dict[str, Any] | None) -> bytes | None:
    return None if snapshot is None else snapshots.record(snapshot).SerializeToString(deterministic=True)


def _move(source: str, target: str, convert: Callable[[Any], Any]) -> None:
    """Add the ``<side>_<target>`` columns, fill each row's from its ``<side>_<source>``, drop those."""
    for side in _SIDES:
        op.add_column(_TABLE, sa.Column(f"{side}_{target}", _TYPES[target], nullable=True))
    table = sa.table(
        _TABLE,
        sa.column("seq", sa.BigInteger()),
        *(sa.column(f"{side}_{kind}", _TYPES[kind]) for side in _SIDES for kind in (source, target)),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(table.c.seq, *(table.c[f"{side}_{source}"] for side in _SIDES))).all()
    if rows:
        bind.execute(
            table.update()
            .where(table.c.seq == sa.bindparam("row_seq"))
            .values({f"{side}_{target}": sa.bindparam(f"new_{side}") for side in _SIDES}),
            [
                {
                    "row_seq": seq,
                    **{f"new_{side}": convert(old) for side, old in zip(_SIDES, olds, strict=True)},
                }
                for seq, *olds in rows
            ],
        )
    with op.batch_alter_table(_TABLE) as batch:
        for side in _SIDES:
            batch.drop_column(f"{side}_{source}")


def upgrade() -> None:
    """Every stored record as a snapshot document."""
    _move("record", "snapshot", _document)


def downgrade() -> None:
    """Every snapshot document as the record's deterministic encoding."""
    _move("snapshot", "record", _encoded)
