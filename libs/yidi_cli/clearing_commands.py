"""What `yidi clearing …` and `yidi reconcile` do: call the node, follow its jobs, print tables.

Exit codes: 0 done and whole; 1 the node refused (its stable reason and bad fields are
printed) or the job failed or is still running; 2 the CSV file cannot be written; 3 the node
cannot be reached; 4 the figures are not whole — net positions or the ledger not summing to zero, or discrepancies left
open that an operator must act on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeVar

import grpc
from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from yidi.clearing.v1 import reconciliation_pb2, statement_pb2
from yidi_cli import clearing_report as report
from yidi_cli.clearing_client import ClearingClient, RunT, StillRunning
from yidi_cli.client_tls import ClientTls
from yidi_cli.node_client import REFUSED, explain_refusal, open_channel
from yidi_core.money import to_fen

NOT_WHOLE = 4
UNWRITABLE = 2
Fetched = TypeVar("Fetched")
_WIDTH = 160
"""Tables are wide (msgids, three sides): a pipe or a narrow terminal still gets them whole."""


def console(*, stderr: bool = False) -> Console:
    """A console at least :data:`_WIDTH` columns wide unless a wider terminal is attached."""
    opened = Console(stderr=stderr)
    return opened if opened.is_terminal and opened.width >= _WIDTH else Console(stderr=stderr, width=_WIDTH)


@contextmanager
def _client(address: str, tls: ClientTls) -> Iterator[ClearingClient]:
    with open_channel(address, tls) as channel:
        yield ClearingClient(channel)


@contextmanager
def progress(
    describe: Callable[[RunT], str], counted: Callable[[RunT], int]
) -> Iterator[Callable[[RunT], None]]:
    """A progress line on standard error fed by each poll of a job (the count grows; the total is unknown)."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console(stderr=True), transient=True) as shown:
        task = shown.add_task("starting", total=None)

        def on_poll(run: RunT) -> None:
            shown.update(task, description=describe(run), completed=counted(run))

        yield on_poll


def _still_running(out: Console, what: str, error: StillRunning) -> int:
    out.print(f"{what} {error}; it goes on at the node", markup=False)
    return REFUSED


# -- clearing -----------------------------------------------------------------------------------


def _clearing_progress(run: statement_pb2.ClearingRun) -> str:
    return f"clearing {run.period}: {report.job_state_name(run.state)}, {run.entries_counted} journal entries counted"


def run_clearing(address: str, tls: ClientTls, period: str, request_id: str | None) -> int:
    """Start (or rejoin) the clearing of ``period``, follow it, print its statements; the exit code."""
    out = console()
    with _client(address, tls) as client:
        try:
            with progress(_clearing_progress, lambda run: run.entries_counted) as on_poll:
                run = client.clear(period, request_id, on_poll)
        except grpc.RpcError as error:
            return explain_refusal(error)
        except StillRunning as error:
            return _still_running(out, "clearing run", error)
        if run.state != statement_pb2.JOB_STATE_SUCCEEDED:
            out.print(f"clearing run {run.run_id} failed: {run.failure_reason}", markup=False)
            return REFUSED
        try:
            issued = set(run.statement_ids)
            statements = [s for s in client.statements(run.period) if s.statement_id in issued]
        except grpc.RpcError as error:
            return explain_refusal(error)
    out.print(
        f"clearing run {run.run_id}: {run.period} cleared, {run.entries_counted} journal entries counted, "
        f"{len(statements)} statements issued",
        markup=False,
    )
    out.print(report.statements_view(statements))
    return 0 if report.nets_sum_fen(statements) == 0 else NOT_WHOLE


def run_statements(address: str, tls: ClientTls, period: str, province: str, csv_target: str | None) -> int:
    """Print a period's statements (or write them as CSV, ``-`` for standard output); the exit code."""
    out = console(stderr=csv_target == "-")
    with _client(address, tls) as client:
        try:
            statements = client.statements(period, province)
        except grpc.RpcError as error:
            return explain_refusal(error)
    every_province = not province and report.lists_every_province(statements)
    if csv_target == "-":
        report.write_statements_csv(sys.stdout, statements)
    else:
        if not statements:
            out.print(f"no statements for {period}{' of ' + province if province else ''}", markup=False)
        else:
            out.print(report.statements_view(statements, every_province=every_province))
        if csv_target is not None:
            try:
                with Path(csv_target).open("w", encoding="utf-8", newline="") as handle:
                    rows = report.write_statements_csv(handle, statements)
            except OSError as error:
                out.print(f"yidi: cannot write {csv_target}: {error.strerror}", markup=False)
                return UNWRITABLE
            out.print(f"wrote {rows} statement lines to {csv_target}", markup=False)
    whole = not every_province or report.nets_sum_fen(statements) == 0
    return 0 if whole else NOT_WHOLE


def run_confirm(
    address: str, tls: ClientTls, statement_id: str, confirmed_by: str, request_id: str | None
) -> int:
    """Confirm a statement and print it; the exit code."""
    return _fetch_and_print(
        address,
        tls,
        lambda client: client.confirm(statement_id, confirmed_by, request_id),
        report.statement_table,
    )


def run_dispute(address: str, tls: ClientTls, statement_id: str, reason: str, request_id: str | None) -> int:
    """Dispute a statement with a reason and print it; the exit code."""
    return _fetch_and_print(
        address,
        tls,
        lambda client: client.dispute(statement_id, reason, request_id),
        report.statement_table,
    )


def _fetch_and_print(
    address: str,
    tls: ClientTls,
    fetch: Callable[[ClearingClient], Fetched],
    render: Callable[[Fetched], RenderableType],
    whole: Callable[[Fetched], bool] = lambda _: True,
) -> int:
    """One call, its answer printed; 0, or :data:`NOT_WHOLE` when ``whole`` says the figures do not add up."""
    with _client(address, tls) as client:
        try:
            fetched = fetch(client)
        except grpc.RpcError as error:
            return explain_refusal(error)
    console().print(render(fetched))
    return 0 if whole(fetched) else NOT_WHOLE


def run_ledger(address: str, tls: ClientTls, province: str) -> int:
    """Print the ledger's balances and its zero-sum check; the exit code."""
    return _fetch_and_print(
        address,
        tls,
        lambda client: client.ledger(province),
        report.ledger_table,
        lambda ledger: ledger.balanced,
    )


def parse_yuan(text: str) -> int | None:
    """A positive amount in yuan (at most two decimals) as fen; None when it is not one."""
    try:
        fen = to_fen(Decimal(text.strip()))
    except (InvalidOperation, ValueError):
        return None
    return fen if fen > 0 else None


def run_advance_set(
    address: str, tls: ClientTls, province: str, year: int, amount_fen: int, request_id: str | None
) -> int:
    """Set a province's advance for a year and print its status; the exit code."""
    return _fetch_and_print(
        address,
        tls,
        lambda client: client.set_advance(province, year, amount_fen, request_id),
        report.advance_table,
    )


def run_advance_status(address: str, tls: ClientTls, province: str, year: int) -> int:
    """Print a province's advance status; the exit code."""
    return _fetch_and_print(
        address, tls, lambda client: client.advance_status(province, year), report.advance_table
    )


def run_advance_propose(address: str, tls: ClientTls, year: int, request_id: str | None) -> int:
    """Propose every province's advance for a year and print the proposals; the exit code."""
    return _fetch_and_print(
        address, tls, lambda client: client.propose_advances(year, request_id), report.proposals_table
    )


def run_advance_proposals(address: str, tls: ClientTls, year: int, province: str) -> int:
    """Print a year's advance proposals; the exit code."""
    return _fetch_and_print(
        address, tls, lambda client: client.advance_proposals(year, province), report.proposals_table
    )


def run_advance_apply(
    address: str,
    tls: ClientTls,
    year: int,
    province: str,
    amount_fen: int,
    reason: str,
    request_id: str | None,
) -> int:
    """Apply a province's proposal and print it and the advance it set; the exit code."""
    return _fetch_and_print(
        address,
        tls,
        lambda client: client.apply_advance_proposal(year, province, amount_fen, reason, request_id),
        lambda applied: Group(
            report.proposals_table([applied.proposal]), report.advance_table(applied.status)
        ),
    )


def run_alerts(address: str, tls: ClientTls, province: str, active_only: bool) -> int:
    """Print the clearing alerts; the exit code."""
    return _fetch_and_print(
        address,
        tls,
        lambda client: client.alerts(province, active_only=active_only),
        lambda alerts: report.alerts_table(alerts) if alerts else "no alerts",
    )


# -- reconciliation ---------------------------------------------------------------------------------


def _reconciliation_progress(run: reconciliation_pb2.ReconciliationRun) -> str:
    return (
        f"reconciling: {report.job_state_name(run.state)}, {run.compared_count} settlements compared, "
        f"{run.discrepancy_count} differences"
    )


def _reconcile_and_show(
    out: Console, client: ClearingClient, first: date, last: date, province: str
) -> tuple[reconciliation_pb2.ReconciliationRun, list[reconciliation_pb2.Discrepancy]] | None:
    """One run, its report and its discrepancies printed; None when the run failed."""
    with progress(_reconciliation_progress, lambda run: run.compared_count) as on_poll:
        run = client.reconcile(first, last, province, on_poll)
    if run.state != statement_pb2.JOB_STATE_SUCCEEDED:
        out.print(f"reconciliation run {run.run_id} failed: {run.failure_reason}", markup=False)
        return None
    out.print(
        f"reconciliation run {run.run_id}: {first} to {last}, {run.compared_count} settlements compared, "
        f"{run.discrepancy_count} differences",
        markup=False,
    )
    lines = client.report_lines(run.run_id)
    out.print(report.lines_table(lines) if lines else "no settlement on these days")
    found = client.discrepancies(run.run_id)
    if found:
        out.print(report.discrepancies_table(found))
    return run, found


def run_reconcile(address: str, tls: ClientTls, first: date, last: date, province: str, repair: bool) -> int:
    """Reconcile the days; with ``repair``, repair what differs and reconcile again; the exit code."""
    out = console()
    with _client(address, tls) as client:
        try:
            shown = _reconcile_and_show(out, client, first, last, province)
            if shown is None:
                return REFUSED
            run, found = shown
            still_open = [d for d in found if not d.repaired]
            if not repair or not still_open:
                if still_open:
                    out.print(
                        f"{len(still_open)} differences open: `--repair` repairs what a rule covers",
                        markup=False,
                    )
                return NOT_WHOLE if still_open else 0
            repaired = client.repair(run.run_id)
            out.print(
                report.discrepancies_table(
                    repaired.discrepancies,
                    f"Repair: {repaired.repaired_count} repaired, {repaired.failed_count} left for an operator",
                )
            )
            out.print("reconciling again after the repair", markup=False)
            shown = _reconcile_and_show(out, client, first, last, province)
        except grpc.RpcError as error:
            return explain_refusal(error)
        except StillRunning as error:
            return _still_running(out, "reconciliation run", error)
    if shown is None:
        return REFUSED
    left = [d for d in shown[1] if not d.repaired]
    if left:
        out.print(f"[bold yellow]{len(left)} differences need an operator[/] (both records are shown above)")
        return NOT_WHOLE
    out.print("[green]✓[/] reconciled: no difference open")
    return 0
