"""The treatment node's calls to other services: registry and catalogue at the treatment province,
the insured side wherever the insured region is hosted.

A city keeps its province's institution checks for a short bound (``ProvinceAnswers``), so it
also reads its own registry's suspension notices, never kept: a notice reaches the city in the
same delivery round as the province (:mod:`yidi_services.registry.propagation`), and the city
refuses at once rather than when the kept answer expires.

Registry and catalogue are asked at the treatment province (``PP0000``), which may be this
node itself (an in-process call) or its parent. The insured side is reached one hop toward the
insured region; a request handled here goes to this node itself, so both halves of the
settlement service meet only through RPCs. Every call keeps the peer's refusal reason; an
insured node that does not answer is INSURED_REGION_UNREACHABLE, nothing applied.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import UTC, date, datetime
from typing import TypeVar

from google.protobuf.message import Message

from yidi.catalogue.v1 import catalogue_service_pb2 as catalogue_api
from yidi.catalogue.v1 import catalogue_service_pb2_grpc as catalogue_grpc
from yidi.registry.v1 import institution_registry_service_pb2 as registry_api
from yidi.registry.v1 import institution_registry_service_pb2_grpc as registry_grpc
from yidi.settlement.v1 import settlement_pb2
from yidi.settlement.v1.insured_settlement_service_pb2 import ResolvePersonRequest
from yidi.settlement.v1.insured_settlement_service_pb2_grpc import InsuredSettlementServiceStub as InsuredStub
from yidi.type.v1 import visit_pb2
from yidi.type.v1.person_pb2 import Credential
from yidi_core.codes import province_of
from yidi_core.errors import DomainError
from yidi_core.placement import AUDIT_THRESHOLD_FEN
from yidi_runtime.peers import PeerClient, alongside
from yidi_runtime.routing import Router
from yidi_runtime.wire import date_message, timestamp_message
from yidi_services.settlement.treatment.province_cache import ProvinceAnswers

INSURED_UNREACHABLE = "INSURED_REGION_UNREACHABLE"
Answer = TypeVar("Answer")


class TreatmentPeers:
    """The clients a treatment node's handlers use, all through the node's router."""

    audit_threshold_fen: int = AUDIT_THRESHOLD_FEN
    """This node's large-bill audit threshold (its ``settlement.audit_threshold_fen``)."""

    def __init__(self, router: Router) -> None:
        self._router = router
        self.region = router.settings.region
        self.audit_threshold_fen = router.settings.settlement_audit_threshold_fen
        self._kept = ProvinceAnswers(router.settings.settlement_province_cache_s)
        self._own_notices = "registry" in router.settings.services

    def _province(self, admdvs: str) -> tuple[PeerClient, ProvinceAnswers | None]:
        """The client of the province of ``admdvs``, and what is kept of its answers (None when the
        province is this node: its own registry and catalogue see every change at once)."""
        province = province_of(admdvs)
        peer = self._router.route(province).peer
        if peer is None:
            return self._router.toward(province), None
        return self._router.client(peer), self._kept

    def _check_request(
        self, facts: visit_pb2.VisitFacts, insuplc_admdvs: str, at: datetime
    ) -> registry_api.CheckInstitutionRequest:
        return registry_api.CheckInstitutionRequest(
            fixmedins_code=facts.fixmedins_code,
            med_type=facts.med_type,
            chronic_disease=facts.chronic_disease,
            service_date=facts.service_date,
            insuplc_admdvs=insuplc_admdvs,
            at_time=timestamp_message(at),
        )

    def check_institution(
        self, facts: visit_pb2.VisitFacts, insuplc_admdvs: str, at: datetime
    ) -> registry_api.CheckInstitutionResponse:
        """Is the institution networked and open for this care now? (refusals pass through)."""
        client, kept = self._province(facts.mdtrtarea_admvs)
        stub = client.stub(registry_grpc.InstitutionRegistryServiceStub)
        request = self._check_request(facts, insuplc_admdvs, at)

        def ask(asked: registry_api.CheckInstitutionRequest) -> registry_api.CheckInstitutionResponse:
            answer: registry_api.CheckInstitutionResponse = client.call(stub.CheckInstitution, asked)
            return answer

        if kept is None:
            return ask(request)
        self.ensure_not_suspended_here(facts.fixmedins_code, at)
        return kept.check_institution(request, ask)

    def ensure_not_suspended_here(self, fixmedins_code: str, at: datetime) -> None:
        """Refuse INSTITUTION_SUSPENDED when this node's own registry holds a notice covering the institution at ``at``."""
        if not self._own_notices:
            return
        client = self._router.toward(self.region)
        stub = client.stub(registry_grpc.InstitutionRegistryServiceStub)
        found: registry_api.ListSuspensionsResponse = client.call(
            stub.ListSuspensions,
            registry_api.ListSuspensionsRequest(
                fixmedins_code=fixmedins_code, active_at=timestamp_message(at), page_size=1
            ),
        )
        for notice in found.suspensions:
            end = notice.end_time.ToDatetime(tzinfo=UTC).isoformat()
            raise DomainError(
                "INSTITUTION_SUSPENDED",
                f"institution {fixmedins_code} is suspended until {end}: {notice.reason}",
                metadata={
                    "fixmedins_code": fixmedins_code,
                    "end_time": end,
                    "suspension_id": notice.suspension_id,
                },
            )

    def kept_institution_check(
        self, facts: visit_pb2.VisitFacts, insuplc_admdvs: str, at: datetime
    ) -> registry_api.CheckInstitutionResponse | None:
        """The province's answer to :meth:`check_institution` if it is kept (never when the province is this node)."""
        _, kept = self._province(facts.mdtrtarea_admvs)
        return None if kept is None else kept.kept_check(self._check_request(facts, insuplc_admdvs, at))

    def check_institution_alongside(
        self, facts: visit_pb2.VisitFacts, insuplc_admdvs: str, at: datetime
    ) -> Future[registry_api.CheckInstitutionResponse]:
        """:meth:`check_institution` started alongside the caller's work (:func:`alongside`); a kept
        answer is there at once, not handed over from another thread (about 35 us of CPU a call)."""
        kept = self.kept_institution_check(facts, insuplc_admdvs, at)
        if kept is None:
            return alongside(lambda: self.check_institution(facts, insuplc_admdvs, at))
        answered: Future[registry_api.CheckInstitutionResponse] = Future()
        try:
            self.ensure_not_suspended_here(facts.fixmedins_code, at)
        except DomainError as refusal:
            answered.set_exception(refusal)
        else:
            answered.set_result(kept)
        return answered

    def lookup_items(self, admdvs: str, codes: list[str], day: date) -> catalogue_api.LookupItemsResponse:
        """The treatment catalogue's entries in force on ``day`` for ``codes``, and its versions."""
        client, kept = self._province(admdvs)
        stub = client.stub(catalogue_grpc.CatalogueServiceStub)

        def ask(asked: Sequence[str]) -> catalogue_api.LookupItemsResponse:
            request = catalogue_api.LookupItemsRequest(admdvs=admdvs, codes=asked, date=date_message(day))
            answer: catalogue_api.LookupItemsResponse = client.call(stub.LookupItems, request)
            return answer

        return ask(codes) if kept is None else kept.lookup_items(admdvs, codes, day, ask)

    def route(self, insuplc_admdvs: str) -> settlement_pb2.Route:
        """The route of a message this node sends to the insured region."""
        return settlement_pb2.Route(
            origin_admdvs=self.region, destination_admdvs=insuplc_admdvs, hops=[self.region]
        )

    def ensure_person(
        self, facts: visit_pb2.VisitFacts, insuplc_admdvs: str, credential: Credential, psn_no: str
    ) -> None:
        """The insured node confirms that ``credential`` names ``psn_no`` (refusals pass through)."""
        self.insured(
            insuplc_admdvs,
            lambda stub: stub.ResolvePerson,
            ResolvePersonRequest(
                route=self.route(insuplc_admdvs),
                credential=credential,
                treatment_admdvs=facts.mdtrtarea_admvs,
                service_date=facts.service_date,
                med_type=facts.med_type,
                fixmedins_code=facts.fixmedins_code,
                psn_no=psn_no,
            ),
        )

    def _insured(self, insuplc_admdvs: str) -> PeerClient:
        client = self._router.next_hop(insuplc_admdvs, "envelope.insuplc_admdvs", INSURED_UNREACHABLE)
        return client if client is not None else self._router.toward(self.region)

    def insured(
        self, insuplc_admdvs: str, method: Callable[[InsuredStub], Callable[..., Answer]], request: Message
    ) -> Answer:
        """One call to the insured side (e.g. ``lambda stub: stub.ApplySettlement``) one hop toward it."""
        client = self._insured(insuplc_admdvs)
        return client.call(method(client.stub(InsuredStub)), request, unreachable=INSURED_UNREACHABLE)
