"""ClearingService as `yidi clearing`, `yidi reconcile` and the demo call it: paged lists and polled jobs.

Clearing and reconciliation are long-running jobs (AIP-151): the start call answers a run,
which the client polls until it succeeds or fails, reporting each poll to a callback so a
command can draw its progress. Lists are read page after page to the end. Kept apart from
the command definitions so `yidi` starts without loading gRPC for other commands.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.message import Message

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import clearing_service_pb2_grpc as api_grpc
from yidi.clearing.v1 import ledger_pb2, reconciliation_pb2, statement_pb2
from yidi_core.codes import NATIONAL_REGION
from yidi_runtime.peers import message_id
from yidi_runtime.wire import date_message

DONE = (statement_pb2.JOB_STATE_SUCCEEDED, statement_pb2.JOB_STATE_FAILED)
_CALL_DEADLINE_S = 60.0
_FIRST_POLL_S = 0.05
_LONGEST_POLL_S = 1.0
_PAGE = 1000


class Job(Protocol):
    """What a clearing run and a reconciliation run share: an id and a state to poll."""

    run_id: str
    state: int


RunT = TypeVar("RunT", bound=Job)


class StillRunning(TimeoutError):
    """A job did not finish within the wait; it goes on at the node and can be polled later."""


def wait_for(
    poll: Callable[[], RunT], on_poll: Callable[[RunT], None] | None = None, timeout_s: float = 3600.0
) -> RunT:
    """Poll a job until it succeeds or fails (backing off to one poll a second); its last state.

    Raises :class:`StillRunning` when ``timeout_s`` passes first.
    """
    deadline = time.monotonic() + timeout_s
    pause = _FIRST_POLL_S
    while True:
        run = poll()
        if on_poll is not None:
            on_poll(run)
        if run.state in DONE:
            return run
        if time.monotonic() >= deadline:
            raise StillRunning(f"{run.run_id} is still running after {timeout_s:.0f} s")
        time.sleep(pause)
        pause = min(pause * 2, _LONGEST_POLL_S)


class ClearingClient:
    """The clearing calls of one node (the national node, or any node passing them up to it)."""

    def __init__(self, channel: grpc.Channel, deadline_s: float = _CALL_DEADLINE_S) -> None:
        self.stub = api_grpc.ClearingServiceStub(channel)
        self._deadline_s = deadline_s

    def _pages(self, call: Callable[..., Any], request: Message, field: str) -> list[Any]:
        """Every item of a paged list (``request`` is changed to turn the pages)."""
        found: list[Any] = []
        request.page_size = _PAGE  # type: ignore[attr-defined]
        while True:
            page = call(request, timeout=self._deadline_s)
            found += getattr(page, field)
            if not page.next_page_token:
                return found
            request.page_token = page.next_page_token  # type: ignore[attr-defined]

    # -- monthly clearing ------------------------------------------------------------------------

    def start_clearing(self, period: str, request_id: str | None = None) -> statement_pb2.ClearingRun:
        """RunClearing: the period's run (an earlier run of the same period answers again)."""
        request = api.RunClearingRequest(request_id=request_id or message_id(NATIONAL_REGION), period=period)
        return self.stub.RunClearing(request, timeout=self._deadline_s).run

    def clearing_run(self, run_id: str) -> statement_pb2.ClearingRun:
        """GetClearingRun."""
        request = api.GetClearingRunRequest(run_id=run_id)
        return self.stub.GetClearingRun(request, timeout=self._deadline_s).run

    def clear(
        self,
        period: str,
        request_id: str | None = None,
        on_poll: Callable[[statement_pb2.ClearingRun], None] | None = None,
        timeout_s: float = 3600.0,
    ) -> statement_pb2.ClearingRun:
        """Start (or rejoin) the period's clearing and poll it to its end."""
        started = self.start_clearing(period, request_id)
        return wait_for(lambda: self.clearing_run(started.run_id), on_poll, timeout_s)

    def statements(self, period: str = "", admdvs: str = "") -> list[statement_pb2.Statement]:
        """Every statement of a period (and province), as ListStatements orders them."""
        request = api.ListStatementsRequest(period=period, admdvs=admdvs)
        return self._pages(self.stub.ListStatements, request, "statements")

    def confirm(
        self, statement_id: str, confirmed_by: str = "", request_id: str | None = None
    ) -> statement_pb2.Statement:
        """ConfirmStatement: the statement after it."""
        request = api.ConfirmStatementRequest(
            request_id=request_id or message_id(NATIONAL_REGION),
            statement_id=statement_id,
            confirmed_by=confirmed_by,
        )
        return self.stub.ConfirmStatement(request, timeout=self._deadline_s).statement

    def dispute(
        self, statement_id: str, reason: str, request_id: str | None = None
    ) -> statement_pb2.Statement:
        """DisputeStatement: the statement after it."""
        request = api.DisputeStatementRequest(
            request_id=request_id or message_id(NATIONAL_REGION), statement_id=statement_id, reason=reason
        )
        return self.stub.DisputeStatement(request, timeout=self._deadline_s).statement

    def ledger(self, admdvs: str = "") -> api.GetLedgerResponse:
        """GetLedger: balances and the zero-sum check."""
        return self.stub.GetLedger(api.GetLedgerRequest(admdvs=admdvs), timeout=self._deadline_s)

    def set_advance(
        self, admdvs: str, year: int, amount_fen: int, request_id: str | None = None
    ) -> api.AdvanceStatus:
        """SetAdvance (预付金) for a province and year; the status after it."""
        request = api.SetAdvanceRequest(
            request_id=request_id or message_id(NATIONAL_REGION),
            admdvs=admdvs,
            year=year,
            amount_fen=amount_fen,
        )
        return self.stub.SetAdvance(request, timeout=self._deadline_s).status

    def advance_status(self, admdvs: str, year: int) -> api.AdvanceStatus:
        """GetAdvanceStatus."""
        request = api.GetAdvanceStatusRequest(admdvs=admdvs, year=year)
        return self.stub.GetAdvanceStatus(request, timeout=self._deadline_s).status

    def propose_advances(self, year: int, request_id: str | None = None) -> list[api.AdvanceProposal]:
        """ProposeAdvances: every province's proposal for the year, with its basis."""
        request = api.ProposeAdvancesRequest(request_id=request_id or message_id(NATIONAL_REGION), year=year)
        return list(self.stub.ProposeAdvances(request, timeout=self._deadline_s).proposals)

    def advance_proposals(self, year: int, admdvs: str = "") -> list[api.AdvanceProposal]:
        """ListAdvanceProposals (a province's operator: its own)."""
        request = api.ListAdvanceProposalsRequest(year=year, admdvs=admdvs)
        return self._pages(self.stub.ListAdvanceProposals, request, "proposals")

    def apply_advance_proposal(
        self,
        year: int,
        admdvs: str,
        amount_fen: int = 0,
        override_reason: str = "",
        request_id: str | None = None,
    ) -> api.ApplyAdvanceProposalResponse:
        """ApplyAdvanceProposal: as proposed, or ``amount_fen`` with its reason."""
        request = api.ApplyAdvanceProposalRequest(
            request_id=request_id or message_id(NATIONAL_REGION),
            year=year,
            admdvs=admdvs,
            amount_fen=amount_fen,
            override_reason=override_reason,
        )
        return self.stub.ApplyAdvanceProposal(request, timeout=self._deadline_s)

    def alerts(self, admdvs: str = "", *, active_only: bool = False) -> list[ledger_pb2.Alert]:
        """Every alert, newest first."""
        request = api.ListAlertsRequest(admdvs=admdvs, active_only=active_only)
        return self._pages(self.stub.ListAlerts, request, "alerts")

    # -- reconciliation --------------------------------------------------------------------------

    def start_reconciliation(
        self, first: date, last: date, admdvs: str = "", request_id: str | None = None
    ) -> reconciliation_pb2.ReconciliationRun:
        """Reconcile the China calendar days ``first`` to ``last``: the new run."""
        request = api.ReconcileRequest(
            request_id=request_id or message_id(NATIONAL_REGION),
            start_date=date_message(first),
            end_date=date_message(last),
            admdvs=admdvs,
        )
        return self.stub.Reconcile(request, timeout=self._deadline_s).run

    def reconciliation_run(self, run_id: str) -> reconciliation_pb2.ReconciliationRun:
        """GetReconciliationRun."""
        request = api.GetReconciliationRunRequest(run_id=run_id)
        return self.stub.GetReconciliationRun(request, timeout=self._deadline_s).run

    def reconcile(
        self,
        first: date,
        last: date,
        admdvs: str = "",
        on_poll: Callable[[reconciliation_pb2.ReconciliationRun], None] | None = None,
        timeout_s: float = 3600.0,
    ) -> reconciliation_pb2.ReconciliationRun:
        """Start a reconciliation of the days and poll it to its end."""
        started = self.start_reconciliation(first, last, admdvs)
        return wait_for(lambda: self.reconciliation_run(started.run_id), on_poll, timeout_s)

    def report_lines(self, run_id: str) -> list[reconciliation_pb2.ReconciliationLine]:
        """A run's report: per day, province pair and insurance type."""
        request = api.ListReconciliationLinesRequest(run_id=run_id)
        return self._pages(self.stub.ListReconciliationLines, request, "lines")

    def discrepancies(self, run_id: str, *, open_only: bool = False) -> list[reconciliation_pb2.Discrepancy]:
        """The discrepancies a run found (only those still open, when asked)."""
        request = api.ListDiscrepanciesRequest(run_id=run_id, open_only=open_only)
        return self._pages(self.stub.ListDiscrepancies, request, "discrepancies")

    def repair(self, run_id: str, request_id: str | None = None) -> api.RepairDiscrepanciesResponse:
        """RepairDiscrepancies: every open discrepancy of the run, one rule per kind."""
        request = api.RepairDiscrepanciesRequest(
            request_id=request_id or message_id(NATIONAL_REGION), run_id=run_id
        )
        return self.stub.RepairDiscrepancies(request, timeout=max(self._deadline_s, 120.0))
