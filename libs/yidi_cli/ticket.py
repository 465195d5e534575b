"""`yidi ticket`: open, answer, follow up, close, list and show collaboration tickets at the caller's own node.

Every command exits 0 on success, 1 with the node's stable reason (and every bad field) when
the node refuses, 3 when the node cannot be reached. The gRPC machinery loads lazily.
"""

from __future__ import annotations

from enum import StrEnum

import typer

from yidi_cli.client_tls import ClientTls, dials_node

app = typer.Typer(
    help="Collaboration tickets (协同处理) between a treatment place and an insured place.",
    no_args_is_help=True,
)

AddressOption = typer.Option("127.0.0.1:50051", "--address", help="Your own node's gRPC address.")
RequestIdOption = typer.Option(None, "--request-id", help="Message id; repeat it to retry safely.")
TicketArgument = typer.Argument(..., help="The ticket id.")


class Kind(StrEnum):
    """What a ticket is about."""

    VISIT = "visit"
    SETTLEMENT = "settlement"
    FILING = "filing"


class Category(StrEnum):
    """The kind of problem."""

    DISPUTED_AMOUNT = "disputed-amount"
    MISSING_RECORD = "missing-record"
    PATIENT_COMPLAINT = "patient-complaint"


class Side(StrEnum):
    """A party of a ticket."""

    TREATMENT = "treatment"
    INSURED = "insured"


class TicketState(StrEnum):
    """Where a ticket stands."""

    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"


KindOption = typer.Option(..., "--kind", help="What the ticket is about.")
CategoryOption = typer.Option(..., "--category", help="The kind of problem.")
OpenerOption = typer.Option(None, "--opener", help="The party you open for, when you may act for both.")
StateOption = typer.Option([], "--state", help="Only tickets in this state (repeatable).")


@app.command("open")
@dials_node
def open_ticket(
    kind: Kind = KindOption,
    subject: str = typer.Option(..., "--subject", help="The visit's, settlement's or filing's id."),
    category: Category = CategoryOption,
    treatment: str = typer.Option(..., "--treatment", help="The treatment region (就医地)."),
    insured: str = typer.Option(..., "--insured", help="The insured region (参保地)."),
    text: str = typer.Option(..., "--text", help="What the problem is."),
    institution: str = typer.Option("", "--institution", help="The institution concerned (fixmedins_code)."),
    opener: Side | None = OpenerOption,
    request_id: str | None = RequestIdOption,
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """Open a ticket; it goes to the other party's node and awaits its answer."""
    from yidi_cli.ticket_client import open_request, run_change

    request = open_request(
        kind.value,
        subject,
        category.value,
        treatment,
        insured,
        institution,
        opener and opener.value,
        text,
        request_id,
    )
    raise typer.Exit(run_change(address, tls, "OpenTicket", request))


def _change(
    method: str, ticket_id: str, text: str, request_id: str | None, address: str, tls: ClientTls
) -> None:
    from yidi_cli.ticket_client import change_request, run_change

    raise typer.Exit(run_change(address, tls, method, change_request(method, ticket_id, text, request_id)))


@app.command("answer")
@dials_node
def answer(
    ticket_id: str = TicketArgument,
    text: str = typer.Option(..., "--text", help="The answer."),
    request_id: str | None = RequestIdOption,
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """Answer an open ticket that awaits your party."""
    _change("AnswerTicket", ticket_id, text, request_id, address, tls)


@app.command("follow-up")
@dials_node
def follow_up(
    ticket_id: str = TicketArgument,
    text: str = typer.Option(..., "--text", help="What is still wrong."),
    request_id: str | None = RequestIdOption,
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """Follow up an answered ticket you opened: it is open again."""
    _change("FollowUpTicket", ticket_id, text, request_id, address, tls)


@app.command("close")
@dials_node
def close(
    ticket_id: str = TicketArgument,
    text: str = typer.Option("", "--text", help="A closing note."),
    request_id: str | None = RequestIdOption,
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """Close an answered ticket you opened."""
    _change("CloseTicket", ticket_id, text, request_id, address, tls)


@app.command("list")
@dials_node
def list_tickets(
    state: list[TicketState] = StateOption,
    overdue_only: bool = typer.Option(False, "--overdue-only", help="Only tickets past their due date."),
    everything: bool = typer.Option(False, "--all", help="Also tickets awaiting the other party."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="Rows to show (earliest due date first)."),
    address: str = AddressOption,
    *,
    tls: ClientTls,
) -> None:
    """The node's queue: tickets awaiting your regions, earliest due date first."""
    from yidi_cli.ticket_client import run_list

    raise typer.Exit(run_list(address, tls, [s.value for s in state], overdue_only, everything, limit))


@app.command("show")
@dials_node
def show(ticket_id: str = TicketArgument, address: str = AddressOption, *, tls: ClientTls) -> None:
    """One ticket with every message."""
    from yidi_cli.ticket_client import run_show

    raise typer.Exit(run_show(address, tls, ticket_id))
