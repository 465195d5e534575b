"""`yidi registry`: import institutions, print coverage, push changes to the parent node, over gRPC.

The commands exit 0 on success, 1 with the node's stable reason (and every bad field) when
the node refuses, 3 when the node cannot be reached. The gRPC machinery loads lazily.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer

from yidi_cli.client_tls import ClientTls, dials_node

app = typer.Typer(
    help="Institution registry (定点医药机构): import, coverage and sync to the parent node.",
    no_args_is_help=True,
)

AddressOption = typer.Option("127.0.0.1:50051", "--address", help="The node's gRPC address.")
CsvArgument = typer.Argument(..., exists=True, dir_okay=False, help="CSV file (see examples/data/README.md).")
ImportRegionOption = typer.Option(
    None, "--region", help="Region every row must lie in (default: their province, or 000000)."
)
RequestIdOption = typer.Option(None, "--request-id", help="Message id; repeat it to retry safely.")
CoverageRegionOption = typer.Option(..., "--region", help="Province, city, or 000000 for the whole country.")
AsOfOption = typer.Option(None, "--as-of", help="Date yyyy-mm-dd (default: the node's today).")
CountiesOption = typer.Option(
    None,
    "--expected-counties",
    exists=True,
    dir_okay=False,
    help="File of county codes expected in the region, so counties with no institution are reported too.",
)
JsonOption = typer.Option(False, "--json", help="Print the report as JSON.")


@app.command("import")
@dials_node
def import_institutions(
    file: Path = CsvArgument,
    region: str | None = ImportRegionOption,
    request_id: str | None = RequestIdOption,
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """Import institutions from CSV: all rows or none, bad cells listed by row and column."""
    from yidi_cli.registry_client import run_import

    raise typer.Exit(run_import(address, tls, file, region, request_id))


@app.command("coverage")
@dials_node
def coverage(
    region: str = CoverageRegionOption,
    as_of: str | None = AsOfOption,
    expected_counties: Path | None = CountiesOption,
    as_json: bool = JsonOption,
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """Institutions opened per service per province, city and county, and the uncovered counties."""
    from yidi_cli.registry_client import read_counties, run_coverage

    try:
        day = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        typer.echo(f"yidi: --as-of must be a date yyyy-mm-dd, got {as_of!r}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(run_coverage(address, tls, region, day, read_counties(expected_counties), as_json))


@app.command("sync")
@dials_node
def sync(request_id: str | None = RequestIdOption, address: str = AddressOption, *, tls: ClientTls) -> None:
    """Make the node push every institution change its parent has not acknowledged yet.

    Safe to run at any time (e.g. from a timer): a push that failed or lost its answer is
    simply repeated, and the parent ignores what it already holds.
    """
    from yidi_cli.registry_client import run_sync

    raise typer.Exit(run_sync(address, tls, request_id))
