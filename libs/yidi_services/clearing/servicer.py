"""ClearingService over gRPC: the national journal, advances, alerts, clearing, statements and the ledger.

Everything the service keeps lives at the national node: there each request becomes a
command (:mod:`~yidi_services.clearing.commands`), answered by
:class:`~yidi_services.clearing.handlers.Clearing`, whose result becomes the answer
(:mod:`~yidi_services.clearing.calls`). Any other node relays a call one hop up to its
parent (:mod:`yidi_runtime.relay`, toward :attr:`~yidi_runtime.relay.Up.NATIONAL`), and the
peer's answer or refusal comes back as it was. The node asks as itself (its own vouch), so
the national node checks the rules against the relaying node and its subtree — except for a
province's statements, which its operators list, read, confirm and dispute through their
own node, and its advance proposals, which they read there: those calls travel with the operator's vouch, and the national node checks the
operator. The reconciliation methods come from their mixin.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import clearing_service_pb2_grpc as api_grpc
from yidi_core.codes import NATIONAL_REGION
from yidi_runtime.integrity import NodeIntegrity
from yidi_runtime.relay import Relay, Vouching
from yidi_runtime.service import ServiceContext
from yidi_runtime.wire import Clock, wall_clock
from yidi_services.clearing import commands, convert, ledger, messages
from yidi_services.clearing.calls import AtNational
from yidi_services.clearing.handlers import Clearing
from yidi_services.clearing.reconciliation.servicer import ReconciliationMethods


class ClearingServicer(ReconciliationMethods, api_grpc.ClearingServiceServicer):
    """Money between provinces at the national node (先预付、后清算).

    Each method names the request's command, the handler and the answer made of its result.
    """

    def __init__(self, context: ServiceContext, clock: Clock = wall_clock) -> None:
        national = context.settings.region == NATIONAL_REGION
        self._clearing = Clearing(context, clock) if national else None
        self._integrity = NodeIntegrity(context.settings, context.metrics_registry) if national else None
        self.relay = Relay(context.router, api_grpc.ClearingServiceStub, vouching=Vouching.NODE)
        self._calls = AtNational(self.relay, self._here)
        self._province_calls = AtNational(
            Relay(context.router, api_grpc.ClearingServiceStub, vouching=Vouching.CALLER), self._here
        )

    def _here(self) -> Clearing:
        assert self._clearing is not None, "the national node builds its clearing handlers"
        return self._clearing

    def _journal_batch(self, request: api.AppendJournalEntriesRequest) -> commands.AppendJournalEntries:
        assert self._integrity is not None, "the national node checks the seals"
        return convert.append_journal_entries(request, self._integrity)

    def AppendJournalEntries(
        self, request: api.AppendJournalEntriesRequest, context: grpc.ServicerContext
    ) -> api.AppendJournalEntriesResponse:
        return self._calls.write(
            "AppendJournalEntries",
            request,
            context,
            self._journal_batch,
            Clearing.append_journal_entries,
            api.AppendJournalEntriesResponse,
            lambda appended: api.AppendJournalEntriesResponse(
                appended_count=appended.appended_count, duplicate_count=appended.duplicate_count
            ),
        )

    def ListJournalEntries(
        self, request: api.ListJournalEntriesRequest, context: grpc.ServicerContext
    ) -> api.ListJournalEntriesResponse:
        return self._calls.read(
            "ListJournalEntries",
            request,
            context,
            convert.list_journal_entries,
            Clearing.list_journal_entries,
            lambda page: api.ListJournalEntriesResponse(
                entries=[convert.entry_message(recorded) for recorded in page.items],
                next_page_token=page.next_page_token,
            ),
        )

    def SetAdvance(
        self, request: api.SetAdvanceRequest, context: grpc.ServicerContext
    ) -> api.SetAdvanceResponse:
        return self._calls.write(
            "SetAdvance",
            request,
            context,
            messages.set_advance,
            Clearing.set_advance,
            api.SetAdvanceResponse,
            lambda status: api.SetAdvanceResponse(status=messages.advance_status(status)),
        )

    def TopUpAdvance(
        self, request: api.TopUpAdvanceRequest, context: grpc.ServicerContext
    ) -> api.TopUpAdvanceResponse:
        return self._calls.write(
            "TopUpAdvance",
            request,
            context,
            messages.top_up_advance,
            Clearing.top_up_advance,
            api.TopUpAdvanceResponse,
            lambda status: api.TopUpAdvanceResponse(status=messages.advance_status(status)),
        )

    def GetAdvanceStatus(
        self, request: api.GetAdvanceStatusRequest, context: grpc.ServicerContext
    ) -> api.GetAdvanceStatusResponse:
        return self._calls.read(
            "GetAdvanceStatus",
            request,
            context,
            messages.get_advance_status,
            Clearing.advance_status,
            lambda status: api.GetAdvanceStatusResponse(status=messages.advance_status(status)),
        )

    def ProposeAdvances(
        self, request: api.ProposeAdvancesRequest, context: grpc.ServicerContext
    ) -> api.ProposeAdvancesResponse:
        return self._calls.write(
            "ProposeAdvances",
            request,
            context,
            messages.propose_advances,
            Clearing.propose_advances,
            api.ProposeAdvancesResponse,
            lambda proposed: api.ProposeAdvancesResponse(
                proposals=[messages.advance_proposal(proposal) for proposal in proposed]
            ),
        )

    def GetAdvanceProposal(
        self, request: api.GetAdvanceProposalRequest, context: grpc.ServicerContext
    ) -> api.GetAdvanceProposalResponse:
        return self._province_calls.read(
            "GetAdvanceProposal",
            request,
            context,
            messages.get_advance_proposal,
            Clearing.advance_proposal,
            lambda found: api.GetAdvanceProposalResponse(proposal=messages.advance_proposal(found)),
        )

    def ListAdvanceProposals(
        self, request: api.ListAdvanceProposalsRequest, context: grpc.ServicerContext
    ) -> api.ListAdvanceProposalsResponse:
        return self._province_calls.read(
            "ListAdvanceProposals",
            request,
            context,
            messages.list_advance_proposals,
            Clearing.advance_proposals,
            lambda page: api.ListAdvanceProposalsResponse(
                proposals=[messages.advance_proposal(proposal) for proposal in page.items],
                next_page_token=page.next_page_token,
            ),
        )

    def ApplyAdvanceProposal(
        self, request: api.ApplyAdvanceProposalRequest, context: grpc.ServicerContext
    ) -> api.ApplyAdvanceProposalResponse:
        return self._calls.write(
            "ApplyAdvanceProposal",
            request,
            context,
            messages.apply_advance_proposal,
            Clearing.apply_advance_proposal,
            api.ApplyAdvanceProposalResponse,
            lambda applied: api.ApplyAdvanceProposalResponse(
                proposal=messages.advance_proposal(applied.proposal),
                status=messages.advance_status(applied.status),
            ),
        )

    def ListAlerts(
        self, request: api.ListAlertsRequest, context: grpc.ServicerContext
    ) -> api.ListAlertsResponse:
        return self._calls.read(
            "ListAlerts",
            request,
            context,
            messages.list_alerts,
            Clearing.list_alerts,
            lambda page: api.ListAlertsResponse(
                alerts=[messages.alert(found) for found in page.items], next_page_token=page.next_page_token
            ),
        )

    def RunClearing(
        self, request: api.RunClearingRequest, context: grpc.ServicerContext
    ) -> api.RunClearingResponse:
        return self._calls.write(
            "RunClearing",
            request,
            context,
            messages.run_clearing,
            Clearing.run_clearing,
            api.RunClearingResponse,
            lambda run: api.RunClearingResponse(run=messages.run(run)),
        )

    def GetClearingRun(
        self, request: api.GetClearingRunRequest, context: grpc.ServicerContext
    ) -> api.GetClearingRunResponse:
        return self._calls.read(
            "GetClearingRun",
            request,
            context,
            messages.get_clearing_run,
            Clearing.clearing_run,
            lambda run: api.GetClearingRunResponse(run=messages.run(run)),
        )

    def ListStatements(
        self, request: api.ListStatementsRequest, context: grpc.ServicerContext
    ) -> api.ListStatementsResponse:
        return self._province_calls.read(
            "ListStatements",
            request,
            context,
            messages.list_statements,
            Clearing.list_statements,
            lambda page: api.ListStatementsResponse(
                statements=[messages.statement(found) for found in page.items],
                next_page_token=page.next_page_token,
            ),
        )

    def GetStatement(
        self, request: api.GetStatementRequest, context: grpc.ServicerContext
    ) -> api.GetStatementResponse:
        return self._province_calls.read(
            "GetStatement",
            request,
            context,
            messages.get_statement,
            Clearing.statement,
            lambda found: api.GetStatementResponse(statement=messages.statement(found)),
        )

    def ConfirmStatement(
        self, request: api.ConfirmStatementRequest, context: grpc.ServicerContext
    ) -> api.ConfirmStatementResponse:
        return self._province_calls.write(
            "ConfirmStatement",
            request,
            context,
            messages.confirm_statement,
            Clearing.confirm_statement,
            api.ConfirmStatementResponse,
            lambda found: api.ConfirmStatementResponse(statement=messages.statement(found)),
        )

    def DisputeStatement(
        self, request: api.DisputeStatementRequest, context: grpc.ServicerContext
    ) -> api.DisputeStatementResponse:
        return self._province_calls.write(
            "DisputeStatement",
            request,
            context,
            messages.dispute_statement,
            Clearing.dispute_statement,
            api.DisputeStatementResponse,
            lambda found: api.DisputeStatementResponse(statement=messages.statement(found)),
        )

    def RecordTransfer(
        self, request: api.RecordTransferRequest, context: grpc.ServicerContext
    ) -> api.RecordTransferResponse:
        return self._calls.write(
            "RecordTransfer",
            request,
            context,
            messages.record_transfer,
            Clearing.record_transfer,
            api.RecordTransferResponse,
            lambda found: api.RecordTransferResponse(statement=messages.statement(found)),
        )

    def RecordClawback(
        self, request: api.RecordClawbackRequest, context: grpc.ServicerContext
    ) -> api.RecordClawbackResponse:
        return self._calls.write(
            "RecordClawback",
            request,
            context,
            messages.record_clawback,
            Clearing.record_clawback,
            api.RecordClawbackResponse,
            lambda recorded: api.RecordClawbackResponse(
                clawback_id=recorded.clawback_id, adjustment_period=recorded.adjustment_period
            ),
        )

    def GetClearingCalendar(
        self, request: api.GetClearingCalendarRequest, context: grpc.ServicerContext
    ) -> api.GetClearingCalendarResponse:
        return self._calls.read(
            "GetClearingCalendar",
            request,
            context,
            messages.get_clearing_calendar,
            Clearing.clearing_calendar,
            lambda calendar: api.GetClearingCalendarResponse(calendar=messages.calendar(calendar)),
        )

    def GetLedger(
        self, request: api.GetLedgerRequest, context: grpc.ServicerContext
    ) -> api.GetLedgerResponse:
        return self._calls.read(
            "GetLedger", request, context, messages.get_ledger, Clearing.ledger, messages.ledger_response
        )

    def ListLedgerEntries(
        self, request: api.ListLedgerEntriesRequest, context: grpc.ServicerContext
    ) -> api.ListLedgerEntriesResponse:
        return self._calls.read(
            "ListLedgerEntries",
            request,
            context,
            messages.list_ledger_entries,
            Clearing.ledger_entries,
            lambda page: api.ListLedgerEntriesResponse(
                entries=[messages.ledger_entry(entry) for entry in page.items],
                next_page_token=page.next_page_token,
            ),
        )


def register(server: grpc.Server, context: ServiceContext, clock: Clock = wall_clock) -> Sequence[str]:
    """Add the clearing service to a node's server; returns the gRPC service names it serves."""
    servicer = ClearingServicer(context, clock)
    servicer.init_reconciliation(context, clock)
    context.report_health(lambda: ledger.balanced(context.database))
    api_grpc.add_ClearingServiceServicer_to_server(servicer, server)
    name = api.DESCRIPTOR.services_by_name["ClearingService"].full_name
    context.needs_parent(name)  # journals and statements go up to the national node
    return [name]
