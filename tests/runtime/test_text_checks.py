"""Control characters and undecodable bytes are refused at the door of every RPC, on SQLite and PostgreSQL alike.

PostgreSQL refuses NUL in text (it used to surface as INTERNAL) while SQLite stores it; a
request that is not protobuf, or whose strings are not UTF-8, used to be gRPC's bare
INTERNAL. Both are INVALID_ARGUMENT now, with the stable reason and the field, before any
handler runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2, struct_pb2
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from yidi.audit.v1 import audit_service_pb2, audit_service_pb2_grpc
from yidi.catalogue.v1 import catalogue_pb2, catalogue_service_pb2, catalogue_service_pb2_grpc, policy_pb2
from yidi.filing.v1 import filing_service_pb2, filing_service_pb2_grpc, insured_person_pb2
from yidi.registry.v1 import institution_pb2
from yidi.registry.v1 import institution_registry_service_pb2 as registry_api
from yidi.registry.v1 import institution_registry_service_pb2_grpc as registry_grpc
from yidi.settlement.v1 import settlement_service_pb2, settlement_service_pb2_grpc
from yidi.type.v1 import fee_item_pb2, person_pb2
from yidi_core.errors import DomainError
from yidi_runtime.text_checks import ensure_sound, refusal
from yidi_testing import error_details

SETTLEMENT = "/yidi.settlement.v1.SettlementService"


def refused(
    call: grpc.UnaryUnaryMultiCallable | grpc.StreamUnaryMultiCallable, request: object
) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=30)
    return caught.value


def violations(error: grpc.RpcError) -> tuple[grpc.StatusCode, str, list[str]]:
    details = error_details(error)
    fields = [violation.field for violation in details["BadRequest"].field_violations]
    return error.code(), details["ErrorInfo"].reason, fields


def test_a_nul_in_a_nested_repeated_field_is_refused_naming_its_path(channel: grpc.Channel) -> None:
    items = [
        fee_item_pb2.FeeItem(feedetl_sn="1", med_list_codg="XA10BFA022A001010100001", cnt="1", pric="1"),
        fee_item_pb2.FeeItem(
            feedetl_sn="2", medins_list_codg="HIS\x00-1", rxno="\x1b[31m", cnt="1", pric="1"
        ),
    ]
    request = settlement_service_pb2.UploadFeeItemsRequest(request_id="m\x7f1", mdtrt_id="x", items=items)
    error = refused(settlement_service_pb2_grpc.SettlementServiceStub(channel).UploadFeeItems, request)
    assert violations(error) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        ["request_id", "items[1].medins_list_codg", "items[1].rxno"],
    )
    assert "U+0000" in error_details(error)["BadRequest"].field_violations[1].description


def test_a_nul_that_postgresql_would_refuse_is_refused_alike_and_nothing_is_stored(
    channel: grpc.Channel,
) -> None:
    stub = registry_grpc.InstitutionRegistryServiceStub(channel)
    institution = institution_pb2.Institution(
        fixmedins_code="H11010100099",
        fixmedins_name="样例医院\x00",
        type=institution_pb2.INSTITUTION_TYPE_MEDICAL,
        level="3",
        admdvs="110101",
    )
    request = registry_api.RegisterInstitutionRequest(request_id="reg-nul-1", institution=institution)
    assert violations(refused(stub.RegisterInstitution, request)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        ["institution.fixmedins_name"],
    )
    lookup = registry_api.GetInstitutionRequest(fixmedins_code="H11010100099")
    assert refused(stub.GetInstitution, lookup).code() == grpc.StatusCode.NOT_FOUND


def test_a_control_character_in_a_credential_is_refused(channel: grpc.Channel) -> None:
    credential = person_pb2.Credential(mdtrt_cert_type="02", mdtrt_cert_no="131000195402270170\x08")
    request = filing_service_pb2.GetInsuredPersonRequest(
        person=insured_person_pb2.PersonLookup(credential=credential)
    )
    error = refused(filing_service_pb2_grpc.FilingServiceStub(channel).GetInsuredPerson, request)
    assert violations(error)[2] == ["person.credential.mdtrt_cert_no"]


def test_a_streamed_request_is_checked_message_by_message(channel: grpc.Channel) -> None:
    header = catalogue_service_pb2.ImportCatalogueHeader(
        request_id="cat-1", admdvs="11\x000000", layer=catalogue_pb2.CATALOGUE_LAYER_PROVINCIAL_OVERLAY
    )
    stream = [
        catalogue_service_pb2.ImportCatalogueRequest(header=header),
        catalogue_service_pb2.ImportCatalogueRequest(csv_chunk=b"code,name\n\x00"),
    ]
    stub = catalogue_service_pb2_grpc.CatalogueServiceStub(channel)
    error = refused(stub.ImportCatalogue, iter(stream))
    assert violations(error) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", ["header.admdvs"])


INSTITUTIONS_CSV = (
    "fixmedins_code,fixmedins_name,type,level,admdvs,address,status,accepts_cross_province,"
    "accepts_in_province,services\n"
    "H11010100099,样例医院,medical,3,110101,北京,active,true,true,inpatient@2019-01-01\n"
    "H11010100098,样例\x00医院,medical,3,110101,北京,active,true,true,inpatient@2019-01-01\n"
)


def test_a_nul_in_an_imported_csv_file_is_refused_naming_its_line(channel: grpc.Channel) -> None:
    """A CSV file travels as bytes; its cells would reach the same tables as strings do."""
    stub = registry_grpc.InstitutionRegistryServiceStub(channel)
    header = registry_api.ImportInstitutionsHeader(request_id="import-nul-1", admdvs="110000")
    stream = [
        registry_api.ImportInstitutionsRequest(header=header),
        registry_api.ImportInstitutionsRequest(csv_chunk=INSTITUTIONS_CSV.encode()),
    ]
    error = refused(stub.ImportInstitutions, iter(stream))
    assert violations(error) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", ["csv_chunk"])
    assert "line 3 holds U+0000" in error_details(error)["BadRequest"].field_violations[0].description
    lookup = registry_api.GetInstitutionRequest(fixmedins_code="H11010100099")
    assert refused(stub.GetInstitution, lookup).code() == grpc.StatusCode.NOT_FOUND  # nothing stored


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xff\xff\xff", b"\x12\x02\xff\xfe"],  # not protobuf; setl_id (field 2) not UTF-8
    ids=["not-protobuf", "not-utf8"],
)
def test_bytes_that_are_not_the_request_are_refused_with_the_stable_reason(
    channel: grpc.Channel, payload: bytes
) -> None:
    call = channel.unary_unary(f"{SETTLEMENT}/GetSettlement")
    error = refused(call, payload)
    assert violations(error) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", [""])
    assert "UTF-8" in error.details()


def test_a_refused_call_reaches_the_audit_trail_with_its_request_id_escaped(channel: grpc.Channel) -> None:
    request = settlement_service_pb2.CancelVisitRequest(request_id="cancel\x00-1", mdtrt_id="x")
    refused(settlement_service_pb2_grpc.SettlementServiceStub(channel).CancelVisit, request)
    records = audit_service_pb2_grpc.AuditServiceStub(channel).ListAuditRecords(
        audit_service_pb2.ListAuditRecordsRequest(method="CancelVisit"), timeout=30
    )
    assert [(r.request_id, r.grpc_code, r.reason) for r in records.records] == [
        ("cancel\\x00-1", "INVALID_ARGUMENT", "INVALID_ARGUMENT")
    ]


@pytest.mark.parametrize(
    ("message", "paths"),
    [
        (policy_pb2.Policy(ratio_adjustments={"1201": "0.1\x00"}), ["ratio_adjustments['1201']"]),
        (policy_pb2.Policy(ratio_adjustments={"12\x0101": "0.1"}), ["ratio_adjustments['12\\x0101']"]),
        (settlement_service_pb2.CancelFeeItemsRequest(feedetl_sns=["1", "2\x85"]), ["feedetl_sns[1]"]),
        (settlement_service_pb2.CancelVisitRequest(request_id="tab\there,\r\nlines"), []),
        (settlement_service_pb2.CancelVisitRequest(request_id="医保 ­ 号"), []),  # soft hyphen U+00AD passes
    ],
    ids=["map-value", "map-key", "repeated-string", "tab-and-line-breaks", "beyond-c1"],
)
def test_which_strings_are_refused(message: Message, paths: Sequence[str]) -> None:
    error = refusal(message)
    found = [violation.field for violation in error.violations] if error else []
    assert found == list(paths)


_TEXTS = st.text(alphabet=st.sampled_from(["a", "号", "\t", "\n", "\x00", "\x1b", "\x7f", "\x85", "\xad"]))
_JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | _TEXTS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXTS, inner, max_size=4),
    max_leaves=20,
)


def _refused_as_walked(message: Message) -> None:
    """``ensure_sound`` refuses ``message`` exactly when the field-by-field walk finds a bad string, with its error."""
    walked = refusal(message)
    try:
        ensure_sound(message)
    except DomainError as error:
        assert error == walked
    else:
        assert walked is None


@settings(max_examples=300, deadline=None, database=None)
@given(st.dictionaries(_TEXTS, _JSON, max_size=4))
def test_a_recursive_message_with_maps_of_messages_is_refused_exactly_as_walked(
    document: dict[str, object],
) -> None:
    """No request type of the API is recursive or maps to messages; a ``Struct`` is both."""
    message = struct_pb2.Struct()
    message.update(document)
    _refused_as_walked(message)


@settings(max_examples=300, deadline=None, database=None)
@given(st.dictionaries(_TEXTS, _TEXTS, max_size=4), _TEXTS)
def test_a_map_of_strings_is_refused_exactly_as_walked(adjustments: dict[str, str], insutype: str) -> None:
    """No request type of the API maps strings to strings; a policy does."""
    _refused_as_walked(policy_pb2.Policy(ratio_adjustments=adjustments, insutype=insutype))


def test_a_string_in_an_extension_is_refused_naming_its_path() -> None:
    """A message type that may carry extensions is read by the walk alone: its extensions are fields too."""
    options = descriptor_pb2.MethodOptions()
    options.Extensions[annotations_pb2.http].get = "/v1/\x00"
    with pytest.raises(DomainError) as caught:
        ensure_sound(options)
    assert [violation.field for violation in caught.value.violations] == ["http.get"]
