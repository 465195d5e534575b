"""Inputs the fuzzing found answering INTERNAL or losing their reason, kept as plain regressions.

Each is sent to a fresh node (SQLite and PostgreSQL) and must be refused INVALID_ARGUMENT
with its reason and fields, or answered.
"""

from __future__ import annotations

import grpc
import pytest
from fuzz_support import check_refusal
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.type.date_pb2 import Date

from yidi.filing.v1 import filing_service_pb2, filing_service_pb2_grpc, insured_person_pb2
from yidi.registry.v1 import institution_registry_service_pb2 as registry_api
from yidi.registry.v1 import institution_registry_service_pb2_grpc as registry_grpc
from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as insured_grpc
from yidi.settlement.v1 import settlement_pb2
from yidi.settlement.v1 import settlement_service_pb2 as settlement_api
from yidi.settlement.v1 import settlement_service_pb2_grpc as settlement_grpc
from yidi_testing import error_details

AFTER_9999 = Timestamp(seconds=253_402_300_800)
BAD_NANOS = Timestamp(seconds=0, nanos=-1)
ROUTE = settlement_pb2.Route(origin_admdvs="110000", destination_admdvs="110000")  # the `channel` node


def _refusal(stub_call: grpc.UnaryUnaryMultiCallable, request: Message) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        stub_call(request, timeout=30)
    return refused.value


@pytest.mark.parametrize(
    "request_",
    [
        registry_api.ListSuspensionsRequest(active_at=AFTER_9999),
        registry_api.CheckInstitutionRequest(fixmedins_code="H11010500001", at_time=BAD_NANOS),
    ],
    ids=["ListSuspensions-active_at", "CheckInstitution-at_time"],
)
def test_a_timestamp_outside_its_range_is_refused_by_the_registry(
    channel: grpc.Channel, request_: Message
) -> None:
    stub = registry_grpc.InstitutionRegistryServiceStub(channel)
    error = _refusal(getattr(stub, request_.DESCRIPTOR.name.removesuffix("Request")), request_)
    assert check_refusal(_method(request_), error) == "INVALID_ARGUMENT"


def test_a_timestamp_outside_its_range_is_refused_by_settlement_listing(channel: grpc.Channel) -> None:
    request = settlement_api.ListSettlementsRequest(start_time=AFTER_9999)
    error = _refusal(settlement_grpc.SettlementServiceStub(channel).ListSettlements, request)
    assert check_refusal(_method(request), error) == "INVALID_ARGUMENT"


def test_suspensions_of_the_whole_country_are_listed(channel: grpc.Channel) -> None:
    answer = registry_grpc.InstitutionRegistryServiceStub(channel).ListSuspensions(
        registry_api.ListSuspensionsRequest(admdvs="000000"), timeout=30
    )
    assert list(answer.suspensions) == []


def test_a_refusal_naming_thousands_of_bad_fields_still_carries_its_reason(channel: grpc.Channel) -> None:
    """The status travels in trailers; quoting every bad field of a huge request used to overflow them."""
    request = filing_service_pb2.ImportInsuredPersonsRequest(
        request_id="fuzz-many-bad-persons",
        persons=[insured_person_pb2.InsuredPerson(certno="x" * 40)] * 5_000,
    )
    error = _refusal(filing_service_pb2_grpc.FilingServiceStub(channel).ImportInsuredPersons, request)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert check_refusal(_method(request), error) in {"INVALID_ARGUMENT", "INVALID_CODE"}


@pytest.mark.parametrize(
    "request_",
    [
        insured_api.RevertSettlementRequest(
            route=ROUTE, request_id="r1", original_request_id="o1", psn_no="p" * 32
        ),
        insured_api.RevertSettlementRequest(route=ROUTE, request_id="r2", original_request_id="o" * 65),
        insured_api.RevertSettlementRequest(route=ROUTE, request_id="r" * 65, original_request_id="o2"),
    ],
    ids=["psn_no", "original_request_id", "request_id"],
)
def test_an_identifier_wider_than_its_column_is_refused(channel: grpc.Channel, request_: Message) -> None:
    """SQLite ignores a column's width and PostgreSQL refuses it: both must answer INVALID_ARGUMENT."""
    error = _refusal(insured_grpc.InsuredSettlementServiceStub(channel).RevertSettlement, request_)
    assert check_refusal(_method(request_), error) == "INVALID_ARGUMENT"


def test_a_contribution_gap_overlapping_a_recorded_one_is_refused(channel: grpc.Channel) -> None:
    """Reopening a gap on the day a closed one began broke a unique key (INTERNAL)."""
    stub = filing_service_pb2_grpc.FilingServiceStub(channel)
    person = insured_person_pb2.InsuredPerson(
        certno="110101195001010017", psn_name="样例", insuplc_admdvs="110101", insutype="310", psn_type="1201"
    )
    stub.ImportInsuredPersons(
        filing_service_pb2.ImportInsuredPersonsRequest(request_id="gap-import", persons=[person]), timeout=30
    )
    lookup = insured_person_pb2.PersonLookup(certno=person.certno)
    first, resumed = Date(year=2022, month=7, day=1), Date(year=2022, month=8, day=1)
    for number, change in enumerate([{"interrupted_from": first}, {"resumed_on": resumed}]):
        request = filing_service_pb2.UpdateInsuredStatusRequest(
            request_id=f"gap-{number}", person=lookup, **change
        )
        stub.UpdateInsuredStatus(request, timeout=30)
    again = filing_service_pb2.UpdateInsuredStatusRequest(
        request_id="gap-2", person=lookup, interrupted_from=first
    )
    error = _refusal(stub.UpdateInsuredStatus, again)
    assert check_refusal(_method(again), error) == "INVALID_ARGUMENT"
    assert error_details(error)["BadRequest"].field_violations[0].field == "interrupted_from"


def _method(request: Message) -> MethodDescriptor:
    """The method taking ``request`` (each request type belongs to exactly one RPC)."""
    service = next(iter(request.DESCRIPTOR.file.services_by_name.values()))
    return next(m for m in service.methods if m.input_type is request.DESCRIPTOR)
