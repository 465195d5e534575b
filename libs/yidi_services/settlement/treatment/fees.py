"""Fee lines of a visit (费用明细, 2204/2301 upload, 2205/2302 cancel), idempotent per serial.

A serial (``feedetl_sn``) is unique within its visit: the same line uploaded again is a
no-op answered with its stored classification, the same serial with other content is
DUPLICATE_REQUEST, and a cancelled serial may be uploaded anew.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from yidi.type.v1 import fee_item_pb2
from yidi_codec.documents import (
    fee_item_document,
    fee_item_from_document,
    item_result_columns,
    item_result_from_columns,
)
from yidi_codec.fields import Violations
from yidi_core.errors import DomainError, invalid
from yidi_core.money import check_fen
from yidi_core.placement import is_inpatient
from yidi_runtime.wire import as_utc, ensure_not_future, stamp_moment
from yidi_services.settlement.treatment.catalogue import Classified
from yidi_services.settlement.treatment.models import FeeLineRow, VisitRow


def line_fingerprint(message: fee_item_pb2.FeeItem) -> str:
    """The digest a repeated upload of a serial is compared by."""
    return hashlib.sha256(message.SerializeToString(deterministic=True)).hexdigest()


def _lines(session: Session, mdtrt_id: str) -> dict[str, FeeLineRow]:
    rows = session.scalars(select(FeeLineRow).where(FeeLineRow.mdtrt_id == mdtrt_id).order_by(FeeLineRow.id))
    return {row.feedetl_sn: row for row in rows}


_ACTIVE_ITEMS = (
    select(FeeLineRow.uploaded)
    .where(FeeLineRow.mdtrt_id == bindparam("mdtrt_id"), FeeLineRow.active, FeeLineRow.mid_setl_id.is_(None))
    .order_by(FeeLineRow.id)
)
"""Built once: every Settle reads its visit's lines."""


def active_items(session: Session, mdtrt_id: str) -> list[fee_item_pb2.FeeItem]:
    """The visit's lines neither cancelled nor settled mid-stay, in upload order: the bill a settlement classifies."""
    return [fee_item_from_document(item) for item in session.scalars(_ACTIVE_ITEMS, {"mdtrt_id": mdtrt_id})]


def settle_mid_stay(session: Session, mdtrt_id: str, serials: Sequence[str], setl_id: str) -> None:
    """Mark the lines a mid-stay settlement classified as settled by it; a line cancelled or settled
    by another part meanwhile refuses it (ALREADY_SETTLED), as a concurrent Settle of the visit would."""
    marked = session.execute(
        update(FeeLineRow)
        .where(
            FeeLineRow.mdtrt_id == mdtrt_id,
            FeeLineRow.feedetl_sn.in_(serials),
            FeeLineRow.active,
            FeeLineRow.mid_setl_id.is_(None),
        )
        .values(mid_setl_id=setl_id)
    )
    if marked.rowcount != len(serials):  # type: ignore[attr-defined]
        raise DomainError(
            "ALREADY_SETTLED",
            f"the lines of visit {mdtrt_id} changed while it was being settled: settle it again",
            metadata={"mdtrt_id": mdtrt_id},
        )


def ensure_no_part_settled(session: Session, mdtrt_id: str, upload_request_id: str | None = None) -> None:
    """Refuse (ALREADY_SETTLED) to undo a visit, or one upload of it, that a mid-stay part settled
    lines of: reverse that part first."""
    statement = select(FeeLineRow.mid_setl_id).where(
        FeeLineRow.mdtrt_id == mdtrt_id, FeeLineRow.active, FeeLineRow.mid_setl_id.is_not(None)
    )
    if upload_request_id is not None:
        statement = statement.where(FeeLineRow.upload_request_id == upload_request_id)
    part = session.scalars(statement.limit(1)).first()
    if part is not None:
        raise DomainError(
            "ALREADY_SETTLED",
            f"visit {mdtrt_id} has lines settled mid-stay ({part}): reverse that settlement first",
            metadata={"mdtrt_id": mdtrt_id, "setl_id": part},
        )


def release_mid_stay(session: Session, setl_id: str) -> None:
    """The lines of a reversed mid-stay settlement are the stay's to settle again."""
    session.execute(update(FeeLineRow).where(FeeLineRow.mid_setl_id == setl_id).values(mid_setl_id=None))


def ensure_times_past(
    messages: Sequence[fee_item_pb2.FeeItem], now: datetime, field_path: str = "items"
) -> None:
    """Refuse lines whose fee time (``fee_ocur_time``, optional) is not a time or has not come yet."""
    problems = Violations()
    for index, message in enumerate(messages):
        if message.HasField("fee_ocur_time"):
            where = f"{field_path}[{index}].fee_ocur_time"
            problems.check(
                lambda m=message, w=where: ensure_not_future(stamp_moment(m.fee_ocur_time, w), now, w)
            )
    problems.raise_any()


def ensure_outside_lines_fit(messages: Sequence[fee_item_pb2.FeeItem], visit: VisitRow) -> None:
    """A line from outside the hospital (``outside_hospital``) belongs to an inpatient stay, and
    arose during it: its ``fee_ocur_time`` is required and not before the admission."""
    problems = Violations()
    for index, message in enumerate(messages):
        if not message.outside_hospital:
            continue
        where = f"items[{index}]"
        if not is_inpatient(visit.med_type):
            problems.add(
                invalid("INVALID_ARGUMENT", f"{where}.outside_hospital", "only on an inpatient stay")
            )
        elif not message.HasField("fee_ocur_time"):
            problems.add(
                invalid("INVALID_ARGUMENT", f"{where}.fee_ocur_time", "is required for a line from outside")
            )
        elif stamp_moment(message.fee_ocur_time, f"{where}.fee_ocur_time") < as_utc(visit.begin_time):
            problems.add(
                invalid("INVALID_ARGUMENT", f"{where}.fee_ocur_time", "must not be before the admission")
            )
    problems.raise_any()


def _total_fen(
    existing: dict[str, FeeLineRow], messages: Sequence[fee_item_pb2.FeeItem], classified: Classified
) -> int:
    """What the visit's active lines total once ``messages`` are stored (a line uploaded again counts once)."""
    total = sum(row.det_item_fee_sumamt_fen for row in existing.values() if row.active)
    for message, result in zip(messages, classified.results, strict=True):
        row = existing.get(message.feedetl_sn.strip())
        if row is None or not row.active:
            total += result.det_item_fee_sumamt_fen
    return total


def store(
    session: Session,
    mdtrt_id: str,
    request_id: str,
    messages: Sequence[fee_item_pb2.FeeItem],
    classified: Classified,
    now: datetime,
) -> list[fee_item_pb2.ItemResult]:
    """Store new lines with their classification; a repeated identical line answers as stored.

    The visit's lines together may not exceed :data:`~yidi_core.money.MAX_AMOUNT_FEN`.
    """
    existing = _lines(session, mdtrt_id)
    check_fen(_total_fen(existing, messages, classified), "items", "the visit's lines together")
    answers = []
    for message, result in zip(messages, classified.results, strict=True):
        serial, digest = message.feedetl_sn.strip(), line_fingerprint(message)
        row = existing.get(serial)
        if row is not None and row.active:
            if row.fingerprint != digest:
                raise DomainError(
                    "DUPLICATE_REQUEST",
                    f"fee line {serial} of visit {mdtrt_id} was uploaded with other content; cancel it first",
                    metadata={"mdtrt_id": mdtrt_id, "feedetl_sn": serial},
                )
            answers.append(item_result_from_columns(row))
            continue
        if row is None:
            row = FeeLineRow(mdtrt_id=mdtrt_id, feedetl_sn=serial, created_at=now)
            session.add(row)
        row.upload_request_id = request_id
        row.fingerprint = digest
        row.uploaded = fee_item_document(message)
        for column, value in item_result_columns(result).items():
            setattr(row, column, value)
        row.catalogue_version = classified.catalogue_version
        row.active = True
        answers.append(result)
    return answers


def cancel(session: Session, mdtrt_id: str, serials: Sequence[str], everything: bool) -> int:
    """Cancel the named serials (NOT_FOUND for one never uploaded, ALREADY_SETTLED for one settled
    mid-stay) or every line not yet settled; returns how many."""
    lines = _lines(session, mdtrt_id)
    if everything:
        targets = [row for row in lines.values() if row.active and row.mid_setl_id is None]
    else:
        unknown = [serial for serial in serials if serial.strip() not in lines]
        if unknown:
            raise DomainError(
                "NOT_FOUND",
                f"visit {mdtrt_id} has no fee line {unknown[0][:64]!r}",
                metadata={"mdtrt_id": mdtrt_id, "feedetl_sn": unknown[0][:64]},
            )
        targets = [lines[serial.strip()] for serial in dict.fromkeys(serials) if lines[serial.strip()].active]
    settled = next((row for row in targets if row.mid_setl_id is not None), None)
    if settled is not None:
        raise DomainError(
            "ALREADY_SETTLED",
            f"fee line {settled.feedetl_sn} of visit {mdtrt_id} was settled mid-stay ({settled.mid_setl_id})",
            metadata={"mdtrt_id": mdtrt_id, "feedetl_sn": settled.feedetl_sn, "setl_id": settled.mid_setl_id},
        )
    for row in targets:
        row.active = False
    return len(targets)


def cancel_upload(session: Session, mdtrt_id: str, upload_request_id: str) -> int:
    """Cancel the lines one upload brought that are still active (its correction); returns how many."""
    rows = session.scalars(
        select(FeeLineRow).where(
            FeeLineRow.mdtrt_id == mdtrt_id,
            FeeLineRow.upload_request_id == upload_request_id,
            FeeLineRow.active,
        )
    ).all()
    for row in rows:
        row.active = False
    return len(rows)
