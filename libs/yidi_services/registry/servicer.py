"""InstitutionRegistryService over gRPC: proto → plain values → handler → proto.

Every mutating method runs through the request log, so a repeated ``request_id`` gets the
original answer and nothing is applied twice. Every change is queued for the neighbours that
need it in the same transaction (``propagation``, the registry outbox). Reads about regions
outside this node's go to its parent (``upstream``); PushInstitutions sends what the parent
has not acknowledged (``push``) through the same client of the node's router, once per batch
(a lost answer is resent by the next push).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date

import grpc
from google.protobuf.message import Message
from sqlalchemy.orm import Session

from yidi.registry.v1 import institution_registry_service_pb2 as api
from yidi.registry.v1 import institution_registry_service_pb2_grpc as api_grpc
from yidi_core.errors import DomainError
from yidi_runtime.idempotency import RequestLog, Response, fingerprint
from yidi_runtime.outbox import Outbox, OutboxDeliverer
from yidi_runtime.peers import message_id
from yidi_runtime.relay import Up
from yidi_runtime.resilience import NO_RETRY
from yidi_runtime.service import ServiceContext
from yidi_runtime.ttl_cache import Monotonic, TtlCache
from yidi_runtime.uploads import read_upload
from yidi_runtime.wire import Clock, china_day, day_of, moment_of, wall_clock
from yidi_services.registry import convert, coverage, handlers, propagation, push, suspensions, upstream
from yidi_services.registry.institutions import Institution
from yidi_services.registry.models import OutboxMessage, RequestRecord


class RegistryServicer(api_grpc.InstitutionRegistryServiceServicer):
    """The registry of networked designated institutions on one node."""

    def __init__(
        self,
        context: ServiceContext,
        clock: Clock,
        lookup_cache: TtlCache[Message | DomainError],
        propagated: propagation.Propagation,
    ) -> None:
        settings = context.settings
        self._propagation = propagated
        self._database = context.database
        self._region = settings.region
        self._clock = clock
        self._log = RequestLog(RequestRecord)
        relay = upstream.parent_relay(context.router)
        self._parent = relay.next_hop(Up.PARENT)
        self._lookups = upstream.ParentLookups(relay, settings.region, lookup_cache)

    def _today(self) -> date:
        return china_day(self._clock())

    def _once(
        self,
        request_id: str,
        method: str,
        requests: Sequence[Message],
        response_type: type[Response],
        effect: Callable[[Session], Response],
    ) -> Response:
        return self._log.run_once(self._database, request_id, method, requests, response_type, effect)

    def RegisterInstitution(
        self, request: api.RegisterInstitutionRequest, context: grpc.ServicerContext
    ) -> api.RegisterInstitutionResponse:
        draft = convert.draft(request.institution)
        return self._once(
            request.request_id,
            "RegisterInstitution",
            [request],
            api.RegisterInstitutionResponse,
            lambda session: api.RegisterInstitutionResponse(
                institution=convert.institution(
                    self._changed(session, handlers.register(session, self._region, draft, self._clock()))
                )
            ),
        )

    def UpdateInstitution(
        self, request: api.UpdateInstitutionRequest, context: grpc.ServicerContext
    ) -> api.UpdateInstitutionResponse:
        draft = convert.draft(request.institution)
        return self._once(
            request.request_id,
            "UpdateInstitution",
            [request],
            api.UpdateInstitutionResponse,
            lambda session: api.UpdateInstitutionResponse(
                institution=convert.institution(
                    self._changed(session, handlers.update(session, self._region, draft, self._clock()))
                )
            ),
        )

    def _changed(self, session: Session, institution: Institution) -> Institution:
        self._propagation.institutions_changed(session, [institution])
        return institution

    def GetInstitution(
        self, request: api.GetInstitutionRequest, context: grpc.ServicerContext
    ) -> api.GetInstitutionResponse:
        region = upstream.institution_region(request.fixmedins_code)
        if not self._lookups.answers_locally(region):
            return self._lookups.ask("GetInstitution", request, context)  # type: ignore[return-value]
        with self._database.unit_of_work() as uow:
            found = handlers.get(uow.session, request.fixmedins_code)
        return api.GetInstitutionResponse(institution=convert.institution(found))

    def ListInstitutions(
        self, request: api.ListInstitutionsRequest, context: grpc.ServicerContext
    ) -> api.ListInstitutionsResponse:
        if not self._lookups.answers_locally(upstream.listed_region(request.admdvs)):
            return self._lookups.ask("ListInstitutions", request, context)  # type: ignore[return-value]
        query = handlers.ListQuery(
            admdvs=request.admdvs,
            type=convert.type_name(request.type),
            levels=tuple(request.levels),
            service=convert.kind_name(request.service),
            chronic_disease=request.chronic_disease,
            status=convert.status_name(request.status),
            open_on=day_of(request.open_on, "open_on"),
            cross_province_only=request.cross_province_only,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        with self._database.unit_of_work() as uow:
            page, token = handlers.list_institutions(uow.session, query, self._today())
        return api.ListInstitutionsResponse(
            institutions=[convert.institution(found) for found in page], next_page_token=token
        )

    def ImportInstitutions(
        self, request_iterator: Iterator[api.ImportInstitutionsRequest], context: grpc.ServicerContext
    ) -> api.ImportInstitutionsResponse:
        header, data = read_upload(request_iterator)

        def effect(session: Session) -> api.ImportInstitutionsResponse:
            result = handlers.import_csv(session, self._region, header.admdvs, data, self._clock())
            self._propagation.institutions_changed(session, result.changed)
            return api.ImportInstitutionsResponse(
                row_count=result.row_count,
                created_count=result.created_count,
                updated_count=result.updated_count,
            )

        # The same header and file is the same request however the client chunked it.
        normalized = [
            api.ImportInstitutionsRequest(header=header),
            api.ImportInstitutionsRequest(csv_chunk=data),
        ]
        return self._once(
            header.request_id, "ImportInstitutions", normalized, api.ImportInstitutionsResponse, effect
        )

    def PublishSuspension(
        self, request: api.PublishSuspensionRequest, context: grpc.ServicerContext
    ) -> api.PublishSuspensionResponse:
        draft = convert.suspension_draft(request.suspension)

        def effect(session: Session) -> api.PublishSuspensionResponse:
            published = suspensions.publish(session, self._region, draft)
            self._propagation.notice_changed(session, published, self._clock())
            return api.PublishSuspensionResponse(suspension=convert.suspension(published))

        return self._once(
            request.request_id, "PublishSuspension", [request], api.PublishSuspensionResponse, effect
        )

    def RevokeSuspension(
        self, request: api.RevokeSuspensionRequest, context: grpc.ServicerContext
    ) -> api.RevokeSuspensionResponse:

        def effect(session: Session) -> api.RevokeSuspensionResponse:
            revoked, changed = suspensions.revoke(session, self._region, request.suspension_id)
            if changed:
                self._propagation.notice_changed(session, revoked, self._clock())
            return api.RevokeSuspensionResponse(suspension=convert.suspension(revoked))

        return self._once(
            request.request_id, "RevokeSuspension", [request], api.RevokeSuspensionResponse, effect
        )

    def SyncSuspension(
        self, request: api.SyncSuspensionRequest, context: grpc.ServicerContext
    ) -> api.SyncSuspensionResponse:
        message = request.suspension
        notice = suspensions.received_notice(
            message.suspension_id, message.origin_admdvs, message.revoked, convert.suspension_draft(message)
        )
        changed_at = moment_of(request, "changed_at")
        source = request.source_admdvs

        def effect(session: Session) -> api.SyncSuspensionResponse:
            parent = self._propagation.parent_region
            applied = suspensions.receive(session, self._region, parent, source, notice)
            if applied:
                self._propagation.notice_changed(
                    session, notice, changed_at or self._clock(), came_from=source
                )
                self._propagation.observe("suspension", changed_at)
            return api.SyncSuspensionResponse(applied=applied)

        return self._once(request.request_id, "SyncSuspension", [request], api.SyncSuspensionResponse, effect)

    def ListSuspensions(
        self, request: api.ListSuspensionsRequest, context: grpc.ServicerContext
    ) -> api.ListSuspensionsResponse:
        query = suspensions.SuspensionQuery(
            active_at=moment_of(request, "active_at"),
            admdvs=request.admdvs,
            fixmedins_code=request.fixmedins_code,
            include_revoked=request.include_revoked,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        with self._database.unit_of_work() as uow:
            page, token = suspensions.list_notices(uow.session, query)
        return api.ListSuspensionsResponse(
            suspensions=[convert.suspension(notice) for notice in page], next_page_token=token
        )

    def CheckInstitution(
        self, request: api.CheckInstitutionRequest, context: grpc.ServicerContext
    ) -> api.CheckInstitutionResponse:
        region = upstream.institution_region(request.fixmedins_code)
        if not self._lookups.answers_locally(region):
            return self._lookups.ask("CheckInstitution", request, context)  # type: ignore[return-value]
        query = handlers.CheckQuery(
            code=request.fixmedins_code,
            med_type=request.med_type,
            chronic_disease=request.chronic_disease,
            service_date=day_of(request.service_date, "service_date"),
            insured_region=request.insuplc_admdvs,
            at=moment_of(request, "at_time") or self._clock(),
        )
        with self._database.unit_of_work() as uow:
            found, service = handlers.check(uow.session, query)
        return api.CheckInstitutionResponse(
            institution=convert.institution(found), service=convert.opened_service(service)
        )

    def CoverageReport(
        self, request: api.CoverageReportRequest, context: grpc.ServicerContext
    ) -> api.CoverageReportResponse:
        as_of = day_of(request.as_of, "as_of") or self._today()
        with self._database.unit_of_work() as uow:
            report = coverage.report(uow.session, request.admdvs, as_of, list(request.expected_counties))
        return convert.coverage(report)

    def SyncInstitutions(
        self, request: api.SyncInstitutionsRequest, context: grpc.ServicerContext
    ) -> api.SyncInstitutionsResponse:
        drafts = [convert.draft(message) for message in request.institutions]

        def effect(session: Session) -> api.SyncInstitutionsResponse:
            result = handlers.sync(session, self._region, request.source_admdvs, drafts, self._clock())
            self._propagation.institutions_changed(session, result.changed)
            for institution in result.changed:
                self._propagation.observe("institution", institution.update_time)
            return api.SyncInstitutionsResponse(
                applied_count=result.applied_count, stale_count=result.stale_count
            )

        return self._once(
            request.request_id, "SyncInstitutions", [request], api.SyncInstitutionsResponse, effect
        )

    def PushInstitutions(
        self, request: api.PushInstitutionsRequest, context: grpc.ServicerContext
    ) -> api.PushInstitutionsResponse:
        # The push talks to the parent outside any transaction (see push.py); the request
        # log only records its answer, so a repeated request_id does not push again.
        method = "PushInstitutions"
        with self._database.unit_of_work() as uow:
            done = self._log.replay(
                uow.session, request.request_id, method, fingerprint([request]), api.PushInstitutionsResponse
            )
        if done is not None:
            return done
        result = push.PushResult()
        if self._parent is not None:
            result = push.push(self._database, self._parent.peer.region, self._send_to_parent)
        response = api.PushInstitutionsResponse(
            parent_admdvs=self._parent.peer.region if self._parent else "",
            sent_count=result.sent_count,
            applied_count=result.applied_count,
            stale_count=result.stale_count,
            batch_count=result.batch_count,
        )
        return self._once(
            request.request_id, method, [request], api.PushInstitutionsResponse, lambda _: response
        )

    def _send_to_parent(self, batch: Sequence[Institution]) -> handlers.SyncResult:
        assert self._parent is not None
        request = api.SyncInstitutionsRequest(
            request_id=message_id(self._region),
            source_admdvs=self._region,
            institutions=[convert.institution(institution) for institution in batch],
        )
        stub = self._parent.stub(api_grpc.InstitutionRegistryServiceStub)
        answer = self._parent.call(
            stub.SyncInstitutions, request, deadline_s=propagation.DEADLINE_S, retry=NO_RETRY
        )
        return handlers.SyncResult(answer.applied_count, answer.stale_count)


def registrar(
    clock: Clock = wall_clock, cache_clock: Monotonic = time.monotonic
) -> Callable[[grpc.Server, ServiceContext], list[str]]:
    """The registry's ``register`` for the composition root; tests pass their own clocks."""

    def register(server: grpc.Server, context: ServiceContext) -> list[str]:
        outbox = Outbox(OutboxMessage, clock)
        propagated = propagation.Propagation(
            context.settings, context.database, outbox, context.metrics_registry, clock
        )
        context.run_in_background(
            OutboxDeliverer(
                outbox,
                context.database,
                context.router,
                context.metrics_registry,
                deadline_s=propagation.DEADLINE_S,
                on_delivered=propagated.on_delivered,
            )
        )
        servicer = RegistryServicer(
            context, clock, TtlCache(upstream.TTL_S, upstream.MAX_ENTRIES, cache_clock), propagated
        )
        api_grpc.add_InstitutionRegistryServiceServicer_to_server(servicer, server)
        name = api.DESCRIPTOR.services_by_name["InstitutionRegistryService"].full_name
        context.needs_parent(name)  # institution checks of other places, and syncs, go through the parent
        return [name]

    return register


register = registrar()
"""Adds the registry to a node's server; returns the gRPC service names it serves."""
