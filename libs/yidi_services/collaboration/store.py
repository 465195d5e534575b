"""Tickets in this node's tables: read, written after a change, listed as the node's queue."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy import Date, func, select, tuple_
from sqlalchemy.orm import Session

from yidi_core.errors import DomainError
from yidi_runtime.paging import decode_token, encode_token, page_size
from yidi_runtime.wire import as_utc
from yidi_services.collaboration.models import MessageRow, TicketRow
from yidi_services.collaboration.tickets import (
    Action,
    Category,
    Message,
    Party,
    State,
    Subject,
    SubjectKind,
    Ticket,
)

_LAST_DAY = date(9999, 12, 31)
"""Where tickets without a due date (closed ones) sort: after every due date."""
_DUE = func.coalesce(TicketRow.due_date, sa.literal(_LAST_DAY, Date))


def _subject(row: TicketRow) -> Subject:
    return Subject(
        ticket_id=row.ticket_id,
        subject_kind=SubjectKind(row.subject_kind),
        subject_id=row.subject_id,
        category=Category(row.category),
        treatment_admdvs=row.treatment_admdvs,
        insured_admdvs=row.insured_admdvs,
        fixmedins_code=row.fixmedins_code,
        opener=Party(row.opener),
    )


def _message(row: MessageRow) -> Message:
    return Message(
        seq=row.seq,
        action=Action(row.action),
        party=Party(row.party),
        author=row.author,
        text=row.text,
        at=as_utc(row.create_time),
        due_date=row.due_date,
    )


def _read(session: Session, rows: Sequence[TicketRow]) -> list[Ticket]:
    """The tickets of ``rows`` with their messages (one query for all of them)."""
    messages: dict[str, list[Message]] = defaultdict(list)
    if rows:
        found = session.scalars(
            select(MessageRow)
            .where(MessageRow.ticket_id.in_([row.ticket_id for row in rows]))
            .order_by(MessageRow.ticket_id, MessageRow.seq)
        )
        for message in found:
            messages[message.ticket_id].append(_message(message))
    return [Ticket(_subject(row), tuple(messages[row.ticket_id])) for row in rows]


def find(session: Session, ticket_id: str, *, lock: bool = False) -> Ticket | None:
    """The ticket, or None; ``lock`` holds its row until the transaction ends (PostgreSQL)."""
    statement = select(TicketRow).where(TicketRow.ticket_id == ticket_id)
    row = session.scalars(statement.with_for_update() if lock else statement).first()
    return None if row is None else _read(session, [row])[0]


def get(session: Session, ticket_id: str, *, lock: bool = False) -> Ticket:
    """The ticket, or NOT_FOUND."""
    ticket = find(session, ticket_id, lock=lock) if ticket_id else None
    if ticket is None:
        raise DomainError(
            "NOT_FOUND", f"no ticket {ticket_id!r} at this node", metadata={"ticket_id": ticket_id}
        )
    return ticket


def save(session: Session, ticket: Ticket, stored_version: int, awaits_here: bool) -> None:
    """Write the ticket after its messages past ``stored_version`` (0: a new ticket)."""
    subject = ticket.subject
    row = session.get(TicketRow, subject.ticket_id) if stored_version else None
    if row is None:
        row = TicketRow(
            ticket_id=subject.ticket_id,
            subject_kind=subject.subject_kind.value,
            subject_id=subject.subject_id,
            category=subject.category.value,
            treatment_admdvs=subject.treatment_admdvs,
            insured_admdvs=subject.insured_admdvs,
            fixmedins_code=subject.fixmedins_code,
            opener=subject.opener.value,
        )
        session.add(row)
    awaiting = ticket.awaiting
    row.state = ticket.state.value
    row.awaiting = awaiting.value if awaiting else ""
    row.awaits_here = awaits_here
    row.due_date = ticket.due_date
    row.version = ticket.version
    session.flush()
    session.add_all(
        MessageRow(
            ticket_id=subject.ticket_id,
            seq=message.seq,
            action=message.action.value,
            party=message.party.value,
            author=message.author,
            text=message.text,
            create_time=message.at,
            due_date=message.due_date,
        )
        for message in ticket.messages[stored_version:]
    )


@dataclass(frozen=True)
class TicketQuery:
    """ListTickets as plain values; ``fixmedins_code`` limits an institution to its own tickets."""

    states: tuple[State, ...]
    overdue_only: bool
    include_not_awaiting: bool
    fixmedins_code: str
    page_size: int
    page_token: str


@dataclass(frozen=True)
class TicketPage:
    """One page of the queue and the size of the whole."""

    tickets: list[Ticket]
    total_size: int
    overdue_count: int
    next_page_token: str


def list_tickets(session: Session, query: TicketQuery, today: date) -> TicketPage:
    """One page, earliest due date first, then by id (closed tickets last)."""
    limit = page_size(query.page_size)
    key = {
        "states": sorted(state.value for state in query.states),
        "overdue_only": query.overdue_only,
        "include_not_awaiting": query.include_not_awaiting,
        "fixmedins_code": query.fixmedins_code,
    }
    after = decode_token(query.page_token, key, 2)
    conditions: list[sa.ColumnElement[bool]] = []
    if not query.include_not_awaiting:
        conditions.append(TicketRow.awaits_here.is_(True))
    if query.states:
        conditions.append(TicketRow.state.in_([state.value for state in query.states]))
    if query.fixmedins_code:
        conditions.append(TicketRow.fixmedins_code == query.fixmedins_code)
    overdue = TicketRow.due_date < today
    if query.overdue_only:
        conditions.append(overdue)
    total = session.scalar(select(func.count()).select_from(TicketRow).where(*conditions)) or 0
    late = session.scalar(select(func.count()).select_from(TicketRow).where(*conditions, overdue)) or 0
    statement = select(TicketRow).where(*conditions).order_by(_DUE, TicketRow.ticket_id).limit(limit + 1)
    if after is not None:
        statement = statement.where(
            tuple_(_DUE, TicketRow.ticket_id)
            > tuple_(sa.literal(date.fromisoformat(after[0]), Date), after[1])
        )
    rows = list(session.scalars(statement))
    page = rows[:limit]
    token = ""
    if len(rows) > limit:
        last = page[-1]
        token = encode_token([(last.due_date or _LAST_DAY).isoformat(), last.ticket_id], key)
    return TicketPage(_read(session, page), total, late, token)


@dataclass(frozen=True)
class QueueSize:
    """The tickets awaiting this node's regions, and how many of them are overdue."""

    backlog: int
    overdue: int


def queue_size(session: Session, today: date) -> QueueSize:
    """This node's queue now (for the gauges)."""
    backlog, overdue = session.execute(
        select(func.count(), func.count().filter(TicketRow.due_date < today)).where(
            TicketRow.awaits_here.is_(True)
        )
    ).one()
    return QueueSize(backlog, overdue)
