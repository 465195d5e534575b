"""The gRPC face of the catalogue service group: proto → command → handler → proto, nothing more.

A lookup for a catalogue another node hosts (:mod:`~yidi_services.catalogue.hosts`) is
relayed one hop toward it unchanged (:mod:`yidi_runtime.relay`), and its answer or refusal
comes back as it was; a policy is found up the region tree by
:mod:`~yidi_services.catalogue.policy_finder`. The node asks as itself, as it does for its
own estimates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import grpc
from sqlalchemy.orm import Session

from yidi.catalogue.v1 import (
    catalogue_service_pb2,
    catalogue_service_pb2_grpc,
    policy_service_pb2,
    policy_service_pb2_grpc,
)
from yidi_codec.fields import proto_paths
from yidi_codec.results import settlement_result_to_proto
from yidi_core.errors import DomainError, invalid
from yidi_runtime.db import Database
from yidi_runtime.idempotency import RequestLog
from yidi_runtime.paging import page_size
from yidi_runtime.relay import Relay, Vouching, remaining_s
from yidi_runtime.service import ServiceContext
from yidi_runtime.uploads import read_upload
from yidi_runtime.wire import day_of, required_day
from yidi_services.catalogue import catalogues, policies
from yidi_services.catalogue.catalogue_csv import parse_catalogue_csv
from yidi_services.catalogue.estimate import Estimator
from yidi_services.catalogue.hosts import Hosts
from yidi_services.catalogue.item_cache import VersionItemCache
from yidi_services.catalogue.messages import (
    estimate_command,
    item_message,
    layer_of,
    policy_message,
    version_message,
)
from yidi_services.catalogue.models import RequestRecord
from yidi_services.catalogue.policies import DocumentFormat
from yidi_services.catalogue.policy_finder import PolicyFinder
from yidi_services.catalogue.remote import PeerSources

_FORMATS = {
    policy_service_pb2.POLICY_FORMAT_JSON: DocumentFormat.JSON,
    policy_service_pb2.POLICY_FORMAT_TOML: DocumentFormat.TOML,
}
_REQUESTS = RequestLog(RequestRecord)


def _request_id(value: str, field: str = "request_id") -> str:
    if not value or len(value) > 64:
        raise invalid("INVALID_ARGUMENT", field, "is required, at most 64 characters")
    return value


class CatalogueServicer(catalogue_service_pb2_grpc.CatalogueServiceServicer):
    """CatalogueService: imports, lookups (cached per version), versions and diffs."""

    def __init__(self, database: Database, cache: VersionItemCache, hosts: Hosts, relay: Relay) -> None:
        self._database = database
        self._cache = cache
        self._hosts = hosts
        self._relay = relay

    def ImportCatalogue(
        self,
        request_iterator: Iterable[catalogue_service_pb2.ImportCatalogueRequest],
        context: grpc.ServicerContext,
    ) -> catalogue_service_pb2.ImportCatalogueResponse:
        header, content = read_upload(request_iterator)
        request_id = _request_id(header.request_id, "header.request_id")
        layer = layer_of(header.layer)
        region = catalogues.check_layer(header.admdvs, layer)
        self._hosts.ensure_hosted_here(
            self._hosts.catalogue_peer(region, "header.admdvs"), region, "the catalogue"
        )
        effective_date = required_day(header.effective_date, "header.effective_date")
        rows = parse_catalogue_csv(content)
        digest = hashlib.sha256(content).hexdigest()

        def effect(session: Session) -> catalogue_service_pb2.ImportCatalogueResponse:
            assert layer is not None
            version = catalogues.import_catalogue(
                session, region, layer, effective_date, rows, digest, datetime.now(UTC)
            )
            return catalogue_service_pb2.ImportCatalogueResponse(version=version_message(version))

        # The same header and file is the same request however the client chunked it.
        normalized = [
            catalogue_service_pb2.ImportCatalogueRequest(header=header),
            catalogue_service_pb2.ImportCatalogueRequest(csv_chunk=content),
        ]
        return _REQUESTS.run_once(
            self._database,
            request_id,
            "ImportCatalogue",
            normalized,
            catalogue_service_pb2.ImportCatalogueResponse,
            effect,
        )

    def LookupItems(
        self, request: catalogue_service_pb2.LookupItemsRequest, context: grpc.ServicerContext
    ) -> catalogue_service_pb2.LookupItemsResponse:
        codes = catalogues.check_codes(request.codes)
        day = required_day(request.date, "date")
        peer = self._hosts.catalogue_peer(request.admdvs, "admdvs")
        if peer is not None:
            return self._relay.pass_on(peer, "LookupItems", request, context)  # type: ignore[no-any-return]
        with self._database.unit_of_work() as uow:
            view = catalogues.view_on(uow.session, request.admdvs, day)
            found = catalogues.lookup(uow.session, self._cache, view, codes)
        overlay = view.version_of(catalogues.Layer.PROVINCIAL_OVERLAY)
        base = view.version_of(catalogues.Layer.NATIONAL_BASE)
        return catalogue_service_pb2.LookupItemsResponse(
            items=[item_message(found[code]) for code in codes if code in found],
            missing_codes=[code for code in codes if code not in found],
            overlay_version_id=overlay.version_id if overlay else "",
            base_version_id=base.version_id if base else "",
        )

    def ListVersions(
        self, request: catalogue_service_pb2.ListVersionsRequest, context: grpc.ServicerContext
    ) -> catalogue_service_pb2.ListVersionsResponse:
        size = page_size(request.page_size)
        with self._database.unit_of_work() as uow:
            versions, token = catalogues.list_versions(uow.session, request.admdvs, size, request.page_token)
        return catalogue_service_pb2.ListVersionsResponse(
            versions=[version_message(version) for version in versions], next_page_token=token
        )

    def _view(
        self, session: Session, ref: catalogue_service_pb2.CatalogueRef, field: str
    ) -> catalogues.CatalogueView:
        kind = ref.WhichOneof("ref")
        if kind == "version_id":
            return catalogues.version_view(session, ref.version_id, f"{field}.version_id")
        if kind == "region_on_date":
            day = required_day(ref.region_on_date.date, f"{field}.region_on_date.date")
            return catalogues.view_on(
                session, ref.region_on_date.admdvs, day, f"{field}.region_on_date.admdvs"
            )
        raise invalid("INVALID_ARGUMENT", field, "name a version_id or a region_on_date")

    def DiffCatalogues(
        self, request: catalogue_service_pb2.DiffCataloguesRequest, context: grpc.ServicerContext
    ) -> catalogue_service_pb2.DiffCataloguesResponse:
        codes = catalogues.check_codes(request.codes, required=False)
        size = page_size(request.page_size)
        with self._database.unit_of_work() as uow:
            left = self._view(uow.session, request.left, "left")
            right = self._view(uow.session, request.right, "right")
            differences, token = catalogues.diff(
                uow.session, self._cache, left, right, codes, size, request.page_token
            )
        return catalogue_service_pb2.DiffCataloguesResponse(
            differences=[
                catalogue_service_pb2.ItemDifference(
                    code=difference.code,
                    left=item_message(difference.left) if difference.left else None,
                    right=item_message(difference.right) if difference.right else None,
                    changed_fields=difference.changed_fields,
                )
                for difference in differences
            ],
            next_page_token=token,
        )


class PolicyServicer(policy_service_pb2_grpc.PolicyServiceServicer):
    """PolicyService: policy versions and estimates."""

    def __init__(self, database: Database, hosts: Hosts, finder: PolicyFinder, estimator: Estimator) -> None:
        self._database = database
        self._hosts = hosts
        self._finder = finder
        self._estimator = estimator

    def ImportPolicy(
        self, request: policy_service_pb2.ImportPolicyRequest, context: grpc.ServicerContext
    ) -> policy_service_pb2.ImportPolicyResponse:
        request_id = _request_id(request.request_id)
        region = policies.check_insured_region(request.insuplc_admdvs)
        self._hosts.ensure_hosted_here(
            self._hosts.policy_peer(region, "insuplc_admdvs"), region, "the policy"
        )
        insutype = policies.check_insutype(request.insutype)
        effective_date = required_day(request.effective_date, "effective_date")
        end_date = day_of(request.end_date, "end_date")
        document = policies.read_document(request.document, _FORMATS.get(request.format))

        def effect(session: Session) -> policy_service_pb2.ImportPolicyResponse:
            version = policies.import_policy(
                session, region, insutype, effective_date, end_date, document, datetime.now(UTC)
            )
            return policy_service_pb2.ImportPolicyResponse(policy=policy_message(version))

        return _REQUESTS.run_once(
            self._database,
            request_id,
            "ImportPolicy",
            [request],
            policy_service_pb2.ImportPolicyResponse,
            effect,
        )

    def GetPolicy(
        self, request: policy_service_pb2.GetPolicyRequest, context: grpc.ServicerContext
    ) -> policy_service_pb2.GetPolicyResponse:
        region = policies.check_insured_region(request.insuplc_admdvs)
        insutype = policies.check_insutype(request.insutype)
        day = required_day(request.date, "date")
        message = self._finder.message(region, insutype, day, deadline_s=remaining_s(context))
        return policy_service_pb2.GetPolicyResponse(policy=message)

    def ListPolicyVersions(
        self, request: policy_service_pb2.ListPolicyVersionsRequest, context: grpc.ServicerContext
    ) -> policy_service_pb2.ListPolicyVersionsResponse:
        region = policies.check_insured_region(request.insuplc_admdvs)
        insutype = policies.check_insutype(request.insutype) if request.insutype else ""
        size = page_size(request.page_size)
        with self._database.unit_of_work() as uow:
            versions, token = policies.list_policy_versions(
                uow.session, region, insutype, size, request.page_token
            )
        return policy_service_pb2.ListPolicyVersionsResponse(
            policies=[policy_message(version) for version in versions], next_page_token=token
        )

    def Estimate(
        self, request: policy_service_pb2.EstimateRequest, context: grpc.ServicerContext
    ) -> policy_service_pb2.EstimateResponse:
        command = estimate_command(request)
        try:
            outcome = self._estimator.estimate(command)
        except DomainError as error:
            raise proto_paths(error) from None
        return policy_service_pb2.EstimateResponse(
            result=settlement_result_to_proto(
                outcome.settlement,
                command.visit.service_date.year,
                outcome.catalogue_version,
                outcome.policy_version,
            )
        )


def register(server: grpc.Server, context: ServiceContext) -> Sequence[str]:
    """Add both services to the node's server, sharing one lookup cache and router; return their full names."""
    cache = VersionItemCache()
    router = context.router
    hosts = Hosts(router)
    finder = PolicyFinder(context.database, hosts)
    estimator = Estimator(context.database, cache, hosts, PeerSources(), finder)
    catalogue_relay = Relay(router, catalogue_service_pb2_grpc.CatalogueServiceStub, vouching=Vouching.NODE)
    catalogue_service_pb2_grpc.add_CatalogueServiceServicer_to_server(
        CatalogueServicer(context.database, cache, hosts, catalogue_relay), server
    )
    policy_service_pb2_grpc.add_PolicyServiceServicer_to_server(
        PolicyServicer(context.database, hosts, finder, estimator), server
    )
    names = [
        catalogue_service_pb2.DESCRIPTOR.services_by_name["CatalogueService"].full_name,
        policy_service_pb2.DESCRIPTOR.services_by_name["PolicyService"].full_name,
    ]
    # Lookups are answered at the treatment province, policies up the tree: both relay through the parent.
    context.needs_parent(*names)
    return names
