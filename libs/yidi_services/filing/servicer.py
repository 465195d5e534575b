"""FilingService over gRPC: proto → plain values → handler → proto.

Applications, filings read or changed by id, rules and eligibility questions are answered at
the insured place's node; any other node relays them there (:mod:`~yidi_services.filing.routing`,
the ``@routed`` methods), and the answering node checks who may act on what
(:mod:`~yidi_services.filing.access`). Every mutating method runs through the request log, so
a repeated ``request_id`` gets the original answer, through whichever node it came, and
nothing is applied twice. The clock is injected: handlers are told "now" and "today" (in
China), never read the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date

import grpc
from google.protobuf.message import Message
from sqlalchemy.orm import Session

from yidi.filing.v1 import filing_service_pb2 as api
from yidi.filing.v1 import filing_service_pb2_grpc as api_grpc
from yidi_core.errors import DomainError
from yidi_runtime.idempotency import RequestLog, Response
from yidi_runtime.service import ServiceContext
from yidi_runtime.wire import Clock, china_day, day_of, wall_clock
from yidi_services.filing import (
    access,
    applications,
    convert,
    decisions,
    designation_levels,
    eligibility,
    listing,
    persons,
    queue,
    rechecks,
    rules,
)
from yidi_services.filing.designation_levels import RegistryAnswers
from yidi_services.filing.metrics import FilingMetrics
from yidi_services.filing.models import RequestRecord
from yidi_services.filing.registry_client import RegistryClient
from yidi_services.filing.routing import FilingRelay, routed


class FilingServicer(api_grpc.FilingServiceServicer):
    """Insured persons and their filings at the insured-place node."""

    def __init__(self, context: ServiceContext, clock: Clock = wall_clock) -> None:
        self._database = context.database
        self._region = context.settings.region
        self._clock = clock
        self._log = RequestLog(RequestRecord)
        self._metrics = FilingMetrics(context.metrics_registry, context.database, self._today)
        self._registry = RegistryClient(context.settings)
        self.relay = FilingRelay(context.router)

    def _today(self) -> date:
        return china_day(self._clock())

    def _once(
        self,
        request_id: str,
        method: str,
        request: Message,
        response_type: type[Response],
        effect: Callable[[Session], Response],
    ) -> Response:
        return self._log.run_once(self._database, request_id, method, [request], response_type, effect)

    def ImportInsuredPersons(
        self, request: api.ImportInsuredPersonsRequest, context: grpc.ServicerContext
    ) -> api.ImportInsuredPersonsResponse:
        drafts = [convert.person_draft(message, index) for index, message in enumerate(request.persons)]

        def effect(session: Session) -> api.ImportInsuredPersonsResponse:
            result = persons.import_persons(session, self._region, drafts, self._clock())
            return api.ImportInsuredPersonsResponse(
                created_count=result.created_count, updated_count=result.updated_count, psn_nos=result.psn_nos
            )

        return self._once(
            request.request_id, "ImportInsuredPersons", request, api.ImportInsuredPersonsResponse, effect
        )

    def GetInsuredPerson(
        self, request: api.GetInsuredPersonRequest, context: grpc.ServicerContext
    ) -> api.GetInsuredPersonResponse:
        with self._database.unit_of_work() as uow:
            found = persons.get(uow.session, convert.person_ref(request.person))
        return api.GetInsuredPersonResponse(person=convert.insured_person(found, masked=False))

    def ListInsuredPersons(
        self, request: api.ListInsuredPersonsRequest, context: grpc.ServicerContext
    ) -> api.ListInsuredPersonsResponse:
        query = persons.PersonQuery(
            request.insuplc_admdvs, request.insutype, request.page_size, request.page_token
        )
        with self._database.unit_of_work() as uow:
            page, token = persons.list_persons(uow.session, query)
        return api.ListInsuredPersonsResponse(
            persons=[convert.insured_person(found, masked=True) for found in page], next_page_token=token
        )

    def UpdateInsuredStatus(
        self, request: api.UpdateInsuredStatusRequest, context: grpc.ServicerContext
    ) -> api.UpdateInsuredStatusResponse:
        change = persons.StatusChange(
            ref=convert.person_ref(request.person),
            interrupted_from=day_of(request.interrupted_from, "interrupted_from"),
            resumed_on=day_of(request.resumed_on, "resumed_on"),
            activate_credential=request.activate_credential,
        )
        return self._once(
            request.request_id,
            "UpdateInsuredStatus",
            request,
            api.UpdateInsuredStatusResponse,
            lambda session: api.UpdateInsuredStatusResponse(
                person=convert.insured_person(
                    persons.update_status(session, self._region, change, self._clock()), masked=False
                )
            ),
        )

    @routed
    def CreateFiling(
        self, request: api.CreateFilingRequest, context: grpc.ServicerContext
    ) -> api.CreateFilingResponse:
        channel = convert.channel_name(request.channel) or "unspecified"
        access.ensure_care_here(
            request.treatment_admdvs, request.designated_institutions, convert.channel_name(request.channel)
        )
        application = applications.Application(
            person=convert.person_ref(request.person),
            insuplc_admdvs=request.insuplc_admdvs,
            treatment_admdvs=request.treatment_admdvs,
            category=convert.category_name(request.category),
            channel=convert.channel_name(request.channel),
            applicant=convert.applicant(request.applicant),
            start_date=day_of(request.start_date, "start_date"),
            end_date=day_of(request.end_date, "end_date"),
            materials=convert.materials(request.materials),
            designated_institutions=tuple(request.designated_institutions),
            retroactive=request.retroactive,
        )

        answers = designation_levels.ask_before_writing(
            self._database,
            self._registry,
            application.designated_institutions,
            lambda session: designation_levels.allowed_for_person(session, application.person, self._today()),
        )

        def effect(session: Session) -> api.CreateFilingResponse:
            applied = applications.apply(session, application, answers, self._clock(), self._today())
            self._metrics.applications.labels(channel, applied.outcome).inc()
            if not applied.existing:
                self._metrics.decided(applied.filing)
            return api.CreateFilingResponse(filing=convert.filing(applied.filing), existing=applied.existing)

        try:
            return self._once(request.request_id, "CreateFiling", request, api.CreateFilingResponse, effect)
        except DomainError:
            self._metrics.applications.labels(channel, "refused").inc()
            raise

    @routed
    def GetFiling(
        self, request: api.GetFilingRequest, context: grpc.ServicerContext
    ) -> api.GetFilingResponse:
        with self._database.unit_of_work() as uow:
            found = listing.get_filing(uow.session, request.filing_id, self._today())
        return api.GetFilingResponse(filing=convert.filing(found))

    @routed
    def ListFilings(
        self, request: api.ListFilingsRequest, context: grpc.ServicerContext
    ) -> api.ListFilingsResponse:
        query = listing.FilingQuery(
            insuplc_admdvs=request.insuplc_admdvs,
            person=convert.person_ref(request.person) if request.HasField("person") else None,
            treatment_admdvs=request.treatment_admdvs,
            states=tuple(convert.state_name(state) for state in request.states),
            category=convert.category_name(request.category),
            channel=convert.channel_name(request.channel),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        with self._database.unit_of_work() as uow:
            page, token = listing.list_filings(uow.session, query, self._today())
        return api.ListFilingsResponse(
            filings=[convert.filing(found) for found in page], next_page_token=token
        )

    def ReviewFiling(
        self, request: api.ReviewFilingRequest, context: grpc.ServicerContext
    ) -> api.ReviewFilingResponse:
        review = decisions.Review(
            request.filing_id, convert.decision_name(request.decision), request.reason, request.reviewer
        )

        def effect(session: Session) -> api.ReviewFilingResponse:
            decided = decisions.review(session, self._region, review, self._clock(), self._today())
            self._metrics.decided(decided)
            return api.ReviewFilingResponse(filing=convert.filing(decided))

        return self._once(request.request_id, "ReviewFiling", request, api.ReviewFilingResponse, effect)

    def ListPendingReviews(
        self, request: api.ListPendingReviewsRequest, context: grpc.ServicerContext
    ) -> api.ListPendingReviewsResponse:
        query = queue.QueueQuery(
            request.insuplc_admdvs, request.overdue_only, request.page_size, request.page_token
        )
        with self._database.unit_of_work() as uow:
            page = queue.pending_reviews(uow.session, self._region, query, self._today())
        return api.ListPendingReviewsResponse(
            reviews=[convert.pending_review(item) for item in page.items],
            total_size=page.total_size,
            overdue_count=page.overdue_count,
            next_page_token=page.next_page_token,
        )

    @routed
    def ChangeFiling(
        self, request: api.ChangeFilingRequest, context: grpc.ServicerContext
    ) -> api.ChangeFilingResponse:
        change = applications.Change(
            filing_id=request.filing_id,
            treatment_admdvs=request.treatment_admdvs,
            category=convert.category_name(request.category),
            end_date=day_of(request.end_date, "end_date"),
            materials=convert.materials(request.materials) if request.HasField("materials") else None,
            designated_institutions=tuple(request.designated_institutions),
            channel=convert.channel_name(request.channel),
        )
        access.ensure_care_here(change.treatment_admdvs, change.designated_institutions, change.channel)

        answers = designation_levels.ask_before_writing(
            self._database,
            self._registry,
            change.designated_institutions,
            lambda session: designation_levels.allowed_for_filing(session, change.filing_id, self._today()),
        )

        def effect(session: Session) -> api.ChangeFilingResponse:
            new, old = applications.change(session, change, answers, self._clock(), self._today())
            return api.ChangeFilingResponse(filing=convert.filing(new), superseded=convert.filing(old))

        return self._once(request.request_id, "ChangeFiling", request, api.ChangeFilingResponse, effect)

    @routed
    def CancelFiling(
        self, request: api.CancelFilingRequest, context: grpc.ServicerContext
    ) -> api.CancelFilingResponse:
        return self._once(
            request.request_id,
            "CancelFiling",
            request,
            api.CancelFilingResponse,
            lambda session: api.CancelFilingResponse(
                filing=convert.filing(
                    decisions.cancel(
                        session, self._region, request.filing_id, request.reason, self._clock(), self._today()
                    )
                )
            ),
        )

    @routed
    def CompleteMaterials(
        self, request: api.CompleteMaterialsRequest, context: grpc.ServicerContext
    ) -> api.CompleteMaterialsResponse:
        materials = convert.materials(request.materials)
        return self._once(
            request.request_id,
            "CompleteMaterials",
            request,
            api.CompleteMaterialsResponse,
            lambda session: api.CompleteMaterialsResponse(
                filing=convert.filing(
                    decisions.complete_materials(
                        session, self._region, request.filing_id, materials, self._today()
                    )
                )
            ),
        )

    @routed
    def GetFilingRules(
        self, request: api.GetFilingRulesRequest, context: grpc.ServicerContext
    ) -> api.GetFilingRulesResponse:
        with self._database.unit_of_work() as uow:
            found = rules.get(uow.session, request.insuplc_admdvs, self._today())
        return api.GetFilingRulesResponse(rules=convert.rules_message(found))

    def SetFilingRules(
        self, request: api.SetFilingRulesRequest, context: grpc.ServicerContext
    ) -> api.SetFilingRulesResponse:
        """Store the rules and, in the same transaction, recheck the open filings they govern."""
        given = rules.validated(convert.rules_value(request.rules), self._region, self._today())
        answers = RegistryAnswers()
        if given.outpatient_designation_levels:  # asked before the write transaction opens
            with self._database.unit_of_work() as uow:
                codes = rechecks.designated_codes(uow.session, given, self._today())
            answers = self._registry.levels(codes) if codes else answers

        def effect(session: Session) -> api.SetFilingRulesResponse:
            stored = rules.save(session, given)
            rechecks.recheck_open_filings(session, stored, answers, self._clock(), self._today())
            return api.SetFilingRulesResponse(rules=convert.rules_message(stored))

        return self._once(request.request_id, "SetFilingRules", request, api.SetFilingRulesResponse, effect)

    @routed
    def ListFilingRechecks(
        self, request: api.ListFilingRechecksRequest, context: grpc.ServicerContext
    ) -> api.ListFilingRechecksResponse:
        query = rechecks.RecheckQuery(
            request.insuplc_admdvs,
            convert.recheck_state_name(request.state),
            request.page_size,
            request.page_token,
        )
        with self._database.unit_of_work() as uow:
            page, token = rechecks.list_rechecks(uow.session, query, self._today())
        return api.ListFilingRechecksResponse(
            rechecks=[convert.recheck(found) for found in page], next_page_token=token
        )

    @routed
    def DecideFilingRecheck(
        self, request: api.DecideFilingRecheckRequest, context: grpc.ServicerContext
    ) -> api.DecideFilingRecheckResponse:
        decision = rechecks.Decision(
            request.filing_id, convert.recheck_decision_name(request.decision), request.reason
        )
        return self._once(
            request.request_id,
            "DecideFilingRecheck",
            request,
            api.DecideFilingRecheckResponse,
            lambda session: api.DecideFilingRecheckResponse(
                recheck=convert.recheck(
                    rechecks.decide(session, self._region, decision, self._clock(), self._today())
                )
            ),
        )

    @routed
    def CheckEligibility(
        self, request: api.CheckEligibilityRequest, context: grpc.ServicerContext
    ) -> api.CheckEligibilityResponse:
        question = eligibility.Question(
            person=convert.person_ref(request.person),
            insuplc_admdvs=request.insuplc_admdvs,
            treatment_admdvs=request.treatment_admdvs,
            service_date=day_of(request.service_date, "service_date"),
            med_type=request.med_type,
            emergency=request.emergency,
            chronic_disease=request.chronic_disease,
            fixmedins_code=request.fixmedins_code,
        )
        access.ensure_care_here(request.treatment_admdvs)
        with self._database.unit_of_work() as uow:
            answer = eligibility.check(uow.session, question, self._today())
        return api.CheckEligibilityResponse(person=convert.snapshot(answer))


def register(server: grpc.Server, context: ServiceContext, clock: Clock = wall_clock) -> Sequence[str]:
    """Add the filing service to a node's server; returns the gRPC service names it serves."""
    api_grpc.add_FilingServiceServicer_to_server(FilingServicer(context, clock), server)
    return [api.DESCRIPTOR.services_by_name["FilingService"].full_name]
