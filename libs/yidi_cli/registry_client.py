"""The gRPC side of `yidi registry`: streaming an import, fetching coverage, asking for a push.

Kept apart from the command definitions so `yidi` starts without loading gRPC for other commands.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import grpc
from google.protobuf import json_format
from google.type import date_pb2
from rich.console import Console
from rich.table import Table

from yidi.registry.v1 import institution_registry_service_pb2 as api
from yidi.registry.v1 import institution_registry_service_pb2_grpc as api_grpc
from yidi_cli.client_tls import ClientTls
from yidi_cli.node_client import explain_refusal, message_id, open_channel

_CHUNK_BYTES = 64 * 1024
_NATIONAL = "000000"


def import_region(path: Path) -> str:
    """The province every row lies in, else the national root (the node decides whether it may)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        provinces = {(row.get("admdvs") or "")[:2] for row in csv.DictReader(handle)}
    return f"{provinces.pop()}0000" if len(provinces) == 1 and "" not in provinces else _NATIONAL


def _import_messages(path: Path, region: str, request_id: str) -> Iterator[api.ImportInstitutionsRequest]:
    yield api.ImportInstitutionsRequest(
        header=api.ImportInstitutionsHeader(request_id=request_id, admdvs=region)
    )
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            yield api.ImportInstitutionsRequest(csv_chunk=chunk)


def run_import(address: str, tls: ClientTls, path: Path, region: str | None, request_id: str | None) -> int:
    """Stream the file to the node and print what it did; the exit code."""
    scope = region or import_region(path)
    rid = request_id or message_id(scope)
    with open_channel(address, tls) as channel:
        try:
            result = api_grpc.InstitutionRegistryServiceStub(channel).ImportInstitutions(
                _import_messages(path, scope, rid), timeout=600
            )
        except grpc.RpcError as error:
            return explain_refusal(error)
    print(
        f"imported {path.name} into {scope}: {result.row_count} rows, {result.created_count} created, "
        f"{result.updated_count} updated (request {rid})"
    )
    return 0


def read_counties(path: Path | None) -> list[str]:
    """County codes, one per line or comma-separated; '#' starts a comment."""
    if path is None:
        return []
    codes = []
    for line in path.read_text(encoding="utf-8").splitlines():
        codes += [code.strip() for code in line.split("#", 1)[0].split(",") if code.strip()]
    return codes


def _table(report: api.CoverageReportResponse, region: str) -> Table:
    table = Table(title=f"Cross-region settlement coverage of {region}")
    for heading in ("region", "level", "institutions", "inpatient", "general outpatient", "special drugs"):
        table.add_column(heading, justify="left" if heading in ("region", "level") else "right")
    table.add_column("chronic (per disease)")
    gaps = set(report.counties_without_outpatient)
    for row in report.rows:
        table.add_row(
            row.admdvs + (" (no outpatient)" if row.admdvs in gaps else ""),
            row.region_level,
            str(row.institution_count),
            str(row.inpatient_count),
            str(row.general_outpatient_count),
            str(row.special_drugs_count),
            ", ".join(f"{code} {count}" for code, count in sorted(row.chronic_counts.items())),
        )
    return table


def run_coverage(
    address: str, tls: ClientTls, region: str, as_of: date | None, counties: list[str], as_json: bool
) -> int:
    """Fetch the report and print it as a table or JSON; the exit code."""
    request = api.CoverageReportRequest(admdvs=region, expected_counties=counties)
    if as_of is not None:
        request.as_of.CopyFrom(date_pb2.Date(year=as_of.year, month=as_of.month, day=as_of.day))
    with open_channel(address, tls) as channel:
        try:
            report = api_grpc.InstitutionRegistryServiceStub(channel).CoverageReport(request, timeout=60)
        except grpc.RpcError as error:
            return explain_refusal(error)
    if as_json:
        document = json_format.MessageToDict(
            report, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
        )
        print(json.dumps(document, ensure_ascii=False, indent=2))
        return 0
    console = Console(width=140)
    console.print(_table(report, region))
    gaps = ", ".join(report.counties_without_outpatient) or "none"
    console.print(f"Counties with no institution settling general outpatient costs: {gaps}", markup=False)
    return 0


def run_sync(address: str, tls: ClientTls, request_id: str | None) -> int:
    """Ask the node to push its unacknowledged institutions to its parent; the exit code."""
    rid = request_id or message_id(_NATIONAL)
    with open_channel(address, tls) as channel:
        try:
            result = api_grpc.InstitutionRegistryServiceStub(channel).PushInstitutions(
                api.PushInstitutionsRequest(request_id=rid), timeout=600
            )
        except grpc.RpcError as error:
            return explain_refusal(error)
    if not result.parent_admdvs:
        print("this node has no parent: nothing to push")
        return 0
    print(
        f"pushed {result.sent_count} institutions to {result.parent_admdvs} in {result.batch_count} "
        f"batches: {result.applied_count} applied, {result.stale_count} already held (request {rid})"
    )
    return 0
