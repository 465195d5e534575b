"""Registering, reading and updating institutions: validation, idempotency, region permission."""

from __future__ import annotations

import grpc
import pytest
from registry_builders import (
    CHRONIC,
    INPATIENT,
    OUTPATIENT,
    PURCHASE,
    hospital,
    refusal,
    request_id,
    service,
    stub,
)

from yidi.registry.v1 import institution_pb2 as pb
from yidi.registry.v1 import institution_registry_service_pb2 as api


def test_register_then_get_and_update_bumps_the_version(channel: grpc.Channel) -> None:
    registry = stub(channel)
    record = hospital(
        "H11010500001", service(INPATIENT), service(CHRONIC, disease="M01600", opened="2024-03-01")
    )
    created = registry.RegisterInstitution(
        api.RegisterInstitutionRequest(request_id=request_id(), institution=record)
    ).institution
    assert created.version == 1 and created.update_time.seconds > 0
    assert [s.kind for s in created.services] == [INPATIENT, CHRONIC]

    got = registry.GetInstitution(api.GetInstitutionRequest(fixmedins_code="H11010500001")).institution
    assert got == created

    changed = hospital("H11010500001", service(OUTPATIENT), fixmedins_name="renamed", level="2")
    updated = registry.UpdateInstitution(
        api.UpdateInstitutionRequest(request_id=request_id(), institution=changed)
    ).institution
    assert (updated.version, updated.fixmedins_name, updated.level) == (2, "renamed", "2")
    assert [s.kind for s in updated.services] == [OUTPATIENT]


def test_a_repeated_request_gets_the_original_answer_and_a_reused_id_is_refused(
    channel: grpc.Channel,
) -> None:
    registry = stub(channel)
    request = api.RegisterInstitutionRequest(request_id=request_id(), institution=hospital("H11010500002"))
    first = registry.RegisterInstitution(request)
    assert registry.RegisterInstitution(request) == first
    other = api.RegisterInstitutionRequest(
        request_id=request.request_id, institution=hospital("H11010500003")
    )
    with pytest.raises(grpc.RpcError) as refused:
        registry.RegisterInstitution(other)
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert refusal(refused.value)[0] == "DUPLICATE_REQUEST"
    with pytest.raises(grpc.RpcError) as taken:
        registry.RegisterInstitution(
            api.RegisterInstitutionRequest(request_id=request_id(), institution=hospital("H11010500002"))
        )
    assert refusal(taken.value)[0] == "ALREADY_EXISTS"


INVALID = [
    (hospital("H1101050001"), "INVALID_CODE", "institution.fixmedins_code"),
    (hospital("H11010500001", admdvs="110106"), "INVALID_CODE", "institution.fixmedins_code"),
    (
        hospital("H11010500001", type=pb.INSTITUTION_TYPE_PHARMACY, level=""),
        "INVALID_CODE",
        "institution.fixmedins_code",
    ),
    (hospital("H11010500001", level="4"), "INVALID_ARGUMENT", "institution.level"),
    (hospital("H11010500001", fixmedins_name=" "), "INVALID_ARGUMENT", "institution.fixmedins_name"),
    (
        hospital("H11010500001", service(CHRONIC, disease="M016")),
        "INVALID_CODE",
        "institution.services[0].chronic_disease",
    ),
    (hospital("H11010500001", service(PURCHASE)), "INVALID_ARGUMENT", "institution.services[0].kind"),
    (
        hospital("H11010500001", service(INPATIENT), service(INPATIENT)),
        "INVALID_ARGUMENT",
        "institution.services[1]",
    ),
    (
        hospital("H11010500001", pb.OpenedService(kind=INPATIENT)),
        "INVALID_ARGUMENT",
        "institution.services[0].open_date",
    ),
]


def test_invalid_records_are_refused_with_the_field_named_and_nothing_stored(channel: grpc.Channel) -> None:
    registry = stub(channel)
    for record, reason, field in INVALID:
        with pytest.raises(grpc.RpcError) as refused:
            registry.RegisterInstitution(
                api.RegisterInstitutionRequest(request_id=request_id(), institution=record)
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        got_reason, _, fields = refusal(refused.value)
        assert (got_reason, field in fields) == (reason, True), (record, fields)
    assert not registry.ListInstitutions(api.ListInstitutionsRequest()).institutions


def test_a_node_only_changes_institutions_in_its_own_region(channel: grpc.Channel) -> None:
    registry = stub(channel)
    with pytest.raises(grpc.RpcError) as refused:
        registry.RegisterInstitution(
            api.RegisterInstitutionRequest(request_id=request_id(), institution=hospital("H33040200001"))
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refusal(refused.value)[0] == "PERMISSION_DENIED_REGION"


def test_unknown_institutions_are_not_found(channel: grpc.Channel) -> None:
    registry = stub(channel)
    for call in (
        lambda: registry.GetInstitution(api.GetInstitutionRequest(fixmedins_code="H11010599999")),
        lambda: registry.UpdateInstitution(
            api.UpdateInstitutionRequest(request_id=request_id(), institution=hospital("H11010599999"))
        ),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            call()
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
