"""The treatment side's records as typed columns and versioned documents instead of protobuf bytes.

A visit's facts, a fee line as uploaded and as classified, a settlement's result and a
self-pay bill were kept in protobuf encoding. Each row is decoded here with the generated
messages and written as the columns :mod:`yidi_codec.documents` makes of it (scalars typed,
what nests a JSON document ``{"v": 1, ...}``); then the byte columns are dropped. Downgrade
encodes the columns back (deterministic encoding: the bytes as they were written). The codec
is the one definition of those forms: a later change of them is a later revision's to
convert, its documents a later version.

A self-pay bill whose visit facts held a service date that is no day (accepted before this
revision, refused since) keeps no service date in its facts.

Columns are dropped, so run it with every node stopped (docs/operations.md).

Revision ID: settlement_0008
Revises: settlement_0007
Create Date: 2026-12-07
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from alembic import op

from yidi.settlement.v1 import settlement_pb2
from yidi.type.v1 import fee_item_pb2, settlement_result_pb2, visit_pb2
from yidi_codec import documents

revision = "settlement_0008"
down_revision = "settlement_0007"
branch_labels = None
depends_on = None

_BATCH = 500
"""Rows converted per statement."""


def _fen(*names: str) -> tuple[sa.Column, ...]:
    return tuple(sa.Column(name, sa.BigInteger()) for name in names)


@dataclass(frozen=True)
class _Conversion:
    """One table's byte columns and the columns that replace them, and each row's conversion both ways."""

    table: str
    key: str
    encoded: tuple[str, ...]
    columns: tuple[sa.Column, ...]
    kept: tuple[str, ...]
    """Columns the conversions read besides those (a downgrade puts them back into the message)."""
    to_columns: Callable[[Any], dict[str, Any]]
    to_bytes: Callable[[Any], dict[str, bytes]]
    nullable: tuple[str, ...] = ()


def _encoded(message: Any) -> bytes:
    return bytes(message.SerializeToString(deterministic=True))


def _bill_columns(row: Any) -> dict[str, Any]:
    bill = settlement_pb2.SelfPayBill.FromString(row.bill)
    day = bill.facts.service_date
    try:
        date(day.year, day.month, day.day)
    except ValueError:  # unset, or no day at all (see above)
        bill.facts.ClearField("service_date")
    columns = documents.self_pay_bill_columns(bill)
    del columns["mdtrt_id"]  # a column from settlement_0009 on
    return columns


_CONVERSIONS = (
    _Conversion(
        "settlement_visits",
        "mdtrt_id",
        ("facts",),
        (
            sa.Column("med_type", sa.String(6)),
            sa.Column("service_date", sa.Date()),
            sa.Column("institution_level", sa.String()),
            sa.Column("chronic_disease", sa.String(6)),
            sa.Column("emergency", sa.Boolean()),
            sa.Column("diagnoses", sa.JSON()),
        ),
        ("fixmedins_code", "mdtrtarea_admvs"),
        lambda row: documents.visit_facts_columns(visit_pb2.VisitFacts.FromString(row.facts)),
        lambda row: {"facts": _encoded(documents.visit_facts_from_columns(row))},
    ),
    _Conversion(
        "settlement_fee_lines",
        "id",
        ("item", "result"),
        (
            sa.Column("uploaded", sa.JSON()),
            *_fen(
                "det_item_fee_sumamt_fen",
                "fulamt_ownpay_amt_fen",
                "overlmt_amt_fen",
                "preselfpay_amt_fen",
                "inscp_scp_amt_fen",
            ),
            sa.Column("classified", sa.JSON()),
        ),
        (),
        lambda row: {
            "uploaded": documents.fee_item_document(fee_item_pb2.FeeItem.FromString(row.item)),
            **documents.item_result_columns(fee_item_pb2.ItemResult.FromString(row.result)),
        },
        lambda row: {
            "item": _encoded(documents.fee_item_from_document(row.uploaded)),
            "result": _encoded(documents.item_result_from_columns(row)),
        },
    ),
    _Conversion(
        "settlement_settlements",
        "id",
        ("result",),
        (
            *_fen(
                "medfee_sumamt_fen",
                "fulamt_ownpay_amt_fen",
                "overlmt_selfpay_fen",
                "preselfpay_amt_fen",
                "inscp_scp_amt_fen",
                "act_pay_dedc_fen",
                "hifp_pay_fen",
            ),
            sa.Column("pool_prop_selfpay", sa.String(24)),
            *_fen("fund_pay_sumamt_fen", "psn_part_amt_fen", "acct_pay_fen", "psn_cash_pay_fen", "balc_fen"),
            sa.Column("cap_exhausted", sa.Boolean()),
            sa.Column("catalogue_version", sa.String(100)),
            sa.Column("policy_version", sa.String(80)),
            sa.Column("details", sa.JSON()),
        ),
        (),
        lambda row: documents.settlement_result_columns(
            settlement_result_pb2.SettlementResult.FromString(row.result)
        ),
        lambda row: {"result": _encoded(documents.settlement_result_from_columns(row))},
    ),
    _Conversion(
        "settlement_self_pay_bills",
        "bill_id",
        ("bill",),
        (
            sa.Column("medfee_sumamt_fen", sa.BigInteger()),
            sa.Column("service_date", sa.Date()),
            sa.Column("direct_settlement_failure_reason", sa.String(40)),
            sa.Column("details", sa.JSON()),
        ),
        ("fixmedins_code", "insuplc_admdvs"),
        _bill_columns,
        lambda row: {"bill": _encoded(documents.self_pay_bill_from_columns(row))},
        nullable=("service_date",),
    ),
)


def _rewrite(
    conversion: _Conversion,
    read: tuple[str, ...],
    written: tuple[sa.Column, ...],
    convert: Callable[[Any], dict[str, Any]],
) -> None:
    """Fill ``written`` of every row from its ``read`` columns, in pages by key."""
    table = sa.table(
        conversion.table,
        sa.column(conversion.key),
        *(sa.column(name) for name in conversion.kept),
        *(sa.column(name, sa.LargeBinary()) for name in conversion.encoded),
        *(sa.column(column.name, column.type) for column in conversion.columns),
    )
    key = table.c[conversion.key]
    names = [column.name for column in written]
    update = table.update().where(key == sa.bindparam("row_key"))
    connection = op.get_bind()
    last = None
    while True:
        page = (
            sa.select(key, *(table.c[name] for name in (*conversion.kept, *read))).order_by(key).limit(_BATCH)
        )
        rows = connection.execute(page.where(key > last) if last is not None else page).all()
        if not rows:
            return
        connection.execute(update, [{"row_key": row[0], **_picked(convert(row), names)} for row in rows])
        last = rows[-1][0]


def _picked(values: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The values of these columns (a conversion may also give columns the table already has)."""
    return {name: values[name] for name in names}


def _replace(
    conversion: _Conversion,
    old: tuple[sa.Column, ...],
    new: tuple[sa.Column, ...],
    convert: Callable[[Any], dict[str, Any]],
    nullable: tuple[str, ...],
) -> None:
    """Add ``new`` columns, fill them from the ``old`` ones row by row, drop ``old``."""
    for column in new:
        op.add_column(conversion.table, sa.Column(column.name, column.type, nullable=True))
    _rewrite(conversion, tuple(column.name for column in old), new, convert)
    with op.batch_alter_table(conversion.table) as batch:
        for column in old:
            batch.drop_column(column.name)
        for column in new:
            if column.name not in nullable:
                batch.alter_column(column.name, existing_type=column.type, nullable=False)


def _encoded_columns(conversion: _Conversion) -> tuple[sa.Column, ...]:
    return tuple(sa.Column(name, sa.LargeBinary()) for name in conversion.encoded)


def upgrade() -> None:
    """Typed columns and documents from each row's bytes; the byte columns dropped."""
    for conversion in _CONVERSIONS:
        _replace(
            conversion,
            _encoded_columns(conversion),
            conversion.columns,
            conversion.to_columns,
            conversion.nullable,
        )


def downgrade() -> None:
    """Each row's bytes from its columns; the typed columns and documents dropped."""
    for conversion in reversed(_CONVERSIONS):
        _replace(conversion, conversion.columns, _encoded_columns(conversion), conversion.to_bytes, ())
