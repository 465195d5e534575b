"""`yidi filing`: the review queue as a table, person CSV import and filing rules, over gRPC.

Every command exits 0 on success, 1 with the node's stable reason (and every bad field)
when the node refuses, 3 when the node cannot be reached, 2 on a file it cannot read.
The gRPC machinery loads lazily.
"""

from __future__ import annotations

from pathlib import Path

import typer

from yidi_cli.client_tls import ClientTls, dials_node

app = typer.Typer(
    help="Filing (异地就医备案): review queue, insured persons, filing rules.", no_args_is_help=True
)

AddressOption = typer.Option("127.0.0.1:50051", "--address", help="The node's gRPC address.")
RequestIdOption = typer.Option(None, "--request-id", help="Message id; repeat it to retry safely.")
PersonsCsvArgument = typer.Argument(
    ..., exists=True, dir_okay=False, help="CSV file of insured persons (see examples/data/README.md)."
)
RulesTomlArgument = typer.Argument(..., exists=True, dir_okay=False, help="TOML file of [[rules]] tables.")


@app.command("pending")
@dials_node
def pending(
    region: str = typer.Option(..., "--region", help="Insured region whose review queue to show."),
    overdue_only: bool = typer.Option(False, "--overdue-only", help="Only applications past their deadline."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="Rows to show (earliest deadline first)."),
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """The review queue (待审核): deadline, working days left and overdue marks, earliest deadline first."""
    from yidi_cli.filing_client import run_pending

    raise typer.Exit(run_pending(address, tls, region, overdue_only, limit))


@app.command("import-persons")
@dials_node
def import_persons(
    file: Path = PersonsCsvArgument,
    request_id: str | None = RequestIdOption,
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """Enrol or update insured persons from CSV: all rows or none (person i of a refusal is CSV row i + 2)."""
    from yidi_cli.filing_client import run_import_persons

    raise typer.Exit(run_import_persons(address, tls, file, request_id))


@app.command("set-rules")
@dials_node
def set_rules(
    file: Path = RulesTomlArgument,
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """Set each insured region's filing rules from a TOML file (examples/data/filing-rules.toml)."""
    from yidi_cli.filing_client import run_set_rules

    raise typer.Exit(run_set_rules(address, tls, file))
