"""SettlementService over gRPC: the HIS-facing treatment-place half of a settlement.

The node that receives the HIS call is the treatment node. Each method checks the caller's
envelope, converts the request into a command (:mod:`~yidi_services.settlement.treatment.commands`,
every bad field refused at once) and hands it to its handler: the desk (persons, visits,
fee lines, self-pay bills), the settlements, the corrections. The clock is injected.
"""

from __future__ import annotations

import grpc

from yidi.settlement.v1 import settlement_pb2
from yidi.settlement.v1 import settlement_service_pb2 as api
from yidi.settlement.v1 import settlement_service_pb2_grpc as api_grpc
from yidi_runtime import identity
from yidi_runtime.identity import CallerRole
from yidi_runtime.integrity import NodeIntegrity
from yidi_runtime.outbox import Outbox
from yidi_runtime.routing import Router
from yidi_runtime.service import ServiceContext
from yidi_runtime.wire import Clock, moment_of
from yidi_runtime.working_days import WorkingCalendar
from yidi_services.settlement.receipts import Receipts
from yidi_services.settlement.treatment import bills, commands, direct_rate, listing
from yidi_services.settlement.treatment.checks import Caller, caller
from yidi_services.settlement.treatment.corrections import Corrections
from yidi_services.settlement.treatment.desk import Desk
from yidi_services.settlement.treatment.outcomes import Requests
from yidi_services.settlement.treatment.peers import TreatmentPeers
from yidi_services.settlement.treatment.settle import Settlements


class SettlementServicer(api_grpc.SettlementServiceServicer):
    """Visits, fee lines and settlements at the treatment-place node."""

    def __init__(self, context: ServiceContext, router: Router, outbox: Outbox, clock: Clock) -> None:
        self._database = context.database
        self._region = context.settings.region
        self._clock = clock
        self._peers = TreatmentPeers(router)
        self._requests = Requests(context.database)
        integrity = NodeIntegrity(context.settings, context.metrics_registry)
        self.receipts = Receipts(integrity, clock)
        self._settlements = Settlements(
            context.database,
            self._peers,
            outbox,
            clock,
            self._requests,
            integrity,
            self.receipts,
            WorkingCalendar(  # the node's working days (those its tickets count too)
                frozenset(context.settings.collaboration_holidays),
                frozenset(context.settings.collaboration_working_weekends),
            ),
        )
        self._corrections = Corrections(
            context.database, self._peers, clock, self._requests, self._settlements
        )
        self._desk = Desk(context.database, self._peers, self._requests, clock)
        self._rate = direct_rate.DirectRate(context.database, context.metrics_registry, clock)

    def _caller(self, envelope: settlement_pb2.Envelope) -> Caller:
        return caller(envelope, self._region)

    def _reader(self, request: object) -> Caller | None:
        """The institution reading (its envelope is its own), or None for an operator, who reads the node's records.

        Who reads is the caller's authenticated identity, never whether it sent an envelope.
        """
        role = identity.acting().role
        if role is CallerRole.INSTITUTION or (
            role is CallerRole.DEVELOPER and request.HasField("envelope")  # type: ignore[attr-defined]
        ):
            return caller(request.envelope, self._region)  # type: ignore[attr-defined]
        return None

    def VerifyPerson(
        self, request: api.VerifyPersonRequest, context: grpc.ServicerContext
    ) -> api.VerifyPersonResponse:
        command = commands.verify_person(request, self._caller(request.envelope), self._clock())
        return api.VerifyPersonResponse(person=self._desk.verify_person(command))

    def RegisterVisit(
        self, request: api.RegisterVisitRequest, context: grpc.ServicerContext
    ) -> api.RegisterVisitResponse:
        return self._desk.register_visit(
            commands.register_visit(request, self._caller(request.envelope), self._clock())
        )

    def DischargeVisit(
        self, request: api.DischargeVisitRequest, context: grpc.ServicerContext
    ) -> api.DischargeVisitResponse:
        return self._desk.discharge_visit(
            commands.discharge_visit(request, self._caller(request.envelope), self._clock())
        )

    def CancelVisit(
        self, request: api.CancelVisitRequest, context: grpc.ServicerContext
    ) -> api.CancelVisitResponse:
        return self._desk.cancel_visit(commands.cancel_visit(request, self._caller(request.envelope)))

    def UploadFeeItems(
        self, request: api.UploadFeeItemsRequest, context: grpc.ServicerContext
    ) -> api.UploadFeeItemsResponse:
        return self._desk.upload_fee_items(
            commands.upload_fee_items(request, self._caller(request.envelope), self._clock())
        )

    def CancelFeeItems(
        self, request: api.CancelFeeItemsRequest, context: grpc.ServicerContext
    ) -> api.CancelFeeItemsResponse:
        return self._desk.cancel_fee_items(commands.cancel_fee_items(request, self._caller(request.envelope)))

    def PreSettle(
        self, request: api.PreSettleRequest, context: grpc.ServicerContext
    ) -> api.PreSettleResponse:
        command = commands.pre_settle(request, self._caller(request.envelope))
        with self._rate.refusals_of(command.caller, command.mdtrt_id):
            return self._settlements.pre_settle(command)

    def Settle(self, request: api.SettleRequest, context: grpc.ServicerContext) -> api.SettleResponse:
        command = commands.settle(request, self._caller(request.envelope))
        with self._rate.refusals_of(command.caller, command.mdtrt_id):
            return self._settlements.settle(command)

    def ReverseSettlement(
        self, request: api.ReverseSettlementRequest, context: grpc.ServicerContext
    ) -> api.ReverseSettlementResponse:
        return self._settlements.reverse(commands.reverse_settlement(request, self._caller(request.envelope)))

    def Correct(self, request: api.CorrectRequest, context: grpc.ServicerContext) -> api.CorrectResponse:
        return self._corrections.correct(commands.correct(request, self._caller(request.envelope)))

    def GetSettlement(
        self, request: api.GetSettlementRequest, context: grpc.ServicerContext
    ) -> api.GetSettlementResponse:
        reader = self._reader(request)
        with self._database.unit_of_work() as uow:
            found = listing.get(uow.session, request.setl_id, request.medins_setl_id, reader)
        return api.GetSettlementResponse(settlement=found)

    def ListSettlements(
        self, request: api.ListSettlementsRequest, context: grpc.ServicerContext
    ) -> api.ListSettlementsResponse:
        query = listing.checked_query(
            listing.SettlementQuery(
                fixmedins_code=request.fixmedins_code.strip(),
                insuplc_admdvs=request.insuplc_admdvs.strip(),
                start_time=moment_of(request, "start_time"),
                end_time=moment_of(request, "end_time"),
                include_reversals=request.include_reversals,
                audit_flagged_only=request.audit_flagged_only,
            ),
            self._reader(request),
        )
        with self._database.unit_of_work() as uow:
            page, token = listing.list_settlements(uow.session, query, request.page_size, request.page_token)
        return api.ListSettlementsResponse(settlements=page, next_page_token=token)

    def UploadSelfPayBill(
        self, request: api.UploadSelfPayBillRequest, context: grpc.ServicerContext
    ) -> api.UploadSelfPayBillResponse:
        command = commands.upload_self_pay_bill(request, self._caller(request.envelope), self._clock())
        return self._desk.upload_self_pay_bill(command)

    def GetSelfPayBill(
        self, request: api.GetSelfPayBillRequest, context: grpc.ServicerContext
    ) -> api.GetSelfPayBillResponse:
        reader = self._reader(request)
        with self._database.unit_of_work() as uow:
            bill = bills.find(uow.session, request.bill_id, reader)
        return api.GetSelfPayBillResponse(bill=bill)

    def GetDirectSettlementReport(
        self, request: api.GetDirectSettlementReportRequest, context: grpc.ServicerContext
    ) -> api.GetDirectSettlementReportResponse:
        query = commands.direct_settlement_report(request, self._reader(request))
        with self._database.unit_of_work() as uow:
            found = direct_rate.report(uow.session, query)
        return api.GetDirectSettlementReportResponse(
            total=_tally(found.total),
            institutions=[_tally(outcomes) for outcomes in found.institutions],
            treatment_regions=[_tally(outcomes) for outcomes in found.treatment_regions],
            insured_regions=[_tally(outcomes) for outcomes in found.insured_regions],
        )


def _tally(outcomes: direct_rate.Outcomes) -> api.DirectSettlementTally:
    return api.DirectSettlementTally(
        key=outcomes.key,
        case_count=outcomes.cases,
        direct_count=outcomes.direct,
        refused_count=outcomes.refused,
        manual_count=outcomes.manual,
        pending_count=outcomes.pending,
        direct_rate_bp=outcomes.rate_bp,
        reasons=[
            api.DirectSettlementReasonCount(outcome=outcome, reason=reason, count=count)
            for (outcome, reason), count in outcomes.reasons.most_common()
        ],
    )
