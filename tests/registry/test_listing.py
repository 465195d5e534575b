"""ListInstitutions: every filter, keyset pages in code order, and refused page tokens."""

from __future__ import annotations

import grpc
import pytest
from registry_builders import (
    CHRONIC,
    INPATIENT,
    OUTPATIENT,
    PURCHASE,
    SPECIAL,
    day,
    hospital,
    refusal,
    register,
    service,
    stub,
)

from yidi.registry.v1 import institution_pb2 as pb
from yidi.registry.v1 import institution_registry_service_pb2 as api
from yidi.registry.v1 import institution_registry_service_pb2_grpc as api_grpc

SAMPLE = [
    hospital("H11010100001", service(INPATIENT), service(OUTPATIENT), service(CHRONIC, disease="M01600")),
    hospital("H11010200001", service(INPATIENT), level="2", accepts_cross_province=False),
    hospital("H11010500001", service(CHRONIC, disease="M00503"), service(OUTPATIENT, opened="2030-01-01")),
    hospital("H11010500002", service(OUTPATIENT), level="1", status=pb.INSTITUTION_STATUS_CLOSED),
    hospital("P11010500001", service(PURCHASE), service(SPECIAL)),
    hospital("H11011200001", service(OUTPATIENT, closed="2025-01-01"), level="2"),
]


def codes(registry: api_grpc.InstitutionRegistryServiceStub, **filters: object) -> list[str]:
    response = registry.ListInstitutions(api.ListInstitutionsRequest(**filters))  # type: ignore[arg-type]
    assert not response.next_page_token
    return [institution.fixmedins_code for institution in response.institutions]


def test_filters_select_by_region_type_level_service_disease_status_and_acceptance(
    channel: grpc.Channel,
) -> None:
    registry = stub(channel)
    register(registry, *SAMPLE)
    assert codes(registry) == sorted(i.fixmedins_code for i in SAMPLE)
    assert codes(registry, admdvs="110105") == ["H11010500001", "H11010500002", "P11010500001"]
    assert codes(registry, admdvs="110000", type=pb.INSTITUTION_TYPE_PHARMACY) == ["P11010500001"]
    assert codes(registry, admdvs="120000") == []
    assert codes(registry, levels=["3"]) == ["H11010100001", "H11010500001"]
    assert codes(registry, levels=["1", "2"], admdvs="110105") == ["H11010500002"]
    assert codes(registry, service=OUTPATIENT, open_on=day("2026-06-01")) == ["H11010100001", "H11010500002"]
    assert codes(registry, service=OUTPATIENT, open_on=day("2024-06-01")) == [
        "H11010100001",
        "H11010500002",
        "H11011200001",
    ]
    assert codes(
        registry, service=OUTPATIENT, open_on=day("2030-06-01"), status=pb.INSTITUTION_STATUS_ACTIVE
    ) == [
        "H11010100001",
        "H11010500001",
    ]
    assert codes(registry, chronic_disease="M01603") == ["H11010100001"]
    assert codes(registry, chronic_disease="M00503") == ["H11010500001"]
    assert codes(registry, chronic_disease="M00500") == []
    assert codes(registry, service=SPECIAL) == ["P11010500001"]
    assert codes(registry, status=pb.INSTITUTION_STATUS_CLOSED) == ["H11010500002"]
    assert "H11010200001" not in codes(registry, cross_province_only=True)


def test_pages_follow_code_order_without_gaps_or_repeats(channel: grpc.Channel) -> None:
    registry = stub(channel)
    register(registry, *SAMPLE)
    seen, token, pages = [], "", 0
    while True:
        response = registry.ListInstitutions(api.ListInstitutionsRequest(page_size=4, page_token=token))
        seen += [institution.fixmedins_code for institution in response.institutions]
        pages += 1
        token = response.next_page_token
        if not token:
            break
    assert (seen, pages) == (sorted(i.fixmedins_code for i in SAMPLE), 2)
    first = registry.ListInstitutions(api.ListInstitutionsRequest(page_size=2, admdvs="110000"))
    register(registry, hospital("H11010100000"))
    after = registry.ListInstitutions(
        api.ListInstitutionsRequest(page_size=2, admdvs="110000", page_token=first.next_page_token)
    )
    assert [i.fixmedins_code for i in after.institutions] == ["H11010500001", "H11010500002"]


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"page_token": "not-a-token"}, "page_token"),
        ({"page_size": -1}, "page_size"),
        ({"levels": ["4"]}, "levels[0]"),
        ({"admdvs": "11"}, "admdvs"),
        ({"chronic_disease": "M01600", "service": INPATIENT}, "chronic_disease"),
    ],
)
def test_bad_list_requests_are_refused(
    channel: grpc.Channel, request_fields: dict[str, object], field: str
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        stub(channel).ListInstitutions(api.ListInstitutionsRequest(**request_fields))  # type: ignore[arg-type]
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in refusal(refused.value)[2]


def test_a_token_is_refused_with_other_filters(channel: grpc.Channel) -> None:
    registry = stub(channel)
    register(registry, *SAMPLE)
    token = registry.ListInstitutions(api.ListInstitutionsRequest(page_size=1)).next_page_token
    with pytest.raises(grpc.RpcError) as refused:
        registry.ListInstitutions(api.ListInstitutionsRequest(page_size=1, page_token=token, levels=["3"]))
    assert refusal(refused.value)[2] == ["page_token"]
