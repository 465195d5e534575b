"""CheckInstitution and suspension notices (停机公告): windows before, during and after, scopes, revocation."""

from __future__ import annotations

import grpc
import pytest
from registry_builders import (
    CHRONIC,
    INPATIENT,
    OUTPATIENT,
    PURCHASE,
    day,
    hospital,
    instant,
    refusal,
    register,
    request_id,
    service,
    stub,
)

from yidi.registry.v1 import institution_pb2 as pb
from yidi.registry.v1 import institution_registry_service_pb2 as api
from yidi.registry.v1 import institution_registry_service_pb2_grpc as api_grpc

HOSPITAL = "H11010100001"
PHARMACY = "P11010500001"


def check(
    registry: api_grpc.InstitutionRegistryServiceStub,
    code: str = HOSPITAL,
    med_type: str = "21",
    on: str = "2026-01-10",
    at: str = "2026-01-10T08:00:00+00:00",
    **fields: str,
) -> api.CheckInstitutionResponse:
    request = api.CheckInstitutionRequest(
        fixmedins_code=code, med_type=med_type, service_date=day(on), at_time=instant(at), **fields
    )
    return registry.CheckInstitution(request)


def refused(call: object) -> tuple[grpc.StatusCode, str, dict[str, str], list[str]]:
    with pytest.raises(grpc.RpcError) as error:
        call()  # type: ignore[operator]
    return (error.value.code(), *refusal(error.value))


def publish(
    registry: api_grpc.InstitutionRegistryServiceStub, start: str, end: str, **scope: str
) -> pb.Suspension:
    notice = pb.Suspension(start_time=instant(start), end_time=instant(end), reason="HIS upgrade", **scope)
    return registry.PublishSuspension(
        api.PublishSuspensionRequest(request_id=request_id(), suspension=notice)
    ).suspension


@pytest.fixture
def registry(channel: grpc.Channel) -> api_grpc.InstitutionRegistryServiceStub:
    registry = stub(channel)
    register(
        registry,
        hospital(HOSPITAL, service(INPATIENT), service(OUTPATIENT), service(CHRONIC, "2024-03-01", "M01600")),
        hospital(PHARMACY, service(PURCHASE)),
        hospital("H11010500002", service(INPATIENT), accepts_cross_province=False),
        hospital("H11010500003", service(INPATIENT), status=pb.INSTITUTION_STATUS_CLOSED),
    )
    return registry


def test_check_answers_the_opened_service_or_a_stable_reason(
    registry: api_grpc.InstitutionRegistryServiceStub,
) -> None:
    answer = check(registry, insuplc_admdvs="130100")
    assert (answer.institution.fixmedins_code, answer.service.kind) == (HOSPITAL, INPATIENT)
    assert check(registry, med_type="13").service.kind == OUTPATIENT
    assert check(registry, med_type="14", chronic_disease="M01603").service.chronic_disease == "M01600"
    assert check(registry, code=PHARMACY, med_type="41").service.kind == PURCHASE

    not_enabled = "SERVICE_NOT_ENABLED"
    assert refused(lambda: check(registry, med_type="14", chronic_disease="M03900"))[1] == not_enabled
    assert (
        refused(lambda: check(registry, med_type="14", chronic_disease="M01600", on="2024-02-29"))[1]
        == not_enabled
    )
    assert refused(lambda: check(registry, med_type="41"))[:2] == (
        grpc.StatusCode.FAILED_PRECONDITION,
        not_enabled,
    )

    for code in ("H11010599999", "H11010500003"):
        assert refused(lambda code=code: check(registry, code=code))[1] == "INSTITUTION_NOT_NETWORKED"
    _, reason, metadata, _ = refused(lambda: check(registry, code="H11010500002", insuplc_admdvs="330402"))
    assert (reason, metadata["scope"]) == ("INSTITUTION_NOT_NETWORKED", "cross_province")
    assert check(registry, code="H11010500002", insuplc_admdvs="110108").service.kind == INPATIENT


def test_check_refuses_malformed_input_by_field(registry: api_grpc.InstitutionRegistryServiceStub) -> None:
    assert refused(lambda: check(registry, med_type="99"))[1:4:2] == ("INVALID_CODE", ["med_type"])
    assert refused(lambda: check(registry, med_type="14"))[3] == ["chronic_disease"]
    no_date = api.CheckInstitutionRequest(fixmedins_code=HOSPITAL, med_type="21")
    assert refused(lambda: registry.CheckInstitution(no_date))[3] == ["service_date"]


def test_a_notice_suspends_settlement_only_inside_its_window(
    registry: api_grpc.InstitutionRegistryServiceStub,
) -> None:
    notice = publish(
        registry, "2026-01-10T00:00:00+00:00", "2026-01-11T00:00:00+00:00", fixmedins_code=HOSPITAL
    )
    assert notice.suspension_id and not notice.revoked
    assert check(registry, at="2026-01-09T23:59:59+00:00").service.kind == INPATIENT
    code, reason, metadata, _ = refused(lambda: check(registry, at="2026-01-10T12:00:00+00:00"))
    assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "INSTITUTION_SUSPENDED")
    assert metadata["end_time"] == "2026-01-11T00:00:00+00:00"
    assert metadata["suspension_id"] == notice.suspension_id
    assert check(registry, at="2026-01-11T00:00:00+00:00").service.kind == INPATIENT
    assert check(registry, code=PHARMACY, med_type="41", at="2026-01-10T12:00:00+00:00")


def test_a_region_notice_covers_every_institution_below_it_until_revoked(
    registry: api_grpc.InstitutionRegistryServiceStub,
) -> None:
    during = "2026-02-01T12:00:00+00:00"
    publish(registry, "2026-02-01T00:00:00+00:00", "2026-02-02T00:00:00+00:00", admdvs="110108")
    assert check(registry, at=during)
    city = publish(registry, "2026-02-01T00:00:00+00:00", "2026-02-03T00:00:00+00:00", admdvs="110100")
    assert refused(lambda: check(registry, at=during))[2]["end_time"] == "2026-02-03T00:00:00+00:00"
    assert (
        refused(lambda: check(registry, code=PHARMACY, med_type="41", at=during))[1]
        == "INSTITUTION_SUSPENDED"
    )
    revoke = api.RevokeSuspensionRequest(request_id=request_id(), suspension_id=city.suspension_id)
    assert registry.RevokeSuspension(revoke).suspension.revoked
    assert registry.RevokeSuspension(revoke).suspension.revoked
    assert check(registry, at=during)
    missing = api.RevokeSuspensionRequest(request_id=request_id(), suspension_id="nope")
    assert refused(lambda: registry.RevokeSuspension(missing))[1] == "NOT_FOUND"


def ids(registry: api_grpc.InstitutionRegistryServiceStub, **filters: object) -> list[str]:
    response = registry.ListSuspensions(api.ListSuspensionsRequest(**filters))  # type: ignore[arg-type]
    return [notice.suspension_id for notice in response.suspensions]


def test_notices_are_listed_latest_first_with_filters_and_pages(
    registry: api_grpc.InstitutionRegistryServiceStub,
) -> None:
    early = publish(
        registry, "2026-03-01T00:00:00+00:00", "2026-03-02T00:00:00+00:00", fixmedins_code=PHARMACY
    )
    middle = publish(registry, "2026-03-05T00:00:00+00:00", "2026-03-06T00:00:00+00:00", admdvs="110000")
    late = publish(registry, "2026-03-09T00:00:00+00:00", "2026-03-10T00:00:00+00:00", admdvs="110108")
    registry.RevokeSuspension(
        api.RevokeSuspensionRequest(request_id=request_id(), suspension_id=late.suspension_id)
    )
    assert ids(registry) == [middle.suspension_id, early.suspension_id]
    everything = [late.suspension_id, middle.suspension_id, early.suspension_id]
    assert ids(registry, include_revoked=True) == everything
    assert ids(registry, active_at=instant("2026-03-05T10:00:00+00:00")) == [middle.suspension_id]
    assert ids(registry, admdvs="110105") == [early.suspension_id]
    assert ids(registry, fixmedins_code=PHARMACY) == [middle.suspension_id, early.suspension_id]
    first = registry.ListSuspensions(api.ListSuspensionsRequest(include_revoked=True, page_size=2))
    rest = registry.ListSuspensions(
        api.ListSuspensionsRequest(include_revoked=True, page_size=2, page_token=first.next_page_token)
    )
    assert [n.suspension_id for n in (*first.suspensions, *rest.suspensions)] == everything
    assert not rest.next_page_token


def test_bad_notices_are_refused(registry: api_grpc.InstitutionRegistryServiceStub) -> None:
    start, end = "2026-04-01T00:00:00+00:00", "2026-04-02T00:00:00+00:00"
    assert refused(lambda: publish(registry, start, end))[3] == ["suspension.scope"]
    assert refused(lambda: publish(registry, end, start, admdvs="110000"))[3] == ["suspension.end_time"]
    assert refused(lambda: publish(registry, start, end, admdvs="11"))[1] == "INVALID_CODE"
    assert refused(lambda: publish(registry, start, end, admdvs="330000"))[1] == "PERMISSION_DENIED_REGION"
