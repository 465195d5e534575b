"""Reads of personal and money data reach the audit trail like changes do; reads of reference data do not.

Calls go through the generated stubs to a node (SQLite and PostgreSQL) as its development
caller; the trail is read back through AuditService.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import grpc
import pytest
from google.protobuf import descriptor_pool

from yidi.audit.v1 import audit_service_pb2, audit_service_pb2_grpc
from yidi.catalogue.v1 import catalogue_service_pb2, catalogue_service_pb2_grpc
from yidi.filing.v1 import filing_service_pb2, filing_service_pb2_grpc
from yidi.registry.v1 import institution_registry_service_pb2 as registry_api
from yidi.registry.v1 import institution_registry_service_pb2_grpc as registry_grpc
from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as insured_grpc
from yidi.settlement.v1 import settlement_pb2, settlement_service_pb2, settlement_service_pb2_grpc
from yidi.type.v1 import person_pb2
from yidi_runtime.audit import PERSONAL_DATA_READS, mutating_methods
from yidi_runtime.interceptor import split_method


def test_every_audited_read_is_a_read_the_api_declares() -> None:
    pool = descriptor_pool.Default()
    services = {split_method(name)[0] for name in PERSONAL_DATA_READS}
    declared = {f"/{s}/{m.name}" for s in services for m in pool.FindServiceByName(s).methods}
    assert declared >= PERSONAL_DATA_READS
    assert not PERSONAL_DATA_READS & mutating_methods(services)


def recorded(channel: grpc.Channel) -> list[tuple[str, str, str]]:
    """(method, caller role, reason) of every record, in record order."""
    answer = audit_service_pb2_grpc.AuditServiceStub(channel).ListAuditRecords(
        audit_service_pb2.ListAuditRecordsRequest(), timeout=30
    )
    return [(record.method, record.caller, record.reason) for record in answer.records]


def _quietly(call: Callable[[], object]) -> None:
    with contextlib.suppress(grpc.RpcError):  # a refused read is recorded like an answered one
        call()


def test_reads_of_personal_and_money_data_are_recorded_and_reference_reads_are_not(
    channel: grpc.Channel,
) -> None:
    settlement = settlement_service_pb2_grpc.SettlementServiceStub(channel)
    insured = insured_grpc.InsuredSettlementServiceStub(channel)
    _quietly(
        lambda: settlement.GetSettlement(
            settlement_service_pb2.GetSettlementRequest(setl_id="s1"), timeout=30
        )
    )
    filing_service_pb2_grpc.FilingServiceStub(channel).ListFilings(
        filing_service_pb2.ListFilingsRequest(insuplc_admdvs="110000"), timeout=30
    )
    _quietly(  # a node-to-node read: the insured side of a settlement
        lambda: insured.GetAccumulators(
            insured_api.GetAccumulatorsRequest(psn_no="110000000001", year=2026), timeout=30
        )
    )
    registry_grpc.InstitutionRegistryServiceStub(channel).ListInstitutions(
        registry_api.ListInstitutionsRequest(), timeout=30
    )
    catalogue_service_pb2_grpc.CatalogueServiceStub(channel).ListVersions(
        catalogue_service_pb2.ListVersionsRequest(admdvs="110000"), timeout=30
    )

    assert recorded(channel) == [
        ("GetSettlement", "developer/developer", "NOT_FOUND"),
        ("ListFilings", "developer/developer", ""),
        ("GetAccumulators", "developer/developer", "PERSON_NOT_FOUND"),
    ]
    assert recorded(channel)[-1] == ("ListAuditRecords", "developer/developer", "")  # reading the trail, too


def test_a_read_made_in_process_for_a_recorded_call_is_not_recorded_again(channel: grpc.Channel) -> None:
    """VerifyPerson asks this node's own insured side (ResolvePerson), which asks its filing service
    (CheckEligibility): one row, the institution's read."""
    request = settlement_service_pb2.VerifyPersonRequest(
        envelope=settlement_pb2.Envelope(
            fixmedins_code="H11010100001", mdtrtarea_admvs="110101", insuplc_admdvs="110000"
        ),
        credential=person_pb2.Credential(mdtrt_cert_type="02", mdtrt_cert_no="131000195402270170"),
    )
    with pytest.raises(grpc.RpcError):
        settlement_service_pb2_grpc.SettlementServiceStub(channel).VerifyPerson(request, timeout=30)
    assert recorded(channel) == [("VerifyPerson", "developer/developer", "PERSON_NOT_FOUND")]
