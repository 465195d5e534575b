"""ListSettlementRecords: what this node itself recorded of settlements, for the national reconciliation.

The national node compares, msgid by msgid, what each treatment node recorded, what its
journal holds and what each insured node applied (issue 8). Every side is listed in the
terms the three share (:class:`SettlementRecord`):

- **treatment side**: every settlement record *and* every reversing record made at this
  node, each as its own record with its own msgid (``medins_setl_id``) and its
  ``setl_time``, the reversal's amounts negated. That is exactly how the journal holds
  them (a SETTLEMENT entry and a REVERSAL entry), so the two sides compare one to one;
  the original additionally says ``reversed``, and the reversing record names the msgid
  of the settlement it undoes (``reverses_msgid``), so a lost journal entry of a reversal
  can be replayed exactly.
- **insured side**: every application this node applied, keyed by the institution and msgid
  of the Settle that caused it (the application id ``<fixmedins_code>/<msgid>:apply``,
  :mod:`yidi_runtime.settlement_keys`; an id of before that scheme gives its msgid alone), timed by when it was
  applied, with its hold state — voided (``reversed``) when it timed out unrecorded or was
  reverted. Tombstones (a revert that arrived before its application) are not applications
  and are not listed, nor are the self-pay bills this node reimbursed manually (no other side
  records them). The insured node does not know the clearing type; its treatment
  region is the region of the treatment node that assigned the ``setl_id`` (its prefix),
  and the insured region and insurance type are those of the policy version applied.

Pages are keyset pages over (time, row key), so records added while a caller pages are
neither repeated nor skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from yidi.settlement.v1 import insured_settlement_service_pb2 as api
from yidi_codec.fields import Violations
from yidi_core.errors import invalid
from yidi_runtime.config import NodeSettings
from yidi_runtime.db import Database
from yidi_runtime.paging import bad_token, decode_token, encode_token
from yidi_runtime.settlement_keys import origin_id, split_key
from yidi_runtime.wire import as_utc, timestamp_message
from yidi_services.settlement.insured.models import ApplicationKind, ApplicationRow, ApplicationState
from yidi_services.settlement.treatment.models import SettlementRow

DEFAULT_PAGE_SIZE = 1_000
MAX_PAGE_SIZE = 10_000
_LIVE_STATES = {
    ApplicationState.HELD.value: api.HOLD_STATE_HELD,
    ApplicationState.CONFIRMED.value: api.HOLD_STATE_CONFIRMED,
}
_LISTED_STATES = (*_LIVE_STATES, ApplicationState.EXPIRED.value, ApplicationState.REVERTED.value)


@dataclass(frozen=True)
class RecordsQuery:
    """A checked request: which side, the half-open time range, the page asked for."""

    side: int
    start_time: datetime
    end_time: datetime
    page_size: int
    page_token: str

    def digest(self) -> dict[str, str]:
        """What a page token is bound to."""
        return {
            "side": str(self.side),
            "start": self.start_time.isoformat(),
            "end": self.end_time.isoformat(),
        }


def query_of(request: api.ListSettlementRecordsRequest) -> RecordsQuery:
    """The request's filters, checked; every bad field named at once."""
    problems = Violations()
    if request.side not in (api.RECORD_SIDE_TREATMENT, api.RECORD_SIDE_INSURED):
        problems.add(
            invalid("INVALID_ARGUMENT", "side", "must be RECORD_SIDE_TREATMENT or RECORD_SIDE_INSURED")
        )
    moments = {}
    for field in ("start_time", "end_time"):
        if not request.HasField(field):
            problems.add(invalid("INVALID_ARGUMENT", field, "is required"))
            continue
        try:
            moments[field] = getattr(request, field).ToDatetime(tzinfo=UTC)
        except (ValueError, OverflowError):
            problems.add(invalid("INVALID_ARGUMENT", field, "is not a representable time"))
    if len(moments) == 2 and moments["end_time"] <= moments["start_time"]:
        problems.add(invalid("INVALID_ARGUMENT", "end_time", "must be after start_time"))
    if request.page_size < 0:
        problems.add(
            invalid("INVALID_ARGUMENT", "page_size", f"must not be negative, got {request.page_size}")
        )
    problems.raise_any()
    size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    return RecordsQuery(request.side, moments["start_time"], moments["end_time"], size, request.page_token)


def _policy_terms(policy_version: str) -> tuple[str, str]:
    """Insured region and insurance type of a policy version id (``131000/310@2026-01-01#1``)."""
    region, _, rest = policy_version.partition("/")
    insutype = rest.partition("@")[0]
    return (region, insutype) if len(region) == 6 and insutype else ("", "")


def treatment_record(row: Any) -> api.SettlementRecord:
    """A settlement or reversing record as the treatment side lists it.

    ``row``: a ``settlement_settlements`` row with ``reverses_msgid``, the msgid of the
    settlement a reversing record undoes (None otherwise), from :func:`_treatment_rows`.
    """
    return api.SettlementRecord(
        msgid=row.medins_setl_id,
        setl_id=row.setl_id,
        mdtrt_id=row.mdtrt_id,
        reverses_msgid=row.reverses_msgid or "",
        insuplc_admdvs=row.insuplc_admdvs,
        mdtrtarea_admvs=row.mdtrtarea_admvs,
        fixmedins_code=row.fixmedins_code,
        psn_no=row.psn_no,
        insutype=row.insutype,
        clr_type=row.clr_type,
        medfee_sumamt_fen=row.medfee_sumamt_fen,
        fund_pay_sumamt_fen=row.fund_pay_sumamt_fen,
        acct_pay_fen=row.acct_pay_fen,
        psn_cash_pay_fen=row.psn_cash_pay_fen,
        record_time=timestamp_message(row.setl_time),
        reversed=row.reversed,
    )


def insured_record(row: Any) -> api.SettlementRecord:
    """An application (a ``settlement_insured_applications`` row) as the insured side lists it."""
    region, insutype = _policy_terms(row.policy_version)
    fixmedins_code, msgid = split_key(origin_id(row.request_id, "apply") or row.request_id)
    return api.SettlementRecord(
        msgid=msgid,
        fixmedins_code=fixmedins_code,
        setl_id=row.setl_id,
        insuplc_admdvs=region or row.psn_no[:6],
        mdtrtarea_admvs=row.setl_id[:6],
        psn_no=row.psn_no,
        insutype=insutype,
        medfee_sumamt_fen=row.medfee_sumamt_fen,
        fund_pay_sumamt_fen=row.fund_pay_sumamt_fen,
        acct_pay_fen=row.acct_pay_fen,
        psn_cash_pay_fen=row.psn_cash_pay_fen,
        record_time=timestamp_message(row.created_at),
        reversed=row.state not in _LIVE_STATES,
        hold_state=_LIVE_STATES.get(row.state, api.HOLD_STATE_VOIDED),
    )


@dataclass(frozen=True)
class _Side:
    """How one side's rows are selected, ordered and turned into records."""

    rows: Callable[[], Select[Any]]
    time: InstrumentedAttribute[datetime]
    key: InstrumentedAttribute[Any]
    key_of: Callable[[str], Any]
    record: Callable[[Any], api.SettlementRecord]


def _treatment_rows() -> Select[Any]:
    """Every record; a reversing one with the msgid of the settlement it undoes (by its ``setl_id``)."""
    original = aliased(SettlementRow)
    return select(SettlementRow.__table__, original.medins_setl_id.label("reverses_msgid")).outerjoin(
        original, original.setl_id == SettlementRow.reverses_setl_id
    )


def _insured_rows() -> Select[Any]:
    """Every settlement applied (held, confirmed, or voided since); not tombstones, and not the bills
    reimbursed manually here, which no treatment node or journal records."""
    return select(ApplicationRow.__table__).where(
        ApplicationRow.state.in_(_LISTED_STATES), ApplicationRow.kind == ApplicationKind.DIRECT.value
    )


def _row_id(text: str) -> int:
    if not text.isdigit():
        raise bad_token()
    return int(text)


_SIDES = {
    api.RECORD_SIDE_TREATMENT: _Side(
        _treatment_rows, SettlementRow.setl_time, SettlementRow.id, _row_id, treatment_record
    ),
    api.RECORD_SIDE_INSURED: _Side(
        _insured_rows, ApplicationRow.created_at, ApplicationRow.request_id, str, insured_record
    ),
}


def list_records(session: Session, query: RecordsQuery) -> tuple[list[api.SettlementRecord], str]:
    """One page of the side's records in [start, end), in record order, and the next page's token."""
    side = _SIDES[query.side]
    statement = side.rows().where(side.time >= query.start_time, side.time < query.end_time)
    last = decode_token(query.page_token, query.digest(), 2)
    if last is not None:
        try:
            moment = as_utc(datetime.fromisoformat(last[0]))
        except ValueError:
            raise bad_token() from None
        key = side.key_of(last[1])
        statement = statement.where(or_(side.time > moment, and_(side.time == moment, side.key > key)))
    # Plain rows, not mapped instances: a page holds thousands of records, read once.
    rows: Sequence[Any] = session.execute(
        statement.order_by(side.time, side.key).limit(query.page_size + 1)
    ).all()
    page = rows[: query.page_size]
    token = ""
    if len(rows) > query.page_size:
        tail = page[-1]
        token = encode_token(
            [as_utc(getattr(tail, side.time.key)).isoformat(), str(getattr(tail, side.key.key))],
            query.digest(),
        )
    return [side.record(row) for row in page], token


class RecordsListing:
    """Answers ListSettlementRecords at the destination node from its own tables."""

    def __init__(self, database: Database, settings: NodeSettings) -> None:
        self._database = database
        self._children = [child.region for child in settings.children]

    def answer(self, request: api.ListSettlementRecordsRequest) -> api.ListSettlementRecordsResponse:
        """The page asked for, with this node's children for the caller to descend to."""
        query = query_of(request)
        with self._database.unit_of_work() as uow:
            records, token = list_records(uow.session, query)
        return api.ListSettlementRecordsResponse(
            records=records, next_page_token=token, child_regions=self._children
        )
