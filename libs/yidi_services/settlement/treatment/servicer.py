"""SettlementService over gRPC: the HIS-facing treatment-place half of a settlement.

The node that receives the HIS call is the treatment node. Every mutating method runs
through the request log (a repeat answers as the first time); remote checks and the
insured node's work happen before the local transaction that records the effect, so an
unreachable peer leaves nothing half-written here. The clock is injected.
"""

from __future__ import annotations

import grpc
from sqlalchemy.orm import Session

from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi.settlement.v1 import settlement_pb2
from yidi.settlement.v1 import settlement_service_pb2 as api
from yidi.settlement.v1 import settlement_service_pb2_grpc as api_grpc
from yidi_codec.fields import Violations
from yidi_core.errors import invalid
from yidi_runtime import identity
from yidi_runtime.identity import CallerRole
from yidi_runtime.integrity import NodeIntegrity
from yidi_runtime.outbox import Outbox
from yidi_runtime.peers import alongside
from yidi_runtime.routing import Router
from yidi_runtime.service import ServiceContext
from yidi_runtime.wire import Clock, china_day, date_message, day_of, ensure_not_future, moment_of
from yidi_services.settlement.receipts import Receipts
from yidi_services.settlement.treatment import bills, fees, listing, visits
from yidi_services.settlement.treatment.catalogue import classify, fee_items
from yidi_services.settlement.treatment.checks import (
    Caller,
    caller,
    check_request_id,
    insured_region,
    record_id,
    required_text,
)
from yidi_services.settlement.treatment.corrections import Corrections
from yidi_services.settlement.treatment.outcomes import Requests, claim, reading
from yidi_services.settlement.treatment.peers import TreatmentPeers
from yidi_services.settlement.treatment.settle import Settlements

GENERAL_OUTPATIENT = "11"
"""The medical type a VerifyPerson without one is checked for (1101 names none)."""


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
            context.database, self._peers, outbox, clock, self._requests, integrity, self.receipts
        )
        self._corrections = Corrections(
            context.database, self._peers, clock, self._requests, self._settlements
        )

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
        who = self._caller(request.envelope)
        insured = insured_region(request, who)
        now = self._clock()
        day = day_of(request.service_date, "service_date") or china_day(now)
        ensure_not_future(day, now, "service_date")
        answer = self._peers.insured(
            insured,
            lambda stub: stub.ResolvePerson,
            insured_api.ResolvePersonRequest(
                route=self._peers.route(insured),
                credential=request.credential,
                treatment_admdvs=who.mdtrtarea_admvs,
                service_date=date_message(day),
                med_type=request.med_type or GENERAL_OUTPATIENT,
                emergency=request.emergency,
                chronic_disease=request.chronic_disease,
                fixmedins_code=request.envelope.fixmedins_code,
            ),
        )
        return api.VerifyPersonResponse(person=answer.person)

    def RegisterVisit(
        self, request: api.RegisterVisitRequest, context: grpc.ServicerContext
    ) -> api.RegisterVisitResponse:
        request_id = check_request_id(request.request_id)
        who = self._caller(request.envelope)
        replayed = self._requests.replayed(
            who.owner, request_id, "RegisterVisit", request, api.RegisterVisitResponse
        )
        if replayed is not None:
            return replayed
        visit = visits.registration(request, who, self._clock())
        person = alongside(
            lambda: self._peers.ensure_person(
                visit.facts, visit.insuplc_admdvs, request.credential, visit.psn_no
            )
        )
        checked = self._peers.check_institution(visit.facts, visit.insuplc_admdvs, self._clock())
        person.result()
        if not visit.facts.institution_level:
            visit.facts.institution_level = checked.institution.level
        mdtrt_id = record_id(self._region, who.key(request_id))

        def effect(session: Session) -> api.RegisterVisitResponse:
            now = self._clock()
            claim(session, who.owner, request_id, "RegisterVisit", mdtrt_id, now)
            row = visits.register(session, mdtrt_id, request_id, visit, now)
            session.flush()
            return api.RegisterVisitResponse(visit=visits.visit_message(session, row))

        return self._requests.run_once(
            who.owner, request_id, "RegisterVisit", request, api.RegisterVisitResponse, effect
        )

    def DischargeVisit(
        self, request: api.DischargeVisitRequest, context: grpc.ServicerContext
    ) -> api.DischargeVisitResponse:
        request_id = check_request_id(request.request_id)
        who = self._caller(request.envelope)
        problems = Violations()
        problems.check(lambda: required_text(request.mdtrt_id, "mdtrt_id"))
        end_time = moment_of(request, "end_time")
        if end_time is None:
            problems.add(invalid("INVALID_ARGUMENT", "end_time", "is required"))
        problems.check(lambda: ensure_not_future(end_time, self._clock(), "end_time"))
        diagnoses = problems.check(lambda: visits.checked_diagnoses(list(request.diagnoses)))
        problems.raise_any()
        assert end_time is not None and diagnoses is not None

        def effect(session: Session) -> api.DischargeVisitResponse:
            row = visits.load(session, request.mdtrt_id, who, lock=True)
            visits.discharge(row, end_time, diagnoses)
            session.flush()
            return api.DischargeVisitResponse(visit=visits.visit_message(session, row))

        return self._requests.run_once(
            who.owner, request_id, "DischargeVisit", request, api.DischargeVisitResponse, effect
        )

    def CancelVisit(
        self, request: api.CancelVisitRequest, context: grpc.ServicerContext
    ) -> api.CancelVisitResponse:
        request_id = check_request_id(request.request_id)
        who = self._caller(request.envelope)
        required_text(request.mdtrt_id, "mdtrt_id")

        def effect(session: Session) -> api.CancelVisitResponse:
            row = visits.load(session, request.mdtrt_id, who, lock=True)
            visits.cancel(row)
            session.flush()
            return api.CancelVisitResponse(visit=visits.visit_message(session, row))

        return self._requests.run_once(
            who.owner, request_id, "CancelVisit", request, api.CancelVisitResponse, effect
        )

    def UploadFeeItems(
        self, request: api.UploadFeeItemsRequest, context: grpc.ServicerContext
    ) -> api.UploadFeeItemsResponse:
        request_id = check_request_id(request.request_id)
        who = self._caller(request.envelope)
        replayed = self._requests.replayed(
            who.owner, request_id, "UploadFeeItems", request, api.UploadFeeItemsResponse
        )
        if replayed is not None:
            return replayed
        required_text(request.mdtrt_id, "mdtrt_id")
        items = fee_items(request.items)
        fees.ensure_times_past(request.items, self._clock())
        with reading(self._database) as session:
            visit = visits.load(session, request.mdtrt_id, who)
            visits.ensure_open(visit)
        classified = classify(self._peers, visits.facts_of(visit), items)

        def effect(session: Session) -> api.UploadFeeItemsResponse:
            now = self._clock()
            claim(session, who.owner, request_id, "UploadFeeItems", visit.mdtrt_id, now)
            row = visits.load(session, visit.mdtrt_id, who, lock=True)
            visits.ensure_open(row)
            results = fees.store(session, row.mdtrt_id, request_id, request.items, classified, now)
            return api.UploadFeeItemsResponse(results=results, catalogue_version=classified.catalogue_version)

        return self._requests.run_once(
            who.owner, request_id, "UploadFeeItems", request, api.UploadFeeItemsResponse, effect
        )

    def CancelFeeItems(
        self, request: api.CancelFeeItemsRequest, context: grpc.ServicerContext
    ) -> api.CancelFeeItemsResponse:
        request_id = check_request_id(request.request_id)
        who = self._caller(request.envelope)
        required_text(request.mdtrt_id, "mdtrt_id")
        if request.all == bool(request.feedetl_sns):
            raise invalid(
                "INVALID_ARGUMENT", "feedetl_sns", "name the serials to cancel, or set all (not both)"
            )

        def effect(session: Session) -> api.CancelFeeItemsResponse:
            row = visits.load(session, request.mdtrt_id, who, lock=True)
            visits.ensure_open(row)
            count = fees.cancel(session, row.mdtrt_id, list(request.feedetl_sns), request.all)
            return api.CancelFeeItemsResponse(cancelled_count=count)

        return self._requests.run_once(
            who.owner, request_id, "CancelFeeItems", request, api.CancelFeeItemsResponse, effect
        )

    def PreSettle(
        self, request: api.PreSettleRequest, context: grpc.ServicerContext
    ) -> api.PreSettleResponse:
        return self._settlements.pre_settle(request, self._caller(request.envelope))

    def Settle(self, request: api.SettleRequest, context: grpc.ServicerContext) -> api.SettleResponse:
        return self._settlements.settle(request, self._caller(request.envelope))

    def ReverseSettlement(
        self, request: api.ReverseSettlementRequest, context: grpc.ServicerContext
    ) -> api.ReverseSettlementResponse:
        return self._settlements.reverse(request, self._caller(request.envelope))

    def Correct(self, request: api.CorrectRequest, context: grpc.ServicerContext) -> api.CorrectResponse:
        return self._corrections.correct(request, self._caller(request.envelope))

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
        request_id = check_request_id(request.request_id)
        who = self._caller(request.envelope)
        bill = bills.checked_bill(request.bill, who, self._clock())
        bill_id = record_id(self._region, who.key(request_id))
        return self._requests.run_once(
            who.owner,
            request_id,
            "UploadSelfPayBill",
            request,
            api.UploadSelfPayBillResponse,
            lambda session: api.UploadSelfPayBillResponse(
                bill=bills.store(session, bill_id, request_id, bill, self._clock())
            ),
        )

    def GetSelfPayBill(
        self, request: api.GetSelfPayBillRequest, context: grpc.ServicerContext
    ) -> api.GetSelfPayBillResponse:
        reader = self._reader(request)
        with self._database.unit_of_work() as uow:
            bill = bills.find(uow.session, request.bill_id, reader)
        return api.GetSelfPayBillResponse(bill=bill)
