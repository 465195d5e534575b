"""The gRPC side of `yidi ticket`: building requests, calling the caller's node, printing tickets.

Kept apart from the command definitions so `yidi` starts without loading gRPC for other commands.
"""

from __future__ import annotations

import grpc
from google.protobuf.message import Message
from google.type import date_pb2
from rich.console import Console
from rich.table import Table

from yidi.collaboration.v1 import collaboration_service_pb2 as api
from yidi.collaboration.v1 import collaboration_service_pb2_grpc as api_grpc
from yidi.collaboration.v1 import ticket_pb2 as pb
from yidi_cli.client_tls import ClientTls
from yidi_cli.node_client import explain_refusal, message_id, open_channel

_CHANGES = {
    "AnswerTicket": api.AnswerTicketRequest,
    "FollowUpTicket": api.FollowUpTicketRequest,
    "CloseTicket": api.CloseTicketRequest,
}


def _value(enum: object, prefix: str, name: str) -> int:
    return int(enum.Value(prefix + name.replace("-", "_").upper()))  # type: ignore[attr-defined]


def _name(enum: object, prefix: str, number: int) -> str:
    return str(enum.Name(number)).removeprefix(prefix).lower().replace("_", "-") if number else "—"  # type: ignore[attr-defined]


def open_request(
    kind: str,
    subject: str,
    category: str,
    treatment: str,
    insured: str,
    institution: str,
    opener: str | None,
    text: str,
    request_id: str | None,
) -> api.OpenTicketRequest:
    """OpenTicket from the command's options."""
    return api.OpenTicketRequest(
        request_id=request_id or message_id(treatment),
        subject_kind=_value(pb.TicketSubjectKind, "TICKET_SUBJECT_KIND_", kind),  # type: ignore[arg-type]
        subject_id=subject,
        category=_value(pb.TicketCategory, "TICKET_CATEGORY_", category),  # type: ignore[arg-type]
        treatment_admdvs=treatment,
        insured_admdvs=insured,
        fixmedins_code=institution,
        opener=_value(pb.TicketParty, "TICKET_PARTY_", opener) if opener else 0,  # type: ignore[arg-type]
        text=text,
    )


def change_request(method: str, ticket_id: str, text: str, request_id: str | None) -> Message:
    """AnswerTicket, FollowUpTicket or CloseTicket from the command's options."""
    return _CHANGES[method](
        request_id=request_id or message_id(ticket_id[:6]), ticket_id=ticket_id, text=text
    )


def _day(value: date_pb2.Date) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}" if value.year else "—"


def _summary(ticket: pb.Ticket) -> str:
    state = _name(pb.TicketState, "TICKET_STATE_", ticket.state)
    awaiting = _name(pb.TicketParty, "TICKET_PARTY_", ticket.awaiting)
    overdue = " (overdue)" if ticket.overdue else ""
    return f"ticket {ticket.ticket_id}: {state}, awaiting {awaiting}, due {_day(ticket.due_date)}{overdue}"


def run_change(address: str, tls: ClientTls, method: str, request: Message) -> int:
    """Send an opening or a change to the node and print the ticket as it now stands; the exit code."""
    with open_channel(address, tls) as channel:
        try:
            answer = getattr(api_grpc.CollaborationServiceStub(channel), method)(request, timeout=30)
        except grpc.RpcError as error:
            return explain_refusal(error)
    print(_summary(answer.ticket))
    return 0


def run_list(
    address: str, tls: ClientTls, states: list[str], overdue_only: bool, everything: bool, limit: int
) -> int:
    """Print the first ``limit`` tickets of the node's queue; the exit code."""
    request = api.ListTicketsRequest(
        states=[_value(pb.TicketState, "TICKET_STATE_", state) for state in states],  # type: ignore[misc]
        overdue_only=overdue_only,
        include_not_awaiting=everything,
        page_size=limit,
    )
    with open_channel(address, tls) as channel:
        try:
            answer = api_grpc.CollaborationServiceStub(channel).ListTickets(request, timeout=30)
        except grpc.RpcError as error:
            return explain_refusal(error)
    table = Table(title=f"{answer.total_size} tickets, {answer.overdue_count} overdue")
    for column in ("ticket", "about", "category", "treatment", "insured", "state", "awaiting", "due"):
        table.add_column(column)
    for ticket in answer.tickets:
        table.add_row(
            ticket.ticket_id,
            f"{_name(pb.TicketSubjectKind, 'TICKET_SUBJECT_KIND_', ticket.subject_kind)} {ticket.subject_id}",
            _name(pb.TicketCategory, "TICKET_CATEGORY_", ticket.category),
            ticket.fixmedins_code or ticket.treatment_admdvs,
            ticket.insured_admdvs,
            _name(pb.TicketState, "TICKET_STATE_", ticket.state),
            _name(pb.TicketParty, "TICKET_PARTY_", ticket.awaiting),
            _day(ticket.due_date) + (" overdue" if ticket.overdue else ""),
        )
    console = Console(width=200)
    console.print(table)
    if answer.next_page_token:
        console.print(f"showing the first {len(answer.tickets)}; raise --limit to see more", markup=False)
    return 0


def run_show(address: str, tls: ClientTls, ticket_id: str) -> int:
    """Print one ticket and its messages; the exit code."""
    with open_channel(address, tls) as channel:
        try:
            ticket = (
                api_grpc.CollaborationServiceStub(channel)
                .GetTicket(api.GetTicketRequest(ticket_id=ticket_id), timeout=30)
                .ticket
            )
        except grpc.RpcError as error:
            return explain_refusal(error)
    print(_summary(ticket))
    kind = _name(pb.TicketSubjectKind, "TICKET_SUBJECT_KIND_", ticket.subject_kind)
    print(
        f"about {kind} {ticket.subject_id}, {_name(pb.TicketCategory, 'TICKET_CATEGORY_', ticket.category)}"
    )
    for message in ticket.messages:
        party = _name(pb.TicketParty, "TICKET_PARTY_", message.party)
        action = _name(pb.TicketAction, "TICKET_ACTION_", message.action)
        print(f"  {message.seq}. {action} by {message.author} ({party}): {message.text}")
    return 0
