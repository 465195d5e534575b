"""`yidi clearing` and `yidi reconcile`: monthly clearing, statements, the ledger, advances, reconciliation.

Everything they read lives at the national node (any other node passes the calls up to
it). A province's operator lists, confirms and disputes its own province's statements
through its province's node (``--address`` of that node). Long runs show a progress line on standard error; results are tables. Exit codes:
0 done and whole, 1 refused (the node's stable reason is printed) or the job failed,
2 bad options or a CSV file that cannot be written, 3 node unreachable, 4 the figures are not whole (net positions or the
ledger not summing to zero, or differences left open for an operator).
The gRPC machinery loads lazily.
"""

from __future__ import annotations

from datetime import date

import typer

from yidi_cli.client_tls import ClientTls, dials_node

app = typer.Typer(
    help="Clearing between provinces (清算): monthly runs, statements, the ledger, advances.",
    no_args_is_help=True,
)
advance_app = typer.Typer(
    help="Advances (预付金): propose them from last year's outflow, apply or set them, read their usage.",
    no_args_is_help=True,
)
app.add_typer(advance_app, name="advance")

AddressOption = typer.Option(
    "127.0.0.1:50051", "--address", help="The national node's gRPC address (any node passes the calls up)."
)
RequestIdOption = typer.Option(None, "--request-id", help="Message id; repeat it to retry safely.")
PeriodOption = typer.Option(..., "--period", help="Clearing month yyyy-MM (China time).")
ProvinceOption = typer.Option("", "--province", help="Only this province (PP0000).")
YearOption = typer.Option(..., "--year", min=2000, max=9999, help="Year of the advance.")


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date yyyy-mm-dd", param_hint=option) from None


@app.command("run")
@dials_node
def run(
    period: str = PeriodOption,
    request_id: str | None = RequestIdOption,
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """Clear a month: sum the journal per province pair, issue one statement per province, print them.

    Running a period again answers its run: the same statements.
    """
    from yidi_cli.clearing_commands import run_clearing

    raise typer.Exit(run_clearing(address, tls, period, request_id))


@app.command("statements")
@dials_node
def statements(
    period: str = PeriodOption,
    province: str = ProvinceOption,
    csv: str | None = typer.Option(
        None,
        "--csv",
        help="Also write one CSV row per statement line to this file ('-': only the CSV, to stdout).",
    ),
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """A month's statements per province — pair lines, payable, receivable, net, state, deadlines — and the
    zero-sum check (when every province's is listed: a province's operator sees only its own)."""
    from yidi_cli.clearing_commands import run_statements

    raise typer.Exit(run_statements(address, tls, period, province, csv))


StatementOption = typer.Option(..., "--statement", help="Statement id, e.g. 2026-05/130000.")


@app.command("confirm")
@dials_node
def confirm(
    statement: str = StatementOption,
    by: str = typer.Option(
        "", "--by", help="Who confirms (name or office; default: your certificate's subject)."
    ),
    request_id: str | None = RequestIdOption,
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """Confirm a statement (issued or disputed → confirmed) by its confirm-by day; print it."""
    from yidi_cli.clearing_commands import run_confirm

    raise typer.Exit(run_confirm(address, tls, statement, by, request_id))


@app.command("dispute")
@dials_node
def dispute(
    statement: str = StatementOption,
    reason: str = typer.Option(
        ..., "--reason", help="Why the province disputes it (at most 200 characters)."
    ),
    request_id: str | None = RequestIdOption,
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """Dispute a statement with a reason (issued → disputed; no transfer until confirmed); print it."""
    from yidi_cli.clearing_commands import run_dispute

    raise typer.Exit(run_dispute(address, tls, statement, reason, request_id))


@app.command("ledger")
@dials_node
def ledger(province: str = ProvinceOption, address: str = AddressOption, *, tls: ClientTls) -> None:
    """Every ledger account's balance and the check that the ledger sums to zero."""
    from yidi_cli.clearing_commands import run_ledger

    raise typer.Exit(run_ledger(address, tls, province))


@app.command("alerts")
@dials_node
def alerts(
    province: str = ProvinceOption,
    active_only: bool = typer.Option(False, "--active-only", help="Only alerts still active."),
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """Alerts: advance usage, overdue confirmations and transfers, ledger imbalance."""
    from yidi_cli.clearing_commands import run_alerts

    raise typer.Exit(run_alerts(address, tls, province, active_only))


@advance_app.command("set")
@dials_node
def advance_set(
    province: str = typer.Option(..., "--province", help="Province (PP0000)."),
    year: int = YearOption,
    amount: str = typer.Option(..., "--amount", help="Advance in yuan, e.g. 1200000.00."),
    request_id: str | None = RequestIdOption,
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """Set a province's advance for a year and show its usage."""
    from yidi_cli.clearing_commands import parse_yuan, run_advance_set

    amount_fen = parse_yuan(amount)
    if amount_fen is None:
        raise typer.BadParameter(f"{amount!r} is not a positive amount in yuan", param_hint="--amount")
    raise typer.Exit(run_advance_set(address, tls, province, year, amount_fen, request_id))


@advance_app.command("status")
@dials_node
def advance_status(
    province: str = typer.Option(..., "--province", help="Province (PP0000)."),
    year: int = YearOption,
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """A province's advance, what its insured used of it (not yet cleared) and the alert level."""
    from yidi_cli.clearing_commands import run_advance_status

    raise typer.Exit(run_advance_status(address, tls, province, year))


@advance_app.command("propose")
@dials_node
def advance_propose(
    year: int = YearOption,
    request_id: str | None = RequestIdOption,
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """Propose every province's advance for a year from its outflow the year before; show each basis."""
    from yidi_cli.clearing_commands import run_advance_propose

    raise typer.Exit(run_advance_propose(address, tls, year, request_id))


@advance_app.command("proposals")
@dials_node
def advance_proposals(
    year: int = YearOption,
    province: str = ProvinceOption,
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """A year's advance proposals and their basis (a province's operator, at its node: its own)."""
    from yidi_cli.clearing_commands import run_advance_proposals

    raise typer.Exit(run_advance_proposals(address, tls, year, province))


@advance_app.command("apply")
@dials_node
def advance_apply(
    province: str = typer.Option(..., "--province", help="Province (PP0000)."),
    year: int = YearOption,
    amount: str | None = typer.Option(
        None, "--amount", help="Another amount than proposed, in yuan (needs --reason)."
    ),
    reason: str = typer.Option("", "--reason", help="Why another amount than proposed."),
    request_id: str | None = RequestIdOption,
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """Apply a province's proposal: it becomes the year's advance (once), as proposed or as --amount."""
    from yidi_cli.clearing_commands import parse_yuan, run_advance_apply

    amount_fen = 0
    if amount is not None:
        parsed = parse_yuan(amount)
        if parsed is None:
            raise typer.BadParameter(f"{amount!r} is not a positive amount in yuan", param_hint="--amount")
        amount_fen = parsed
    raise typer.Exit(run_advance_apply(address, tls, year, province, amount_fen, reason, request_id))


@dials_node
def reconcile(
    day: str = typer.Option(..., "--date", help="Day to reconcile, yyyy-mm-dd (China calendar)."),
    to: str | None = typer.Option(None, "--to", help="Last day of a range (default: --date)."),
    province: str = ProvinceOption,
    repair: bool = typer.Option(
        False,
        "--repair",
        help="Repair what differs (one rule per kind), then reconcile again to show what is left.",
    ),
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """Compare what the treatment nodes, the national journal and the insured nodes recorded, by msgid and amount."""
    from yidi_cli.clearing_commands import run_reconcile

    first = _day(day, "--date")
    last = _day(to, "--to") if to else first
    if last < first:
        raise typer.BadParameter(f"{to} is before --date {day}", param_hint="--to")
    raise typer.Exit(run_reconcile(address, tls, first, last, province, repair))
