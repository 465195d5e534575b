"""Gathering the three sides: every node's own records down the region tree, and the national journal.

The national node asks each of its children for its records (``ListSettlementRecords``,
``route.destination_admdvs`` = the node asked, carried down the tree by the nodes on the
way), then the children those name, until no node is left: every node is asked exactly
once, through the node's one :class:`~yidi_runtime.routing.Router`. A node that does not
answer fails the run — a side read only in part would report holes that are not there.

The journal is read from this node's own table (the clearing service owns it), over the
same window, with whether each settlement was reversed in it at any time since.

Cost for N records a day: N / PAGE_SIZE calls per node and side, one indexed range scan
of the journal and N / 500 index lookups for its reversals, and the comparison in memory,
linear in N (sorting the msgids aside).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from yidi.settlement.v1 import insured_settlement_service_pb2 as settlement_api
from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as settlement_grpc
from yidi.settlement.v1 import settlement_pb2
from yidi_core.codes import NATIONAL_REGION
from yidi_runtime.routing import Router
from yidi_runtime.settlement_keys import settlement_key
from yidi_runtime.wire import as_utc, timestamp_message
from yidi_services.clearing.models import JournalEntryRecord
from yidi_services.clearing.reconciliation.compare import Seen, SettlementRecord, Sides

T = TypeVar("T")

PAGE_SIZE = 5_000
"""Records per ListSettlementRecords page: well inside gRPC's 4 MB message limit."""
PAGE_DEADLINE_S = 60.0
_CHUNK = 500
"""msgids per ``IN (...)`` lookup."""


@dataclass(frozen=True)
class Window:
    """The half-open time range records are read over."""

    start: datetime
    end: datetime


class TreeWalker:
    """Asks every node of the tree below this one for its own records of one side."""

    def __init__(self, router: Router) -> None:
        self._router = router

    def _page(
        self, region: str, side: int, window: Window, token: str, page_size: int = PAGE_SIZE
    ) -> settlement_api.ListSettlementRecordsResponse:
        client = self._router.toward(region, "route.destination_admdvs")
        stub = client.stub(settlement_grpc.InsuredSettlementServiceStub)
        request = settlement_api.ListSettlementRecordsRequest(
            route=settlement_pb2.Route(origin_admdvs=self._router.settings.region, destination_admdvs=region),
            side=side,
            start_time=timestamp_message(window.start),
            end_time=timestamp_message(window.end),
            page_size=page_size,
            page_token=token,
        )
        answer: settlement_api.ListSettlementRecordsResponse = client.call(
            stub.ListSettlementRecords, request, deadline_s=PAGE_DEADLINE_S
        )
        return answer

    def _records(self, region: str, side: int, window: Window) -> tuple[list[SettlementRecord], list[str]]:
        """Every record of one node and side in the window, and the node's children."""
        records: list[SettlementRecord] = []
        token = ""
        while True:
            page = self._page(region, side, window, token)
            records += page.records
            token = page.next_page_token
            if not token:
                return records, list(page.child_regions)

    def collect(self, window: Window) -> tuple[dict[str, Seen], dict[str, Seen]]:
        """Every treatment record and every insured record in the window, by key, with its node."""
        treatment: dict[str, Seen] = {}
        insured: dict[str, Seen] = {}
        queue = deque(child.region for child in self._router.settings.children)
        asked: set[str] = set()
        while queue:
            region = queue.popleft()
            if region in asked or region == NATIONAL_REGION:
                continue
            asked.add(region)
            records, children = self._records(region, settlement_api.RECORD_SIDE_TREATMENT, window)
            treatment.update((record_key(record), Seen(record, region)) for record in records)
            records, _ = self._records(region, settlement_api.RECORD_SIDE_INSURED, window)
            insured.update((record_key(record), Seen(record, region)) for record in records)
            queue.extend(children)
        return treatment, insured

    def insured_record(self, region: str, key: str, recorded_at: datetime) -> SettlementRecord | None:
        """The insured node's record of one key as it stands now (read again after a repair)."""
        window = Window(recorded_at, recorded_at + timedelta(milliseconds=1))
        records, _ = self._records(region, settlement_api.RECORD_SIDE_INSURED, window)
        return next((record for record in records if record_key(record) == key), None)


def record_key(record: SettlementRecord) -> str:
    """What the sides of a settlement are matched by: its institution and msgid (:func:`settlement_key`),
    since a msgid is unique per institution only; a record naming no institution by its msgid alone."""
    return settlement_key(record.fixmedins_code, record.msgid) if record.fixmedins_code else record.msgid


def journal_record(row: Any, reversed_: bool) -> SettlementRecord:
    """A journal row in the terms the three sides share; ``reversed_``: a reversal of it is journalled.

    It keeps the visit and, for a reversal, the settlement undone, as the treatment side
    lists them: a reversal is known as one on either side by the settlement it names.
    """
    return SettlementRecord(
        msgid=row.msgid,
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
        record_time=timestamp_message(as_utc(row.setl_time)),
        reversed=reversed_,
    )


def _chunks(values: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def reversed_in_journal(session: Session, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these settlements (institution, msgid) the journal holds a reversal of, recorded at any time since.

    Looked up through the unique index on (institution, ``reverses_msgid``), so the cost does
    not depend on how long ago the settlements were made.
    """
    found: set[tuple[str, str]] = set()
    for chunk in _chunks(keys):
        found.update(
            (code, msgid)
            for code, msgid in session.execute(
                select(JournalEntryRecord.fixmedins_code, JournalEntryRecord.reverses_msgid).where(
                    tuple_(JournalEntryRecord.fixmedins_code, JournalEntryRecord.reverses_msgid).in_(chunk)
                )
            )
            if msgid is not None
        )
    return found


def journal_records(session: Session, window: Window) -> dict[str, Seen]:
    """The journal's entries settled in the window, by key, each settlement marked reversed or not."""
    # Plain rows, not mapped instances: a day holds many thousands, read once.
    rows = session.execute(
        select(JournalEntryRecord.__table__)
        .where(JournalEntryRecord.setl_time >= window.start, JournalEntryRecord.setl_time < window.end)
        .order_by(JournalEntryRecord.seq)
    ).all()
    reversed_ = reversed_in_journal(
        session, [(row.fixmedins_code, row.msgid) for row in rows if row.reverses_msgid is None]
    )
    return {
        settlement_key(row.fixmedins_code, row.msgid): Seen(
            journal_record(row, (row.fixmedins_code, row.msgid) in reversed_)
        )
        for row in rows
    }


def merged(
    treatment: dict[str, Seen], national: dict[str, Seen], insured: dict[str, Seen]
) -> dict[str, Sides]:
    """The three sides of every settlement (by key) any of them recorded."""
    return {
        key: Sides(treatment.get(key), national.get(key), insured.get(key))
        for key in treatment.keys() | national.keys() | insured.keys()
    }
