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
    help="Filing (异地就医备案): review queue, insured persons, filing rules and their rechecks.",
    no_args_is_help=True,
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


@app.command("rechecks")
@dials_node
def rechecks(
    region: str = typer.Option(..., "--region", help="Insured region whose rechecks to show."),
    state: str = typer.Option(
        "pending",
        "--state",
        help="pending, kept, cancelled, materials_required, superseded, closed, or all.",
    ),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="Rows to show (oldest filing first)."),
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """Filings that fail their region's new rules: versions, the failed checks, the decision."""
    from yidi_cli.filing_client import run_rechecks

    raise typer.Exit(run_rechecks(address, tls, region, state, limit))


@app.command("decide-recheck")
@dials_node
def decide_recheck(
    filing_id: str = typer.Argument(..., help="The filing whose pending recheck to decide."),
    decision: str = typer.Option(..., "--decision", help="keep, cancel or require_materials."),
    reason: str = typer.Option("", "--reason", help="Why (required to cancel: the filing's reason)."),
    request_id: str | None = RequestIdOption,
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """Decide a filing's recheck once: keep the filing, cancel it, or ask for materials."""
    from yidi_cli.filing_client import run_decide_recheck

    raise typer.Exit(run_decide_recheck(address, tls, filing_id, decision, reason, request_id))
