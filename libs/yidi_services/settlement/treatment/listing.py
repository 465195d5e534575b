"""Reading settlement records: one by id, or a keyset-paged list (AIP-158), oldest first.

An institution reads only its own records; a caller without an envelope (an operator of
this node) reads every record of the node's region.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from yidi.settlement.v1 import settlement_pb2
from yidi_codec.fields import Violations
from yidi_core.codes import check_institution, check_region
from yidi_core.errors import DomainError, invalid
from yidi_runtime.paging import bad_token, decode_token, encode_token, page_size
from yidi_runtime.regions import below
from yidi_services.settlement.treatment.checks import Caller
from yidi_services.settlement.treatment.models import SettlementRow
from yidi_services.settlement.treatment.records import find, settlement_message


def get(
    session: Session, setl_id: str, medins_setl_id: str, caller: Caller | None
) -> settlement_pb2.Settlement:
    """One record by ``setl_id`` or ``medins_setl_id``."""
    if not (setl_id or medins_setl_id):
        raise invalid("INVALID_ARGUMENT", "key", "name the settlement by setl_id or medins_setl_id")
    row = find(
        session,
        setl_id=setl_id.strip(),
        medins_setl_id=medins_setl_id.strip(),
        fixmedins_code=caller.fixmedins_code if caller is not None else "",
    )
    if row is None:
        key = (setl_id or medins_setl_id)[:64]
        raise DomainError("NOT_FOUND", f"no settlement {key!r} on this node", metadata={"key": key})
    if caller is not None:
        caller.owns(row.fixmedins_code, f"settlement {row.setl_id}")
    return settlement_message(row)


@dataclass(frozen=True)
class SettlementQuery:
    """ListSettlements' filters (the page token is bound to them)."""

    fixmedins_code: str
    insuplc_admdvs: str
    start_time: datetime | None
    end_time: datetime | None
    include_reversals: bool
    audit_flagged_only: bool


def checked_query(query: SettlementQuery, caller: Caller | None) -> SettlementQuery:
    """Codes checked; an institution's listing is limited to itself."""
    problems = Violations()
    if query.fixmedins_code:
        problems.check(lambda: check_institution(query.fixmedins_code, "fixmedins_code"))
    if query.insuplc_admdvs:
        problems.check(lambda: check_region(query.insuplc_admdvs, "insuplc_admdvs"))
    if query.start_time and query.end_time and query.start_time >= query.end_time:
        problems.add(invalid("INVALID_ARGUMENT", "end_time", "must be after start_time"))
    problems.raise_any()
    if caller is None:
        return query
    if query.fixmedins_code and query.fixmedins_code != caller.fixmedins_code:
        caller.owns(query.fixmedins_code, "the settlements listed")
    return SettlementQuery(**{**asdict(query), "fixmedins_code": caller.fixmedins_code})


def list_settlements(
    session: Session, query: SettlementQuery, size: int, token: str
) -> tuple[list[settlement_pb2.Settlement], str]:
    """One page of records matching ``query``, oldest first, and the next page's token."""
    limit = page_size(size)
    digest = {key: str(value) for key, value in asdict(query).items()}
    last = decode_token(token, digest, 1)
    if last is not None and not last[0].isdigit():
        raise bad_token()
    statement = select(SettlementRow).order_by(SettlementRow.id).limit(limit + 1)
    if last is not None:
        statement = statement.where(SettlementRow.id > int(last[0]))
    if query.fixmedins_code:
        statement = statement.where(SettlementRow.fixmedins_code == query.fixmedins_code)
    if query.insuplc_admdvs:
        statement = statement.where(below(SettlementRow.insuplc_admdvs, query.insuplc_admdvs))
    if query.start_time is not None:
        statement = statement.where(SettlementRow.setl_time >= query.start_time)
    if query.end_time is not None:
        statement = statement.where(SettlementRow.setl_time < query.end_time)
    if not query.include_reversals:
        statement = statement.where(SettlementRow.reverses_setl_id.is_(None))
    if query.audit_flagged_only:
        statement = statement.where(SettlementRow.audit_flag)
    rows = list(session.scalars(statement))
    page = rows[:limit]
    next_token = encode_token([str(page[-1].id)], digest) if len(rows) > limit else ""
    return [settlement_message(row) for row in page], next_token
