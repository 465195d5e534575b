"""ClearingService's reconciliation methods: a mixin the clearing servicer inherits.

Reconciliation is kept at the national node, like the journal it reads: any other node
relays these calls one hop up, as the servicer relays the rest (:mod:`yidi_runtime.relay`).
At the national node each request becomes a command (:mod:`~.commands`), answered by
:class:`~.handlers.Reconciliation`, whose result becomes the answer; the servicer builds the
handlers once in ``register`` (:meth:`ReconciliationMethods.init_reconciliation`).
"""

from __future__ import annotations

import grpc

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi_runtime.relay import Relay
from yidi_runtime.service import ServiceContext
from yidi_runtime.wire import Clock
from yidi_services.clearing.calls import AtNational
from yidi_services.clearing.reconciliation import convert
from yidi_services.clearing.reconciliation.handlers import Reconciliation


class ReconciliationMethods:
    """Reconcile, GetReconciliationRun, ListDiscrepancies, ListReconciliationLines, RepairDiscrepancies,
    CheckInstitutionTotals/Details."""

    _reconciliation: AtNational[Reconciliation]
    relay: Relay
    """The clearing servicer's relay toward the national node."""

    def init_reconciliation(self, context: ServiceContext, clock: Clock) -> None:
        """Build what the methods need (and register the run worker with the node); call once in ``register``."""
        handlers = Reconciliation(context, clock)
        self._reconciliation = AtNational(self.relay, lambda: handlers)

    def Reconcile(
        self, request: api.ReconcileRequest, context: grpc.ServicerContext
    ) -> api.ReconcileResponse:
        return self._reconciliation.write(
            "Reconcile",
            request,
            context,
            convert.reconcile,
            Reconciliation.reconcile,
            api.ReconcileResponse,
            lambda row: api.ReconcileResponse(run=convert.run_message(row)),
        )

    def GetReconciliationRun(
        self, request: api.GetReconciliationRunRequest, context: grpc.ServicerContext
    ) -> api.GetReconciliationRunResponse:
        return self._reconciliation.read(
            "GetReconciliationRun",
            request,
            context,
            convert.get_reconciliation_run,
            Reconciliation.run,
            lambda row: api.GetReconciliationRunResponse(run=convert.run_message(row)),
        )

    def ListDiscrepancies(
        self, request: api.ListDiscrepanciesRequest, context: grpc.ServicerContext
    ) -> api.ListDiscrepanciesResponse:
        return self._reconciliation.read(
            "ListDiscrepancies",
            request,
            context,
            convert.list_discrepancies,
            Reconciliation.discrepancies,
            lambda page: api.ListDiscrepanciesResponse(
                discrepancies=[convert.discrepancy_message(row) for row in page.items],
                next_page_token=page.next_page_token,
            ),
        )

    def ListReconciliationLines(
        self, request: api.ListReconciliationLinesRequest, context: grpc.ServicerContext
    ) -> api.ListReconciliationLinesResponse:
        return self._reconciliation.read(
            "ListReconciliationLines",
            request,
            context,
            convert.list_reconciliation_lines,
            Reconciliation.lines,
            lambda page: api.ListReconciliationLinesResponse(
                lines=[convert.line_message(row) for row in page.items], next_page_token=page.next_page_token
            ),
        )

    def RepairDiscrepancies(
        self, request: api.RepairDiscrepanciesRequest, context: grpc.ServicerContext
    ) -> api.RepairDiscrepanciesResponse:
        return self._reconciliation.write(
            "RepairDiscrepancies",
            request,
            context,
            convert.repair_discrepancies,
            Reconciliation.repair,
            api.RepairDiscrepanciesResponse,
            lambda repaired: api.RepairDiscrepanciesResponse(
                repaired_count=repaired.repaired_count,
                failed_count=repaired.failed_count,
                discrepancies=[convert.discrepancy_message(row) for row in repaired.discrepancies],
            ),
        )

    def CheckInstitutionTotals(
        self, request: api.CheckInstitutionTotalsRequest, context: grpc.ServicerContext
    ) -> api.CheckInstitutionTotalsResponse:
        return self._reconciliation.read(
            "CheckInstitutionTotals",
            request,
            context,
            convert.check_institution_totals,
            Reconciliation.totals,
            convert.totals_response,
        )

    def CheckInstitutionDetails(
        self, request: api.CheckInstitutionDetailsRequest, context: grpc.ServicerContext
    ) -> api.CheckInstitutionDetailsResponse:
        return self._reconciliation.read(
            "CheckInstitutionDetails",
            request,
            context,
            convert.check_institution_details,
            Reconciliation.details,
            convert.details_response,
        )
