"""CatalogueService through its generated stub: versions by date, overlays, imports, diffs, paging."""

from __future__ import annotations

import grpc
import pytest
from conftest import ImportCsv, day, request_id

from yidi.catalogue.v1 import catalogue_pb2, catalogue_service_pb2
from yidi_testing import error_details

ACARBOSE = "XA10BFA022A001010100001"
REPAGLINIDE = "XA10BXR023A001010100002"
BED = "001102000010000"
STENT = "C0203010340000000001"

BASE_2025 = (
    f"{ACARBOSE},阿卡波糖片,drug,01,,,,,,\n"
    f"{REPAGLINIDE},瑞格列奈片,drug,02,0.10,,,,,\n"
    f"{BED},床位费,service,01,,,,,,\n"
    f"{STENT},冠脉支架,consumable,03,,,,,,\n"
)
BASE_2026 = (
    f"{ACARBOSE},阿卡波糖片,drug,01,,,,,,\n"
    f"{REPAGLINIDE},瑞格列奈片,drug,02,0.05,,,,,\n"
    f"{BED},床位费,service,01,,80.00,21;22,,,2026-06-30\n"
)
OVERLAY_2025 = (
    f"{REPAGLINIDE},瑞格列奈片,drug,01,,,,,,\n{STENT},冠脉支架,consumable,02,0.20,9000,21,I21;I25,,\n"
)


def lookup(catalogue, admdvs: str, on: str, *codes: str) -> catalogue_service_pb2.LookupItemsResponse:
    return catalogue.LookupItems(
        catalogue_service_pb2.LookupItemsRequest(admdvs=admdvs, codes=codes, date=day(on)), timeout=10
    )


def by_code(response: catalogue_service_pb2.LookupItemsResponse) -> dict[str, catalogue_pb2.CatalogueItem]:
    return {item.code: item for item in response.items}


def test_lookup_uses_the_versions_in_force_and_the_overlay_before_the_base(
    catalogue, import_csv: ImportCsv
) -> None:
    base_2025 = import_csv("000000", "2025-01-01", BASE_2025).version
    base_2026 = import_csv("000000", "2026-01-01", BASE_2026).version
    overlay = import_csv("110000", "2025-07-01", OVERLAY_2025).version
    assert base_2025.layer == catalogue_pb2.CATALOGUE_LAYER_NATIONAL_BASE
    assert overlay.version_id.startswith("110000@2025-07-01#") and overlay.item_count == 2

    before_overlay = lookup(catalogue, "110105", "2025-03-01", REPAGLINIDE, STENT)
    assert (before_overlay.base_version_id, before_overlay.overlay_version_id) == (base_2025.version_id, "")
    assert by_code(before_overlay)[REPAGLINIDE].chrgitm_lv == "02"

    in_2025 = lookup(
        catalogue, "110105", "2025-12-31", REPAGLINIDE, STENT, ACARBOSE, "XA10BFA022A001010199999"
    )
    items = by_code(in_2025)
    assert (in_2025.overlay_version_id, in_2025.base_version_id) == (overlay.version_id, base_2025.version_id)
    assert [item.code for item in in_2025.items] == [REPAGLINIDE, STENT, ACARBOSE]
    assert items[REPAGLINIDE].chrgitm_lv == "01"
    assert items[REPAGLINIDE].source == catalogue_pb2.ITEM_SOURCE_PROVINCIAL
    assert items[STENT].selfpay_prop == "0.20" and items[STENT].pric_uplmt_amt == "9000"
    assert list(items[STENT].restriction.diagnosis_prefixes) == ["I21", "I25"]
    assert items[ACARBOSE].source == catalogue_pb2.ITEM_SOURCE_NATIONAL
    assert list(in_2025.missing_codes) == ["XA10BFA022A001010199999"]

    in_2026 = lookup(catalogue, "110000", "2026-03-01", REPAGLINIDE, STENT, BED)
    assert in_2026.base_version_id == base_2026.version_id
    assert by_code(in_2026)[STENT].source == catalogue_pb2.ITEM_SOURCE_PROVINCIAL
    assert by_code(in_2026)[BED].pric_uplmt_amt == "80.00"
    after_validity = lookup(catalogue, "110000", "2026-07-01", BED)
    assert list(after_validity.missing_codes) == [BED]

    other_province = lookup(catalogue, "330400", "2026-03-01", REPAGLINIDE)
    assert (
        other_province.overlay_version_id == ""
        and by_code(other_province)[REPAGLINIDE].selfpay_prop == "0.05"
    )


def test_lookup_with_no_version_in_force_is_refused_with_its_reason(catalogue, import_csv: ImportCsv) -> None:
    import_csv("110000", "2026-01-01", BASE_2025)
    with pytest.raises(grpc.RpcError) as refused:
        lookup(catalogue, "110000", "2025-12-31", BED)
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_details(refused.value)["ErrorInfo"].reason == "NO_CATALOGUE_VERSION"
    with pytest.raises(grpc.RpcError) as bad:
        lookup(catalogue, "11000", "2026-02-01", BED, "not-a-code")
    fields = {v.field for v in error_details(bad.value)["BadRequest"].field_violations}
    assert "codes[1]" in fields


def test_a_bad_import_names_every_bad_cell_and_stores_nothing(catalogue, import_csv: ImportCsv) -> None:
    rows = (
        f"{ACARBOSE},阿卡波糖片,drug,01,,,,,,\n"
        f"{REPAGLINIDE},瑞格列奈片,drug,04,,,,,,\n"
        f"X12,坏编码,drug,01,,,,,,\n"
        f"{BED},床位费,drug,01,0.10,abc,99,e1x,2026-13-01,\n"
        f"{ACARBOSE},重复,drug,01,,,,,,\n"
        f"{BED},床位费,drug,01,0.10,,,,,\n"
    )
    with pytest.raises(grpc.RpcError) as refused:
        import_csv("110000", "2026-01-01", rows)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = {v.field: v.description for v in error_details(refused.value)["BadRequest"].field_violations}
    assert set(violations) == {
        "rows[1].chrgitm_lv",
        "rows[2].code",
        "rows[3].pric_uplmt_amt",
        "rows[3].restriction_med_types",
        "rows[3].restriction_diagnosis_prefixes",
        "rows[3].valid_from",
        "rows[4].code",
        "rows[5].kind",
        "rows[5].selfpay_prop",
    }
    assert violations["rows[1].chrgitm_lv"].startswith("line 3, column chrgitm_lv:")
    assert "already listed on line 2" in violations["rows[4].code"]
    listed = catalogue.ListVersions(catalogue_service_pb2.ListVersionsRequest(admdvs="110000"), timeout=10)
    assert list(listed.versions) == []


@pytest.mark.parametrize(
    ("admdvs", "layer", "field"),
    [
        ("110000", catalogue_pb2.CATALOGUE_LAYER_NATIONAL_BASE, "header.layer"),
        ("000000", catalogue_pb2.CATALOGUE_LAYER_PROVINCIAL_OVERLAY, "header.layer"),
        ("001100", catalogue_pb2.CATALOGUE_LAYER_PROVINCIAL_OVERLAY, "header.admdvs"),
        ("110000", catalogue_pb2.CATALOGUE_LAYER_UNSPECIFIED, "header.layer"),
    ],
)
def test_the_header_must_name_a_layer_that_agrees_with_the_region(catalogue, admdvs, layer, field) -> None:
    header = catalogue_service_pb2.ImportCatalogueHeader(
        request_id=request_id(), admdvs=admdvs, layer=layer, effective_date=day("2026-01-01")
    )
    messages = [
        catalogue_service_pb2.ImportCatalogueRequest(header=header),
        catalogue_service_pb2.ImportCatalogueRequest(
            csv_chunk=b"code,name,kind,chrgitm_lv\n" + BED.encode() + b",x,service,01\n"
        ),
    ]
    with pytest.raises(grpc.RpcError) as refused:
        catalogue.ImportCatalogue(iter(messages), timeout=10)
    assert [v.field for v in error_details(refused.value)["BadRequest"].field_violations] == [field]


def test_an_import_is_idempotent_on_its_request_id(catalogue, import_csv: ImportCsv) -> None:
    first = import_csv("000000", "2026-01-01", BASE_2025, rid="000000000000202601010000777")
    again = import_csv("000000", "2026-01-01", BASE_2025, rid="000000000000202601010000777", chunk=64)
    assert again.version == first.version
    with pytest.raises(grpc.RpcError) as clash:
        import_csv("000000", "2026-01-01", BASE_2026, rid="000000000000202601010000777")
    assert error_details(clash.value)["ErrorInfo"].reason == "DUPLICATE_REQUEST"
    listed = catalogue.ListVersions(catalogue_service_pb2.ListVersionsRequest(admdvs="000000"), timeout=10)
    assert len(listed.versions) == 1


def test_versions_are_listed_newest_first_one_page_at_a_time(catalogue, import_csv: ImportCsv) -> None:
    dates = ["2024-01-01", "2026-01-01", "2025-01-01", "2025-01-01", "2023-06-01"]
    ids = {import_csv("000000", on, BASE_2025).version.version_id for on in dates}
    seen, token = [], ""
    while True:
        page = catalogue.ListVersions(
            catalogue_service_pb2.ListVersionsRequest(admdvs="000000", page_size=2, page_token=token),
            timeout=10,
        )
        assert len(page.versions) <= 2
        seen += [version.version_id for version in page.versions]
        token = page.next_page_token
        if not token:
            break
    assert set(seen) == ids and len(seen) == 5
    assert [v.split("@")[1][:10] for v in seen] == sorted((d for d in dates), reverse=True)
    for bad in ("garbage", token or "e30="):
        with pytest.raises(grpc.RpcError) as refused:
            catalogue.ListVersions(
                catalogue_service_pb2.ListVersionsRequest(admdvs="000000", page_token=bad), timeout=10
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as other_query:
        first = catalogue.ListVersions(
            catalogue_service_pb2.ListVersionsRequest(admdvs="000000", page_size=1), timeout=10
        )
        catalogue.ListVersions(
            catalogue_service_pb2.ListVersionsRequest(admdvs="110000", page_token=first.next_page_token),
            timeout=10,
        )
    assert error_details(other_query.value)["BadRequest"].field_violations[0].field == "page_token"


def test_diff_between_versions_and_between_regions(catalogue, import_csv: ImportCsv) -> None:
    base_2025 = import_csv("000000", "2025-01-01", BASE_2025).version
    base_2026 = import_csv("000000", "2026-01-01", BASE_2026).version
    import_csv("110000", "2025-07-01", OVERLAY_2025)

    def diff(left, right, codes=(), page_size=0, token=""):
        return catalogue.DiffCatalogues(
            catalogue_service_pb2.DiffCataloguesRequest(
                left=left, right=right, codes=codes, page_size=page_size, page_token=token
            ),
            timeout=10,
        )

    by_version = diff(
        catalogue_service_pb2.CatalogueRef(version_id=base_2025.version_id),
        catalogue_service_pb2.CatalogueRef(version_id=base_2026.version_id),
    )
    changes = {d.code: list(d.changed_fields) for d in by_version.differences}
    assert changes == {
        REPAGLINIDE: ["selfpay_prop"],
        BED: ["pric_uplmt_amt", "restriction"],
        STENT: ["presence"],
    }
    assert [d.code for d in by_version.differences] == sorted(changes)
    stent = next(d for d in by_version.differences if d.code == STENT)
    assert stent.HasField("left") and not stent.HasField("right")

    def region(admdvs: str) -> catalogue_service_pb2.CatalogueRef:
        return catalogue_service_pb2.CatalogueRef(
            region_on_date=catalogue_service_pb2.RegionOnDate(admdvs=admdvs, date=day("2025-09-01"))
        )

    by_region = diff(region("110000"), region("130000"), codes=[ACARBOSE, REPAGLINIDE, STENT])
    assert [(d.code, list(d.changed_fields)) for d in by_region.differences] == [
        (REPAGLINIDE, ["chrgitm_lv", "selfpay_prop"]),
        (STENT, ["chrgitm_lv", "selfpay_prop", "pric_uplmt_amt", "restriction"]),
    ]
    assert by_region.differences[0].left.source == catalogue_pb2.ITEM_SOURCE_PROVINCIAL

    first = diff(region("110000"), region("130000"), page_size=1)
    second = diff(region("110000"), region("130000"), page_size=1, token=first.next_page_token)
    assert [d.code for d in (*first.differences, *second.differences)] == sorted([REPAGLINIDE, STENT])
    with pytest.raises(grpc.RpcError) as missing:
        diff(catalogue_service_pb2.CatalogueRef(version_id="000000@2020-01-01#999"), region("110000"))
    assert error_details(missing.value)["ErrorInfo"].reason == "NO_CATALOGUE_VERSION"
