"""Shared by the ledger, advance, clearing-run and stateful tests: a national node on a settable clock, entries.

Journal entries reach the node through AppendJournalEntries, as a treatment node's outbox
delivers them; every other call goes through the generated ClearingService stub.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import clearing_service_pb2_grpc as api_grpc
from yidi.clearing.v1 import journal_pb2, statement_pb2
from yidi_harness.polling import eventually
from yidi_runtime.server import Node, create_server
from yidi_runtime.service import ServiceGroup
from yidi_services.clearing import servicer as clearing_servicer
from yidi_services.node import GROUPS
from yidi_testing import error_details, settings_for

SETTLEMENT = journal_pb2.JOURNAL_ENTRY_KIND_SETTLEMENT
REVERSAL = journal_pb2.JOURNAL_ENTRY_KIND_REVERSAL
DONE = (statement_pb2.JOB_STATE_SUCCEEDED, statement_pb2.JOB_STATE_FAILED)
_SEQUENCE = itertools.count(1)


def beijing(year: int, month: int, day: int, hour: int = 10) -> datetime:
    """A moment given in China time, as UTC."""
    return datetime(year, month, day, hour, tzinfo=UTC) - timedelta(hours=8)


class Clock:
    """A clock the test sets; the node's handlers and workers read it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def next_id(prefix: str = "") -> str:
    return f"{prefix}{next(_SEQUENCE):08d}"


def settlement(
    insured: str, treatment: str, fund: int, at: datetime, *, cash: int = 1000, acct: int = 0
) -> journal_pb2.JournalEntry:
    """A settlement of a person insured in ``insured`` treated in ``treatment`` (regions of any level)."""
    return journal_pb2.JournalEntry(
        msgid=next_id(f"H{treatment[:4]}0500001"),
        setl_id=next_id("SETL"),
        kind=SETTLEMENT,
        mdtrt_id=next_id("MDTR"),
        psn_no=next_id("PSN"),
        fixmedins_code="H11010500001",
        insuplc_admdvs=insured,
        mdtrtarea_admvs=treatment,
        insutype="310",
        clr_type="21",
        medfee_sumamt_fen=fund + acct + cash,
        fund_pay_sumamt_fen=fund,
        acct_pay_fen=acct,
        psn_cash_pay_fen=cash,
        setl_time=stamp(at),
    )


def reversal_of(original: journal_pb2.JournalEntry, at: datetime) -> journal_pb2.JournalEntry:
    """The reversal of ``original`` made at ``at``."""
    return journal_pb2.JournalEntry(
        msgid=next_id("R"),
        setl_id=next_id("SETL"),
        kind=REVERSAL,
        reverses_msgid=original.msgid,
        fixmedins_code=original.fixmedins_code,
        insuplc_admdvs=original.insuplc_admdvs,
        mdtrtarea_admvs=original.mdtrtarea_admvs,
        medfee_sumamt_fen=-original.medfee_sumamt_fen,
        fund_pay_sumamt_fen=-original.fund_pay_sumamt_fen,
        acct_pay_fen=-original.acct_pay_fen,
        psn_cash_pay_fen=-original.psn_cash_pay_fen,
        setl_time=stamp(at),
    )


@dataclass
class National:
    """A national node running the clearing service, its stub and its clock."""

    node: Node
    stub: api_grpc.ClearingServiceStub
    clock: Clock

    def deliver(self, *entries: journal_pb2.JournalEntry) -> api.AppendJournalEntriesResponse:
        """Deliver entries as their treatment province's node would (one batch per province)."""
        answer = api.AppendJournalEntriesResponse()
        for source in sorted({entry.mdtrtarea_admvs[:2] + "0000" for entry in entries}):
            batch = [entry for entry in entries if entry.mdtrtarea_admvs.startswith(source[:2])]
            got = self.stub.AppendJournalEntries(
                api.AppendJournalEntriesRequest(request_id=next_id("J"), source_admdvs=source, entries=batch),
                timeout=30,
            )
            answer.appended_count += got.appended_count
            answer.duplicate_count += got.duplicate_count
        return answer

    def clear(self, period: str, request_id: str | None = None) -> statement_pb2.ClearingRun:
        """Run the clearing of ``period`` and wait for it to finish."""
        run = self.stub.RunClearing(
            api.RunClearingRequest(request_id=request_id or next_id("C"), period=period), timeout=30
        ).run
        return self.finished(run.run_id)

    def finished(self, run_id: str, timeout_s: float = 120.0) -> statement_pb2.ClearingRun:
        """Poll a run until it is done."""

        def done() -> statement_pb2.ClearingRun | None:
            run = self.stub.GetClearingRun(api.GetClearingRunRequest(run_id=run_id), timeout=30).run
            return run if run.state in DONE else None

        return eventually(done, within_s=timeout_s, interval_s=0.02, what=f"clearing run {run_id} is done")

    def statements(self, **filters: Any) -> list[statement_pb2.Statement]:
        """Every statement matching the filters, page after page."""
        return self._all(self.stub.ListStatements, api.ListStatementsRequest, "statements", filters)

    def journal(self, **filters: Any) -> list[journal_pb2.JournalEntry]:
        """Every journal entry matching the filters."""
        return self._all(self.stub.ListJournalEntries, api.ListJournalEntriesRequest, "entries", filters)

    def alerts(self, **filters: Any) -> list[Any]:
        """Every alert matching the filters, newest first."""
        return self._all(self.stub.ListAlerts, api.ListAlertsRequest, "alerts", filters)

    def ledger_entries(self, **filters: Any) -> list[Any]:
        """Every ledger entry matching the filters, in posting order."""
        return self._all(self.stub.ListLedgerEntries, api.ListLedgerEntriesRequest, "entries", filters)

    @staticmethod
    def _all(
        call: Callable[..., Any], request_type: type[Message], field: str, filters: dict[str, Any]
    ) -> list[Any]:
        found: list[Any] = []
        token = ""
        while True:
            page = call(request_type(page_size=1000, page_token=token, **filters), timeout=30)
            found += getattr(page, field)
            token = page.next_page_token
            if not token:
                return found

    def balances(self) -> dict[tuple[str, int], int]:
        """Ledger balances by (region, account kind); asserts the ledger sums to zero."""
        ledger = self.stub.GetLedger(api.GetLedgerRequest(), timeout=30)
        assert ledger.balanced and ledger.total_fen == 0
        assert sum(account.balance_fen for account in ledger.accounts) == 0
        return {(account.admdvs, account.kind): account.balance_fen for account in ledger.accounts}


@contextmanager
def national_node(
    tmp_path: Path, database_url: str | None, clock: Clock, **overrides: Any
) -> Iterator[National]:
    """Start a national node serving the clearing service on ``clock``; stop it afterwards."""
    group = GROUPS["clearing"]
    started = create_server(
        settings_for(
            tmp_path, database_url, role="national", region="000000", auto_migrate=True, **overrides
        ),
        [
            ServiceGroup(
                group.name,
                group.metadata,
                group.versions,
                lambda server, context: clearing_servicer.register(server, context, clock=clock),
            )
        ],
    )
    try:
        with grpc.insecure_channel(started.address) as channel:
            yield National(started, api_grpc.ClearingServiceStub(channel), clock)
    finally:
        started.stop(0)


def refusal(call: Callable[..., Any], request: Message) -> tuple[grpc.StatusCode, str, list[str]]:
    """The status code, reason and violated fields of a refused call."""
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=30)
    details = error_details(caught.value)
    fields = [v.field for v in details["BadRequest"].field_violations] if "BadRequest" in details else []
    return caught.value.code(), details["ErrorInfo"].reason, fields
