"""The v1 API as integrators see it: lint, generated-stub drift, and the house conventions.

The conventions (protos/README.md) are checked on the compiled descriptors with their
comments, so a later change that forgets a ``request_id``, a page token or an ``Errors:``
line fails here rather than in an integrator's code review.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from yidi_core.errors import REASONS

REPO = Path(__file__).resolve().parents[2]
PROTOS = REPO / "protos"
BIN = Path(sys.executable).parent

SERVICES = {
    "yidi.filing.v1.FilingService": {
        "CreateFiling",
        "GetFiling",
        "ListFilings",
        "ReviewFiling",
        "ListPendingReviews",
        "CancelFiling",
        "CheckEligibility",
    },
    "yidi.registry.v1.InstitutionRegistryService": {
        "RegisterInstitution",
        "UpdateInstitution",
        "GetInstitution",
        "ListInstitutions",
        "PublishSuspension",
        "ListSuspensions",
        "CheckInstitution",
        "CoverageReport",
        "SyncInstitutions",
    },
    "yidi.catalogue.v1.CatalogueService": {"ImportCatalogue", "LookupItems", "ListVersions"},
    "yidi.catalogue.v1.PolicyService": {"ImportPolicy", "GetPolicy"},
    "yidi.settlement.v1.SettlementService": {
        "VerifyPerson",
        "RegisterVisit",
        "UploadFeeItems",
        "CancelFeeItems",
        "PreSettle",
        "Settle",
        "ReverseSettlement",
        "Correct",
        "GetSettlement",
        "UploadSelfPayBill",
    },
    "yidi.settlement.v1.InsuredSettlementService": {"ApplySettlement"},
    "yidi.auth.v1.TokenService": {"RefreshToken"},
    "yidi.clearing.v1.ClearingService": {
        "SetAdvance",
        "TopUpAdvance",
        "GetAdvanceStatus",
        "RunClearing",
        "ListStatements",
        "ConfirmStatement",
        "RecordTransfer",
        "RecordClawback",
        "Reconcile",
        "RepairDiscrepancies",
        "GetLedger",
    },
}
# Methods whose name starts with one of these change nothing; every other method mutates.
READ_ONLY_VERBS = (
    "Get",
    "List",
    "Check",
    "Lookup",
    "Verify",
    "Diff",
    "Estimate",
    "PreSettle",
    "Coverage",
    "Resolve",
    "Refresh",  # a new token for the one presented: stateless, nothing on the node changes
)
PROTO_FILE = descriptor_pb2.FieldDescriptorProto


def run(*command: str) -> subprocess.CompletedProcess[str]:
    env_path = f"{BIN}:/usr/bin:/bin"
    return subprocess.run(
        list(command),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PATH": env_path},
    )


def test_buf_lint_is_clean() -> None:
    result = run(str(BIN / "buf"), "lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_committed_stubs_match_the_protos() -> None:
    result = run(str(REPO / "scripts" / "genproto"), "--check")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[descriptor_pb2.FileDescriptorProto]:
    """Every yidi proto file compiled with its comments (source info)."""
    out = tmp_path_factory.mktemp("descriptors") / "yidi.binpb"
    sources = sorted(path.relative_to(PROTOS).as_posix() for path in PROTOS.rglob("*.proto"))
    googleapis = REPO / "third_party" / "googleapis"
    well_known = resources.files("grpc_tools") / "_proto"
    status = protoc.main(
        [
            "protoc",
            f"-I{PROTOS}",
            f"-I{googleapis}",
            f"-I{well_known}",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *sources,
        ]
    )
    assert status == 0
    return list(descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file)


def messages(files: list[descriptor_pb2.FileDescriptorProto]) -> dict[str, descriptor_pb2.DescriptorProto]:
    found: dict[str, descriptor_pb2.DescriptorProto] = {}

    def visit(prefix: str, message: descriptor_pb2.DescriptorProto) -> None:
        name = f"{prefix}.{message.name}"
        found[name] = message
        for nested in message.nested_type:
            visit(name, nested)

    for file in files:
        for message in file.message_type:
            visit(f".{file.package}", message)
    return found


def rpcs(
    files: list[descriptor_pb2.FileDescriptorProto],
) -> Iterator[tuple[str, descriptor_pb2.MethodDescriptorProto, str]]:
    """(service full name, method, leading comment) for every RPC."""
    for file in files:
        comments = {tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location}
        for s_index, service in enumerate(file.service):
            for m_index, method in enumerate(service.method):
                yield f"{file.package}.{service.name}", method, comments.get((6, s_index, 2, m_index), "")


def test_every_service_offers_the_methods_design_md_names(
    files: list[descriptor_pb2.FileDescriptorProto],
) -> None:
    offered: dict[str, set[str]] = {}
    for service, method, _ in rpcs(files):
        offered.setdefault(service, set()).add(method.name)
    for service, expected in SERVICES.items():
        assert expected <= offered.get(service, set()), (service, expected - offered.get(service, set()))


def test_every_rpc_comment_names_the_errors_it_returns(
    files: list[descriptor_pb2.FileDescriptorProto],
) -> None:
    missing = [
        f"{service}.{method.name}" for service, method, comment in rpcs(files) if "Errors:" not in comment
    ]
    assert not missing


def test_every_error_named_is_a_registered_reason_with_its_status(
    files: list[descriptor_pb2.FileDescriptorProto],
) -> None:
    """The comments are the integrators' contract; the reason table is the servers'. They agree."""
    named = {
        (code, reason)
        for _, _, comment in rpcs(files)
        for code, reason in re.findall(r"\b([A-Z_]+)/([A-Z_]+)\b", comment.split("Errors:", 1)[-1])
    }
    assert named
    wrong = {
        (code, reason) for code, reason in named if reason not in REASONS or REASONS[reason].grpc_code != code
    }
    assert not wrong


def has_request_id(message: descriptor_pb2.DescriptorProto, catalogue: dict) -> bool:
    """At the top level, or in the ``header`` a streamed upload starts with."""
    fields = {field.name: field for field in message.field}
    if "request_id" in fields:
        return fields["request_id"].type == PROTO_FILE.TYPE_STRING
    header = fields.get("header")
    return header is not None and has_request_id(catalogue[header.type_name], catalogue)


def test_every_mutating_request_carries_a_request_id(files: list[descriptor_pb2.FileDescriptorProto]) -> None:
    catalogue = messages(files)
    lacking = [
        f"{service}.{method.name}"
        for service, method, _ in rpcs(files)
        if not method.name.startswith(READ_ONLY_VERBS)
        and not has_request_id(catalogue[method.input_type], catalogue)
    ]
    assert not lacking


def test_every_list_paginates(files: list[descriptor_pb2.FileDescriptorProto]) -> None:
    catalogue = messages(files)
    for service, method, _ in rpcs(files):
        if not method.name.startswith("List"):
            continue
        request = {f.name: f.type for f in catalogue[method.input_type].field}
        response = {f.name: f.type for f in catalogue[method.output_type].field}
        where = f"{service}.{method.name}"
        assert request.get("page_size") == PROTO_FILE.TYPE_INT32, where
        assert request.get("page_token") == PROTO_FILE.TYPE_STRING, where
        assert response.get("next_page_token") == PROTO_FILE.TYPE_STRING, where


def test_money_is_integer_fen_and_nothing_is_a_float(files: list[descriptor_pb2.FileDescriptorProto]) -> None:
    catalogue = messages(files)
    for name, message in catalogue.items():
        for field in message.field:
            where = f"{name}.{field.name}"
            kind = field.type
            entry = catalogue.get(field.type_name)
            if entry is not None and entry.options.map_entry:
                kind = entry.field[1].type  # a map's value
            assert kind not in (PROTO_FILE.TYPE_FLOAT, PROTO_FILE.TYPE_DOUBLE), where
            if field.name.endswith("_fen"):
                assert kind == PROTO_FILE.TYPE_INT64, where


def test_generated_stubs_import_under_the_proto_package(
    files: list[descriptor_pb2.FileDescriptorProto],
) -> None:
    for file in files:
        module = file.name.removesuffix(".proto").replace("/", ".") + "_pb2"
        imported = importlib.import_module(module)
        assert imported.DESCRIPTOR.package == file.package
        if file.service:
            stubs = importlib.import_module(module + "_grpc")
            for service in file.service:
                assert hasattr(stubs, f"{service.name}Stub"), (module, service.name)
