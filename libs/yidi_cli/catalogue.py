"""`yidi catalogue import` and `yidi policy import`: load versions into a node over gRPC.

The module is imported by every `yidi` command, so gRPC and the stubs load only when one
of these commands runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from yidi_cli.client_tls import ClientTls, dials_node

if TYPE_CHECKING:
    from google.type.date_pb2 import Date

catalogue_app = typer.Typer(
    help="Treatment-place catalogues (就医地目录): import versions.", no_args_is_help=True
)
policy_app = typer.Typer(help="Insured-place policies (参保地政策): import versions.", no_args_is_help=True)

AddressOption = typer.Option("127.0.0.1:50051", "--address", help="The node's gRPC address.")
CatalogueFileArgument = typer.Argument(..., help="Catalogue CSV (columns: examples/data/README.md).")
PolicyFileArgument = typer.Argument(
    ..., help="Policy document, .json or .toml (the calc format's policy block)."
)
RequestIdOption = typer.Option(None, "--request-id", help="Message id (default: a new one).")
_CHUNK = 64 * 1024
_SUFFIXES = (".json", ".toml")


def _date(text: str, option: str) -> Date:
    from google.type.date_pb2 import Date

    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date yyyy-mm-dd", param_hint=option) from None
    return Date(year=day.year, month=day.month, day=day.day)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise typer.BadParameter(f"cannot read {path}: {error.strerror}", param_hint="FILE") from None


@catalogue_app.command("import")
@dials_node
def import_catalogue(
    file: Path = CatalogueFileArgument,
    region: str = typer.Option(
        ..., "--region", help="000000 for the national base; a province, city or county for its overlay."
    ),
    effective: str = typer.Option(..., "--effective", help="First day in force, yyyy-mm-dd."),
    address: str = AddressOption,
    request_id: str | None = RequestIdOption,
    *,
    tls: ClientTls,
) -> None:
    """Import a catalogue version (all or nothing) and print it."""
    import grpc
    from rich.console import Console

    from yidi.catalogue.v1 import catalogue_pb2, catalogue_service_pb2, catalogue_service_pb2_grpc
    from yidi_cli.node_client import explain_refusal, message_id, open_channel
    from yidi_core.codes import NATIONAL_REGION

    content = _read(file)
    layer = (
        catalogue_pb2.CATALOGUE_LAYER_NATIONAL_BASE
        if region == NATIONAL_REGION
        else catalogue_pb2.CATALOGUE_LAYER_PROVINCIAL_OVERLAY
    )
    header = catalogue_service_pb2.ImportCatalogueHeader(
        request_id=request_id or message_id(region),
        admdvs=region,
        layer=layer,
        effective_date=_date(effective, "--effective"),
    )

    def messages() -> Iterator[catalogue_service_pb2.ImportCatalogueRequest]:
        yield catalogue_service_pb2.ImportCatalogueRequest(header=header)
        for start in range(0, len(content), _CHUNK):
            yield catalogue_service_pb2.ImportCatalogueRequest(csv_chunk=content[start : start + _CHUNK])

    with open_channel(address, tls) as channel:
        try:
            version = (
                catalogue_service_pb2_grpc.CatalogueServiceStub(channel).ImportCatalogue(messages()).version
            )
        except grpc.RpcError as error:
            raise typer.Exit(explain_refusal(error)) from None
    Console().print(
        f"[bold green]imported[/] catalogue version {version.version_id}: {version.item_count} items, "
        f"sha256 {version.content_sha256[:12]}…"
    )


@policy_app.command("import")
@dials_node
def import_policy(
    file: Path = PolicyFileArgument,
    region: str = typer.Option(..., "--region", help="Insured region."),
    insutype: str = typer.Option(..., "--insutype", help="Insurance type, e.g. 310 or 390."),
    effective: str = typer.Option(..., "--effective", help="First day in force, yyyy-mm-dd."),
    end: str | None = typer.Option(
        None, "--end", help="Last day in force (default: until the next version)."
    ),
    address: str = AddressOption,
    request_id: str | None = RequestIdOption,
    *,
    tls: ClientTls,
) -> None:
    """Import a policy version (validated; no overlap with another version) and print it."""
    import grpc
    from rich.console import Console

    from yidi.catalogue.v1 import policy_service_pb2, policy_service_pb2_grpc
    from yidi_cli.node_client import explain_refusal, message_id, open_channel

    if file.suffix.lower() not in _SUFFIXES:
        raise typer.BadParameter("must end in .json or .toml", param_hint="FILE")
    document_format = (
        policy_service_pb2.POLICY_FORMAT_TOML
        if file.suffix.lower() == ".toml"
        else policy_service_pb2.POLICY_FORMAT_JSON
    )
    request = policy_service_pb2.ImportPolicyRequest(
        request_id=request_id or message_id(region),
        insuplc_admdvs=region,
        insutype=insutype,
        effective_date=_date(effective, "--effective"),
        end_date=_date(end, "--end") if end else None,
        format=document_format,
        document=_read(file),
    )
    with open_channel(address, tls) as channel:
        try:
            policy = policy_service_pb2_grpc.PolicyServiceStub(channel).ImportPolicy(request).policy
        except grpc.RpcError as error:
            raise typer.Exit(explain_refusal(error)) from None
    Console().print(f"[bold green]imported[/] policy version {policy.version_id}: {len(policy.rules)} rules")
