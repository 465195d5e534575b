"""Bulk CSV import (all-or-nothing), the coverage report, and SyncInstitutions into the master copy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from registry_builders import (
    CHRONIC,
    INPATIENT,
    OUTPATIENT,
    SPECIAL,
    day,
    hospital,
    refusal,
    register,
    request_id,
    service,
    stub,
)

from yidi.registry.v1 import institution_pb2 as pb
from yidi.registry.v1 import institution_registry_service_pb2 as api
from yidi.registry.v1 import institution_registry_service_pb2_grpc as api_grpc
from yidi_runtime.server import Node
from yidi_services.node import start_node
from yidi_testing import settings_for

HEADER = (
    "fixmedins_code,fixmedins_name,type,level,admdvs,address,status,"
    "accepts_cross_province,accepts_in_province,services\n"
)
GOOD = HEADER + (
    "H11010100001,Sample Hospital A,medical,3,110101,sample,active,true,true,"
    '"inpatient@2024-01-01;general_outpatient@2024-01-01;chronic_outpatient:M01600@2024-03-01"\n'
    "P11010500001,Sample Pharmacy,pharmacy,,110105,sample,active,true,false,pharmacy_purchase@2024-01-01\n"
)


def chunks(data: str, size: int = 7) -> list[bytes]:
    encoded = data.encode()
    return [encoded[i : i + size] for i in range(0, len(encoded), size)]


def import_csv(
    registry: api_grpc.InstitutionRegistryServiceStub, data: str, region: str = "110000", rid: str = ""
) -> api.ImportInstitutionsResponse:
    header = api.ImportInstitutionsHeader(request_id=rid or request_id(), admdvs=region)
    messages = [api.ImportInstitutionsRequest(header=header)]
    messages += [api.ImportInstitutionsRequest(csv_chunk=chunk) for chunk in chunks(data)]
    return registry.ImportInstitutions(iter(messages))


def all_codes(registry: api_grpc.InstitutionRegistryServiceStub) -> list[str]:
    return [i.fixmedins_code for i in registry.ListInstitutions(api.ListInstitutionsRequest()).institutions]


def test_import_creates_then_updates_only_changed_rows_and_repeats_safely(channel: grpc.Channel) -> None:
    registry = stub(channel)
    rid = request_id()
    first = import_csv(registry, GOOD, rid=rid)
    assert (first.row_count, first.created_count, first.updated_count) == (2, 2, 0)
    assert import_csv(registry, GOOD, rid=rid) == first
    pharmacy = registry.GetInstitution(api.GetInstitutionRequest(fixmedins_code="P11010500001")).institution
    assert (pharmacy.level, pharmacy.accepts_in_province, pharmacy.version) == ("", False, 1)
    hospital_a = registry.GetInstitution(api.GetInstitutionRequest(fixmedins_code="H11010100001")).institution
    assert [(s.kind, s.chronic_disease) for s in hospital_a.services] == [
        (INPATIENT, ""),
        (OUTPATIENT, ""),
        (CHRONIC, "M01600"),
    ]
    again = import_csv(registry, GOOD.replace("Sample Pharmacy", "Renamed Pharmacy"))
    assert (again.row_count, again.created_count, again.updated_count) == (2, 0, 1)
    renamed = registry.GetInstitution(api.GetInstitutionRequest(fixmedins_code="P11010500001")).institution
    assert (renamed.fixmedins_name, renamed.version) == ("Renamed Pharmacy", 2)


def test_a_bad_import_names_every_bad_cell_and_stores_nothing(channel: grpc.Channel) -> None:
    registry = stub(channel)
    bad = GOOD + (
        "H11010200001,Sample B,medical,5,110102,sample,active,maybe,true,inpatient@2024-01-01\n"
        "H11010200002,Sample C,medical,2,110102,sample,active,true,true,inpatient-2024\n"
        "H33040200001,Sample D,medical,2,330402,sample,active,true,true,\n"
        "H11010100001,Sample A again,medical,3,110101,sample,active,true,true,\n"
        "H11010200003,Sample E,medical,2,110102,sample,active,true,true,chronic_outpatient:X1@2024-01-01\n"
    )
    with pytest.raises(grpc.RpcError) as refused:
        import_csv(registry, bad)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refusal(refused.value)[2] == [
        "row 4, column accepts_cross_province",
        "row 4, column level",
        "row 5, column services",
        "row 6, column admdvs",
        "row 7, column fixmedins_code",
        "row 8, column services",
    ]
    assert all_codes(registry) == []
    with pytest.raises(grpc.RpcError) as outside:
        import_csv(registry, GOOD, region="330000")
    assert refusal(outside.value)[0] == "PERMISSION_DENIED_REGION"
    with pytest.raises(grpc.RpcError) as headless:
        import_csv(registry, GOOD.replace("address,", ""))
    assert refusal(headless.value)[2] == ["row 1, column address"]


def test_coverage_counts_services_per_region_and_lists_uncovered_counties(channel: grpc.Channel) -> None:
    registry = stub(channel)
    register(
        registry,
        hospital("H11010100001", service(INPATIENT), service(OUTPATIENT), service(CHRONIC, disease="M01600")),
        hospital("H11010100002", service(OUTPATIENT), service(CHRONIC, disease="M01600")),
        hospital("H11010500001", service(INPATIENT), service(OUTPATIENT, opened="2030-01-01")),
        hospital("P11010500001", service(SPECIAL)),
        hospital("H11010800001", service(OUTPATIENT), status=pb.INSTITUTION_STATUS_CLOSED),
    )
    report = registry.CoverageReport(
        api.CoverageReportRequest(
            admdvs="110000", as_of=day("2026-06-01"), expected_counties=["110101", "110109"]
        )
    )
    rows = {row.admdvs: row for row in report.rows}
    assert list(rows) == ["110000", "110100", "110101", "110105", "110108", "110109"]
    assert (rows["110000"].region_level, rows["110100"].region_level, rows["110101"].region_level) == (
        "province",
        "city",
        "county",
    )
    province = rows["110000"]
    assert (province.institution_count, province.inpatient_count, province.general_outpatient_count) == (
        4,
        2,
        2,
    )
    assert (province.special_drugs_count, dict(province.chronic_counts)) == (1, {"M01600": 2})
    assert (rows["110108"].institution_count, rows["110109"].institution_count) == (0, 0)
    assert list(report.counties_without_outpatient) == ["110105", "110108", "110109"]
    later = registry.CoverageReport(api.CoverageReportRequest(admdvs="110100", as_of=day("2030-06-01")))
    assert list(later.counties_without_outpatient) == ["110108"]
    with pytest.raises(grpc.RpcError) as refused:
        registry.CoverageReport(
            api.CoverageReportRequest(admdvs="110000", expected_counties=["330402", "110100"])
        )
    assert refusal(refused.value)[2] == ["expected_counties[0]", "expected_counties[1]"]


@pytest.fixture
def national(tmp_path: Path, database_url: str | None) -> Iterator[Node]:
    started = start_node(
        settings_for(
            tmp_path, database_url, auto_migrate=True, role="national", region="000000", services="registry"
        )
    )
    yield started
    started.stop(0)


def synced(version: int, name: str, code: str = "H33040200001") -> pb.Institution:
    record = hospital(code, service(INPATIENT if code.startswith("H") else SPECIAL), fixmedins_name=name)
    record.version = version
    return record


def test_sync_keeps_the_newest_version_and_repeats_change_nothing(national: Node) -> None:
    with grpc.insecure_channel(national.address) as channel:
        registry = stub(channel)

        def push(*records: pb.Institution, rid: str = "") -> api.SyncInstitutionsResponse:
            request = api.SyncInstitutionsRequest(
                request_id=rid or request_id(), source_admdvs="330000", institutions=list(records)
            )
            return registry.SyncInstitutions(request)

        rid = request_id()
        first = push(synced(2, "v2"), synced(1, "v1"), synced(1, "other", "P33040200001"), rid=rid)
        assert (first.applied_count, first.stale_count) == (2, 1)
        assert push(synced(2, "v2"), synced(1, "v1"), synced(1, "other", "P33040200001"), rid=rid) == first
        assert (push(synced(1, "older")).applied_count, push(synced(2, "same")).stale_count) == (0, 1)
        assert push(synced(3, "v3")).applied_count == 1
        held = registry.GetInstitution(api.GetInstitutionRequest(fixmedins_code="H33040200001")).institution
        assert (held.fixmedins_name, held.version) == ("v3", 3)

        with pytest.raises(grpc.RpcError) as outside:
            registry.SyncInstitutions(
                api.SyncInstitutionsRequest(
                    request_id=request_id(), source_admdvs="110000", institutions=[synced(4, "x")]
                )
            )
        assert refusal(outside.value)[0] == "PERMISSION_DENIED_REGION"
        with pytest.raises(grpc.RpcError) as unversioned:
            push(synced(0, "x"))
        assert refusal(unversioned.value)[2] == ["institutions[0].version"]
