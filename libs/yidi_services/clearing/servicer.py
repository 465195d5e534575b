"""ClearingService over gRPC: the national journal, advances, alerts, clearing, statements and the ledger.

Everything the service keeps lives at the national node: there the calls are answered by
:class:`~yidi_services.clearing.handlers.Clearing` (and the journal's two methods, kept
here); any other node relays a call one hop up to its parent (:mod:`yidi_runtime.relay`,
toward :attr:`~yidi_runtime.relay.Up.NATIONAL`), and the peer's answer or refusal comes
back as it was. The node asks as itself (its own vouch), so the national node checks the
rules against the relaying node and its subtree. The reconciliation methods come from their mixin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc
from google.protobuf.message import Message

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import clearing_service_pb2_grpc as api_grpc
from yidi_core.codes import NATIONAL_REGION
from yidi_runtime.relay import Relay, Up, Vouching
from yidi_runtime.service import ServiceContext
from yidi_runtime.wire import Clock, wall_clock
from yidi_services.clearing import ledger
from yidi_services.clearing.handlers import Clearing
from yidi_services.clearing.reconciliation.servicer import ReconciliationMethods

Handler = Callable[[Clearing, Any], Message]


class ClearingServicer(ReconciliationMethods, api_grpc.ClearingServiceServicer):
    """Money between provinces at the national node (先预付、后清算)."""

    def __init__(self, context: ServiceContext, clock: Clock = wall_clock) -> None:
        self._clearing = Clearing(context, clock) if context.settings.region == NATIONAL_REGION else None
        self.relay = Relay(context.router, api_grpc.ClearingServiceStub, vouching=Vouching.NODE)

    def _national(
        self, method: str, request: Message, handler: Handler, context: grpc.ServicerContext
    ) -> Any:
        """``handler`` at the national node; elsewhere the parent's answer to the same call."""
        return self.relay.answer(
            method, request, context, Up.NATIONAL, lambda: self._handle(handler, request)
        )

    def _handle(self, handler: Handler, request: Message) -> Message:
        assert self._clearing is not None, "the national node builds its clearing handlers"
        return handler(self._clearing, request)

    def AppendJournalEntries(
        self, request: api.AppendJournalEntriesRequest, context: grpc.ServicerContext
    ) -> api.AppendJournalEntriesResponse:
        return self._national("AppendJournalEntries", request, Clearing.append_journal_entries, context)

    def ListJournalEntries(
        self, request: api.ListJournalEntriesRequest, context: grpc.ServicerContext
    ) -> api.ListJournalEntriesResponse:
        return self._national("ListJournalEntries", request, Clearing.list_journal_entries, context)

    def SetAdvance(
        self, request: api.SetAdvanceRequest, context: grpc.ServicerContext
    ) -> api.SetAdvanceResponse:
        return self._national("SetAdvance", request, Clearing.set_advance, context)

    def TopUpAdvance(
        self, request: api.TopUpAdvanceRequest, context: grpc.ServicerContext
    ) -> api.TopUpAdvanceResponse:
        return self._national("TopUpAdvance", request, Clearing.top_up_advance, context)

    def GetAdvanceStatus(
        self, request: api.GetAdvanceStatusRequest, context: grpc.ServicerContext
    ) -> api.GetAdvanceStatusResponse:
        return self._national("GetAdvanceStatus", request, Clearing.advance_status, context)

    def ListAlerts(
        self, request: api.ListAlertsRequest, context: grpc.ServicerContext
    ) -> api.ListAlertsResponse:
        return self._national("ListAlerts", request, Clearing.list_alerts, context)

    def RunClearing(
        self, request: api.RunClearingRequest, context: grpc.ServicerContext
    ) -> api.RunClearingResponse:
        return self._national("RunClearing", request, Clearing.run_clearing, context)

    def GetClearingRun(
        self, request: api.GetClearingRunRequest, context: grpc.ServicerContext
    ) -> api.GetClearingRunResponse:
        return self._national("GetClearingRun", request, Clearing.clearing_run, context)

    def ListStatements(
        self, request: api.ListStatementsRequest, context: grpc.ServicerContext
    ) -> api.ListStatementsResponse:
        return self._national("ListStatements", request, Clearing.list_statements, context)

    def GetStatement(
        self, request: api.GetStatementRequest, context: grpc.ServicerContext
    ) -> api.GetStatementResponse:
        return self._national("GetStatement", request, Clearing.statement, context)

    def ConfirmStatement(
        self, request: api.ConfirmStatementRequest, context: grpc.ServicerContext
    ) -> api.ConfirmStatementResponse:
        return self._national("ConfirmStatement", request, Clearing.confirm_statement, context)

    def RecordTransfer(
        self, request: api.RecordTransferRequest, context: grpc.ServicerContext
    ) -> api.RecordTransferResponse:
        return self._national("RecordTransfer", request, Clearing.record_transfer, context)

    def RecordClawback(
        self, request: api.RecordClawbackRequest, context: grpc.ServicerContext
    ) -> api.RecordClawbackResponse:
        return self._national("RecordClawback", request, Clearing.record_clawback, context)

    def GetClearingCalendar(
        self, request: api.GetClearingCalendarRequest, context: grpc.ServicerContext
    ) -> api.GetClearingCalendarResponse:
        return self._national("GetClearingCalendar", request, Clearing.clearing_calendar, context)

    def GetLedger(
        self, request: api.GetLedgerRequest, context: grpc.ServicerContext
    ) -> api.GetLedgerResponse:
        return self._national("GetLedger", request, Clearing.ledger, context)

    def ListLedgerEntries(
        self, request: api.ListLedgerEntriesRequest, context: grpc.ServicerContext
    ) -> api.ListLedgerEntriesResponse:
        return self._national("ListLedgerEntries", request, Clearing.ledger_entries, context)


def register(server: grpc.Server, context: ServiceContext, clock: Clock = wall_clock) -> Sequence[str]:
    """Add the clearing service to a node's server; returns the gRPC service names it serves."""
    servicer = ClearingServicer(context, clock)
    servicer.init_reconciliation(context, clock)
    context.report_health(lambda: ledger.balanced(context.database))
    api_grpc.add_ClearingServiceServicer_to_server(servicer, server)
    return [api.DESCRIPTOR.services_by_name["ClearingService"].full_name]
