"""CollaborationService over gRPC: each party changes a ticket at its own node, which tells the other's.

A change is checked (the caller may act for the party the ticket awaits, at the node that
serves that party's region), recorded with the request log (a repeated ``request_id`` gets
the original answer) and, in the same transaction, queued in the service's outbox as a
``SyncTicket`` to the node serving the other party, which applies it with the same state
machine. The clock is injected; due dates count working days of ``[collaboration]``'s calendar.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import date

import grpc
from google.protobuf.message import Message as ProtoMessage
from sqlalchemy.orm import Session

from yidi.collaboration.v1 import collaboration_service_pb2 as api
from yidi.collaboration.v1 import collaboration_service_pb2_grpc as api_grpc
from yidi_core.codes import check_region
from yidi_core.errors import DomainError, invalid
from yidi_runtime import identity
from yidi_runtime.idempotency import RequestLog, Response
from yidi_runtime.identity import CallerRole, Principal
from yidi_runtime.outbox import Outbox, OutboxDeliverer
from yidi_runtime.relay import Region, Relay
from yidi_runtime.routing import Hop
from yidi_runtime.service import ServiceContext
from yidi_runtime.wire import CHINA_STANDARD_TIME, Clock, china_day, wall_clock
from yidi_runtime.working_days import WorkingCalendar
from yidi_services.collaboration import access, convert, store
from yidi_services.collaboration.metrics import register_queue_gauges
from yidi_services.collaboration.models import OutboxMessage, RequestRecord
from yidi_services.collaboration.tickets import (
    Action,
    Message,
    Opening,
    Party,
    Subject,
    Ticket,
    acting_party,
    checked_opening,
    checked_text,
    step,
)

SYNC_TICKET = api.DESCRIPTOR.services_by_name["CollaborationService"].methods_by_name["SyncTicket"]


class CollaborationServicer(api_grpc.CollaborationServiceServicer):
    """Tickets of the parties this node serves, and its queue."""

    def __init__(self, context: ServiceContext, outbox: Outbox, clock: Clock = wall_clock) -> None:
        settings = context.settings
        self._database = context.database
        self._router = context.router
        self._outbox = outbox
        self._relay = Relay(context.router, api_grpc.CollaborationServiceStub)
        self._insecure = settings.insecure
        self._clock = clock
        self._log = RequestLog(RequestRecord)
        self._calendar = WorkingCalendar(
            frozenset(settings.collaboration_holidays), frozenset(settings.collaboration_working_weekends)
        )
        self._answer_days = settings.collaboration_answer_working_days
        self._close_days = settings.collaboration_close_working_days
        register_queue_gauges(context.metrics_registry, context.database, self._today)

    def _today(self) -> date:
        return china_day(self._clock())

    def _serves(self, region: str) -> bool:
        """Whether this node is where ``region``'s calls stop."""
        try:
            return self._router.route(region).hop is Hop.HERE
        except DomainError:
            return False

    def _ensure_served(self, subject: Subject, party: Party) -> None:
        region = subject.region(party)
        if not self._serves(region):
            raise DomainError(
                "PERMISSION_DENIED_REGION",
                f"the {party} party's region {region} is served by another node: act on the ticket there",
                metadata={"admdvs": region, "node_region": self._router.settings.region},
            )

    def _due(self, action: Action, today: date) -> date | None:
        """The due date a change sets for the party awaited next (none once closed)."""
        if action is Action.CLOSE:
            return None
        return self._calendar.add(today, self._close_days if action is Action.ANSWER else self._answer_days)

    def _record(self, session: Session, ticket: Ticket, stored_version: int, party: Party) -> None:
        """Store the ticket changed by ``party`` and queue the change for the other party's node."""
        subject = ticket.subject
        awaiting = ticket.awaiting
        store.save(
            session, ticket, stored_version, awaiting is not None and self._serves(subject.region(awaiting))
        )
        other = subject.region(party.other)
        if not self._serves(other):
            sync = api.SyncTicketRequest(
                request_id=f"{subject.ticket_id}:{ticket.version}",
                sender_admdvs=subject.region(party),
                ticket=convert.ticket(ticket, self._today()),
            )
            self._outbox.add(session, other, SYNC_TICKET, sync)

    def _once(
        self,
        request_id: str,
        method: str,
        request: ProtoMessage,
        kind: type[Response],
        effect: Callable[[Session], Response],
    ) -> Response:
        return self._log.run_once(self._database, request_id, method, [request], kind, effect)

    def _opener(self, principal: Principal, opening: Opening, subject: Subject) -> Party:
        """The party the caller opens for: as asked, else the one party it may act for at this node."""
        if opening.opener is not None:
            return opening.opener
        if principal.role is CallerRole.INSTITUTION:
            return Party.TREATMENT
        parties = [
            party
            for party in Party
            if access.may_act_for(principal, subject, party) and self._serves(subject.region(party))
        ]
        if len(parties) > 1:
            raise invalid(
                "INVALID_ARGUMENT", "opener", "is required: the caller may open for either party here"
            )
        return parties[0] if parties else Party.TREATMENT

    def OpenTicket(
        self, request: api.OpenTicketRequest, context: grpc.ServicerContext
    ) -> api.OpenTicketResponse:
        opening = checked_opening(convert.opening(request, request.text))
        principal = identity.acting()

        def effect(session: Session) -> api.OpenTicketResponse:
            now, today = self._clock(), self._today()
            draft = convert.subject_of("", opening, Party.TREATMENT)
            opener = self._opener(principal, opening, draft)
            region = draft.region(opener)
            ticket_id = (
                f"{region}{now.astimezone(CHINA_STANDARD_TIME):%Y%m%d%H%M%S}{secrets.token_hex(5).upper()}"
            )
            subject = convert.subject_of(ticket_id, opening, opener)
            access.ensure_may_act(principal, subject, opener)
            self._ensure_served(subject, opener)
            step(subject, None, Action.OPEN, opener)
            first = Message(
                1, Action.OPEN, opener, principal.subject, opening.text, now, self._due(Action.OPEN, today)
            )
            ticket = Ticket(subject, (first,))
            self._record(session, ticket, 0, opener)
            return api.OpenTicketResponse(ticket=convert.ticket(ticket, today))

        return self._once(request.request_id, "OpenTicket", request, api.OpenTicketResponse, effect)

    def _change(self, action: Action, ticket_id: str, text: str) -> Callable[[Session], Ticket]:
        """The effect of answering, following up or closing: the ticket after the change."""
        words = checked_text(text, "text", required=action is not Action.CLOSE)
        if not ticket_id:
            raise invalid("INVALID_ARGUMENT", "ticket_id", "is required")
        principal = identity.acting()

        def effect(session: Session) -> Ticket:
            ticket = store.get(session, ticket_id, lock=True)
            party = acting_party(ticket.subject, action)
            access.ensure_may_act(principal, ticket.subject, party)
            self._ensure_served(ticket.subject, party)
            step(ticket.subject, ticket.state, action, party)
            message = Message(
                ticket.version + 1,
                action,
                party,
                principal.subject,
                words,
                self._clock(),
                self._due(action, self._today()),
            )
            changed = ticket.with_message(message)
            self._record(session, changed, ticket.version, party)
            return changed

        return effect

    def _turn(
        self,
        action: Action,
        method: str,
        request: api.AnswerTicketRequest | api.FollowUpTicketRequest | api.CloseTicketRequest,
        kind: type[Response],
    ) -> Response:
        """Answer, follow up or close once per ``request_id``; the answer holds the ticket after it."""
        change = self._change(action, request.ticket_id, request.text)
        return self._once(
            request.request_id,
            method,
            request,
            kind,
            lambda session: kind(ticket=convert.ticket(change(session), self._today())),  # type: ignore[call-arg]
        )

    def AnswerTicket(
        self, request: api.AnswerTicketRequest, context: grpc.ServicerContext
    ) -> api.AnswerTicketResponse:
        return self._turn(Action.ANSWER, "AnswerTicket", request, api.AnswerTicketResponse)

    def FollowUpTicket(
        self, request: api.FollowUpTicketRequest, context: grpc.ServicerContext
    ) -> api.FollowUpTicketResponse:
        return self._turn(Action.FOLLOW_UP, "FollowUpTicket", request, api.FollowUpTicketResponse)

    def CloseTicket(
        self, request: api.CloseTicketRequest, context: grpc.ServicerContext
    ) -> api.CloseTicketResponse:
        return self._turn(Action.CLOSE, "CloseTicket", request, api.CloseTicketResponse)

    def GetTicket(
        self, request: api.GetTicketRequest, context: grpc.ServicerContext
    ) -> api.GetTicketResponse:
        if not request.ticket_id:
            raise invalid("INVALID_ARGUMENT", "ticket_id", "is required")
        with self._database.unit_of_work() as uow:
            ticket = store.get(uow.session, request.ticket_id)
        access.ensure_may_read(identity.acting(), ticket.subject)
        return api.GetTicketResponse(ticket=convert.ticket(ticket, self._today()))

    def ListTickets(
        self, request: api.ListTicketsRequest, context: grpc.ServicerContext
    ) -> api.ListTicketsResponse:
        principal = identity.acting()
        query = store.TicketQuery(
            states=tuple(convert.state(number, f"states[{i}]") for i, number in enumerate(request.states)),
            overdue_only=request.overdue_only,
            include_not_awaiting=request.include_not_awaiting,
            fixmedins_code=principal.name if principal.role is CallerRole.INSTITUTION else "",
            page_size=request.page_size,
            page_token=request.page_token,
        )
        today = self._today()
        with self._database.unit_of_work() as uow:
            page = store.list_tickets(uow.session, query, today)
        return api.ListTicketsResponse(
            tickets=[convert.ticket(ticket, today, messages=False) for ticket in page.tickets],
            next_page_token=page.next_page_token,
            total_size=page.total_size,
            overdue_count=page.overdue_count,
        )

    def SyncTicket(
        self, request: api.SyncTicketRequest, context: grpc.ServicerContext
    ) -> api.SyncTicketResponse:
        ticket = request.ticket
        sent_by_insured = request.sender_admdvs == ticket.insured_admdvs
        field = "treatment_admdvs" if sent_by_insured else "insured_admdvs"
        toward = Region(getattr(ticket, field), f"ticket.{field}")
        return self._relay.answer("SyncTicket", request, context, toward, lambda: self._sync(request))

    def _sync(self, request: api.SyncTicketRequest) -> api.SyncTicketResponse:
        """Apply a ticket's change sent by the other party's node (this node serves the receiving party)."""
        sender_region = check_region(request.sender_admdvs, "sender_admdvs")
        if not request.HasField("ticket"):
            raise invalid("INVALID_ARGUMENT", "ticket", "is required")
        incoming = convert.received(request.ticket)
        subject = incoming.subject
        sender = next((party for party in Party if subject.region(party) == sender_region), None)
        if sender is None:
            raise invalid("INVALID_ARGUMENT", "sender_admdvs", "is neither party's region")
        self._ensure_served(subject, sender.other)
        for message in incoming.messages:
            author = access.author(message.author, insecure=self._insecure)
            if author is None or not access.may_act_for(author, subject, message.party):
                raise DomainError(
                    "PERMISSION_DENIED_REGION",
                    f"message {message.seq} names an author who may not act for the {message.party} party",
                    metadata={"ticket_id": subject.ticket_id, "seq": str(message.seq)},
                )

        def effect(session: Session) -> api.SyncTicketResponse:
            local = store.find(session, subject.ticket_id, lock=True)
            stored = 0 if local is None else local.version
            if local is not None and (
                local.subject != subject or _said(incoming, stored) != _said(local, stored)
            ):
                raise invalid("INVALID_ARGUMENT", "ticket", "differs from what this node holds of the ticket")
            ticket = local
            for message in incoming.messages[stored:]:
                if message.party is not sender:
                    raise DomainError(
                        "PERMISSION_DENIED_REGION",
                        f"node of {sender_region} sent a change of the {message.party} party",
                        metadata={"ticket_id": subject.ticket_id, "seq": str(message.seq)},
                    )
                step(subject, None if ticket is None else ticket.state, message.action, message.party)
                ticket = Ticket(subject, (message,)) if ticket is None else ticket.with_message(message)
            if ticket is not None and ticket.version > stored:
                awaiting = ticket.awaiting
                store.save(
                    session, ticket, stored, awaiting is not None and self._serves(subject.region(awaiting))
                )
            return api.SyncTicketResponse(version=max(stored, incoming.version))

        return self._once(request.request_id, "SyncTicket", request, api.SyncTicketResponse, effect)


def _said(ticket: Ticket, count: int) -> list[tuple[object, ...]]:
    """What the first ``count`` messages say (their times aside: databases keep them at different precisions)."""
    return [(m.seq, m.action, m.party, m.author, m.text, m.due_date) for m in ticket.messages[:count]]


def register(server: grpc.Server, context: ServiceContext, clock: Clock = wall_clock) -> Sequence[str]:
    """Add the collaboration service and its outbox's deliverer to a node; returns the gRPC service name.

    ``clock`` is the business clock (opening times, due dates); the outbox paces its deliveries
    on the wall clock.
    """
    outbox = Outbox(OutboxMessage)
    context.run_in_background(
        OutboxDeliverer(outbox, context.database, context.router, context.metrics_registry)
    )
    api_grpc.add_CollaborationServiceServicer_to_server(CollaborationServicer(context, outbox, clock), server)
    return [api.DESCRIPTOR.services_by_name["CollaborationService"].full_name]
