"""AuditCaseService over gRPC: the large-bill audit (大额协查), both halves.

The treatment node's operators read and decide its queue
(:mod:`~yidi_services.settlement.treatment.audit`); the insured node records the adjustments
that reach it through the treatment node's outbox
(:mod:`~yidi_services.settlement.insured.audit_adjustments`), routed like every node-to-node
settlement message (:mod:`~yidi_services.settlement.insured.forwarding`). The open and
overdue cases are gauges counted at every scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date

import grpc
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from yidi.settlement.v1 import audit_case_service_pb2 as api
from yidi.settlement.v1 import audit_case_service_pb2_grpc as api_grpc
from yidi_runtime import identity
from yidi_runtime.db import Database
from yidi_runtime.idempotency import RequestLog, fingerprint
from yidi_runtime.integrity import NodeIntegrity, Origin
from yidi_runtime.outbox import Outbox
from yidi_runtime.relay import Relay
from yidi_runtime.routing import Router
from yidi_runtime.service import ServiceContext
from yidi_runtime.wire import Clock, as_utc, china_day
from yidi_services.settlement.insured import audit_adjustments
from yidi_services.settlement.insured.forwarding import ROUTED, routed
from yidi_services.settlement.insured.servicer import _content
from yidi_services.settlement.models import RequestRecord
from yidi_services.settlement.treatment import audit
from yidi_services.settlement.treatment.checks import check_request_id
from yidi_services.settlement.treatment.commands import Call
from yidi_services.settlement.treatment.outcomes import Requests
from yidi_services.settlement.treatment.peers import TreatmentPeers


class AuditGauges(Collector):
    """Open audit cases at this node, and those past their working-day due date."""

    def __init__(self, database: Database, today: Callable[[], date]) -> None:
        self._database = database
        self._today = today

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._database.unit_of_work() as uow:
            opened, overdue = audit.counts(uow.session, self._today())
        yield GaugeMetricFamily(
            "yidi_settlement_audit_cases_open",
            "Large-bill audit cases awaiting this node's operators.",
            opened,
        )
        yield GaugeMetricFamily(
            "yidi_settlement_audit_cases_overdue",
            "Large-bill audit cases still open past their working-day due date.",
            overdue,
        )


class AuditCaseServicer(api_grpc.AuditCaseServiceServicer):
    """The audit queue at the treatment node; the adjustments at the insured node."""

    def __init__(self, context: ServiceContext, router: Router, outbox: Outbox, clock: Clock) -> None:
        self._database = context.database
        self._clock = clock
        self._integrity = NodeIntegrity(context.settings, context.metrics_registry)
        self._cases = audit.AuditCases(TreatmentPeers(router), outbox, self._integrity)
        self._requests = Requests(context.database)
        self._log = RequestLog(RequestRecord)
        self.relay = Relay(router, api_grpc.AuditCaseServiceStub)
        context.metrics_registry.register(AuditGauges(context.database, self._today))

    def _today(self) -> date:
        return china_day(self._clock())

    def ListAuditCases(
        self, request: api.ListAuditCasesRequest, context: grpc.ServicerContext
    ) -> api.ListAuditCasesResponse:
        with self._database.unit_of_work() as uow:
            cases, token = audit.list_cases(uow.session, request, self._today())
        return api.ListAuditCasesResponse(cases=cases, next_page_token=token)

    def GetAuditCase(
        self, request: api.GetAuditCaseRequest, context: grpc.ServicerContext
    ) -> api.GetAuditCaseResponse:
        with self._database.unit_of_work() as uow:
            return api.GetAuditCaseResponse(audit_case=audit.get(uow.session, request.setl_id, self._today()))

    def DecideAuditCase(
        self, request: api.DecideAuditCaseRequest, context: grpc.ServicerContext
    ) -> api.DecideAuditCaseResponse:
        operator = identity.acting().subject
        call = Call(operator, check_request_id(request.request_id), "DecideAuditCase", fingerprint([request]))
        replayed = self._requests.replayed(call, api.DecideAuditCaseResponse)
        if replayed is not None:
            return replayed
        decision = audit.decision_of(request)

        def effect(session: Session) -> api.DecideAuditCaseResponse:
            decided = self._cases.decide(session, decision, operator, call.request_id, as_utc(self._clock()))
            return api.DecideAuditCaseResponse(audit_case=decided)

        return self._requests.run_once(call, api.DecideAuditCaseResponse, effect)

    @routed
    def RecordAuditAdjustment(
        self, request: api.RecordAuditAdjustmentRequest, context: grpc.ServicerContext
    ) -> api.RecordAuditAdjustmentResponse:
        audit_adjustments.check(request)
        claimed = request.route.origin_admdvs
        signer = self._integrity.verify(
            "RecordAuditAdjustment", request, Origin(node={"route.origin_admdvs": claimed}), ROUTED
        )
        origin = signer or claimed

        def effect(session: Session) -> api.RecordAuditAdjustmentResponse:
            audit_adjustments.record(session, request, origin, as_utc(self._clock()))
            answer = api.RecordAuditAdjustmentResponse()
            self._integrity.receipt(answer, request.payload_signature)
            return answer

        return self._log.run_once(
            self._database,
            request.request_id,
            "RecordAuditAdjustment",
            [_content(request)],
            api.RecordAuditAdjustmentResponse,
            effect,
        )

    @routed
    def ListAuditAdjustments(
        self, request: api.ListAuditAdjustmentsRequest, context: grpc.ServicerContext
    ) -> api.ListAuditAdjustmentsResponse:
        with self._database.unit_of_work() as uow:
            return audit_adjustments.listed(uow.session, request)
