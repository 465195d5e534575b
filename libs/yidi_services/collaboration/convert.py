"""Proto messages ↔ the collaboration service's plain values; a ticket received from another node is checked here."""

from __future__ import annotations

from datetime import date
from typing import Any

from yidi.collaboration.v1 import collaboration_service_pb2 as api
from yidi.collaboration.v1 import ticket_pb2 as pb
from yidi_core.errors import DomainError, combine, invalid
from yidi_runtime.idempotency import MAX_OWNER
from yidi_runtime.wire import date_message, day_of, stamp_moment, timestamp_message
from yidi_services.collaboration.tickets import (
    TICKET_ID,
    Action,
    Category,
    Message,
    Opening,
    Party,
    State,
    Subject,
    SubjectKind,
    Ticket,
    checked_opening,
    checked_text,
)


def _name(enum: Any, prefix: str, number: int) -> str:
    """An enum value as the service's name ('' when unspecified, the bare number when unknown)."""
    if number == 0:
        return ""
    try:
        return str(enum.Name(number)).removeprefix(prefix).lower()
    except ValueError:
        return str(number)


def _number(enum: Any, prefix: str, value: str) -> int:
    return int(enum.Value(prefix + value.upper()))


def party(number: int) -> Party | None:
    """A TicketParty; None when unspecified or unknown."""
    name = _name(pb.TicketParty, "TICKET_PARTY_", number)
    return Party(name) if name in {p.value for p in Party} else None


def state(number: int, field: str) -> State:
    """A TicketState given as a filter; an unknown or unspecified one refused naming ``field``."""
    name = _name(pb.TicketState, "TICKET_STATE_", number)
    if name not in {s.value for s in State}:
        raise invalid("INVALID_ARGUMENT", field, f"{number} is not a ticket state")
    return State(name)


def opening(fields: api.OpenTicketRequest | pb.Ticket, text: str) -> Opening:
    """An OpenTicket's fields (or a received ticket's, whose text is its first message's) as plain values."""
    return Opening(
        subject_kind=_name(pb.TicketSubjectKind, "TICKET_SUBJECT_KIND_", fields.subject_kind),
        subject_id=fields.subject_id,
        category=_name(pb.TicketCategory, "TICKET_CATEGORY_", fields.category),
        treatment_admdvs=fields.treatment_admdvs,
        insured_admdvs=fields.insured_admdvs,
        fixmedins_code=fields.fixmedins_code,
        opener=party(fields.opener),
        text=text,
    )


def subject_of(ticket_id: str, checked: Opening, opener: Party) -> Subject:
    """The subject of a ticket from a checked opening."""
    return Subject(
        ticket_id=ticket_id,
        subject_kind=SubjectKind(checked.subject_kind),
        subject_id=checked.subject_id,
        category=Category(checked.category),
        treatment_admdvs=checked.treatment_admdvs,
        insured_admdvs=checked.insured_admdvs,
        fixmedins_code=checked.fixmedins_code,
        opener=opener,
    )


def _message(value: Message) -> pb.TicketMessage:
    return pb.TicketMessage(
        seq=value.seq,
        action=_number(pb.TicketAction, "TICKET_ACTION_", value.action.value),  # type: ignore[arg-type]
        party=_number(pb.TicketParty, "TICKET_PARTY_", value.party.value),  # type: ignore[arg-type]
        author=value.author,
        text=value.text,
        create_time=timestamp_message(value.at),
        due_date=date_message(value.due_date),
    )


def ticket(value: Ticket, today: date, *, messages: bool = True) -> pb.Ticket:
    """A ticket as its message, ``overdue`` as of ``today``."""
    subject = value.subject
    awaiting = value.awaiting
    opened = value.messages[0]
    answered = value.last(Action.ANSWER)
    closed = value.last(Action.CLOSE) if value.state is State.CLOSED else None
    return pb.Ticket(
        ticket_id=subject.ticket_id,
        subject_kind=_number(pb.TicketSubjectKind, "TICKET_SUBJECT_KIND_", subject.subject_kind.value),  # type: ignore[arg-type]
        subject_id=subject.subject_id,
        category=_number(pb.TicketCategory, "TICKET_CATEGORY_", subject.category.value),  # type: ignore[arg-type]
        treatment_admdvs=subject.treatment_admdvs,
        insured_admdvs=subject.insured_admdvs,
        fixmedins_code=subject.fixmedins_code,
        opener=_number(pb.TicketParty, "TICKET_PARTY_", subject.opener.value),  # type: ignore[arg-type]
        state=_number(pb.TicketState, "TICKET_STATE_", value.state.value),  # type: ignore[arg-type]
        awaiting=_number(pb.TicketParty, "TICKET_PARTY_", awaiting.value) if awaiting else 0,  # type: ignore[arg-type]
        due_date=date_message(value.due_date),
        overdue=value.overdue(today),
        version=value.version,
        open_time=timestamp_message(opened.at),
        opened_by=opened.author,
        answer_time=timestamp_message(answered.at if answered else None),
        answered_by=answered.author if answered else "",
        close_time=timestamp_message(closed.at if closed else None),
        closed_by=closed.author if closed else "",
        messages=[_message(message) for message in value.messages] if messages else [],
    )


def _received_message(message: pb.TicketMessage, index: int) -> Message:
    field = f"ticket.messages[{index}]"
    errors: list[DomainError] = []
    action = _name(pb.TicketAction, "TICKET_ACTION_", message.action)
    sender = party(message.party)
    if message.seq != index + 1:
        errors.append(invalid("INVALID_ARGUMENT", f"{field}.seq", f"must be {index + 1}"))
    if action not in {a.value for a in Action}:
        errors.append(invalid("INVALID_ARGUMENT", f"{field}.action", "is not a ticket action"))
    if sender is None:
        errors.append(invalid("INVALID_ARGUMENT", f"{field}.party", "is not a ticket party"))
    if not 0 < len(message.author) <= MAX_OWNER:
        errors.append(
            invalid("INVALID_ARGUMENT", f"{field}.author", f"is required, at most {MAX_OWNER} characters")
        )
    try:
        text = checked_text(message.text, f"{field}.text", required=action != Action.CLOSE.value)
        at = stamp_moment(message.create_time, f"{field}.create_time")
        due = day_of(message.due_date, f"{field}.due_date", required=action != Action.CLOSE.value)
    except DomainError as error:
        errors.append(error)
    error = combine(errors)
    if error is not None:
        raise error
    assert sender is not None
    return Message(index + 1, Action(action), sender, message.author, text, at, due)


def received(message: pb.Ticket) -> Ticket:
    """A ticket another node sent, every field checked (nothing trusted but the shape it proves)."""
    opener = party(message.opener)
    if opener is None:
        raise invalid("INVALID_ARGUMENT", "ticket.opener", "is not a ticket party")
    if not message.messages:
        raise invalid("INVALID_ARGUMENT", "ticket.messages", "must hold at least the opening message")
    text = message.messages[0].text
    checked = checked_opening(opening(message, text), prefix="ticket.", text_field="ticket.messages[0].text")
    subject = subject_of(message.ticket_id, checked, opener)
    if not (TICKET_ID.fullmatch(message.ticket_id) and message.ticket_id[:6] == subject.region(opener)):
        raise invalid("INVALID_ARGUMENT", "ticket.ticket_id", "is not a ticket id of the opener's region")
    return Ticket(subject, tuple(_received_message(m, i) for i, m in enumerate(message.messages)))
