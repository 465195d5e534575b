"""Tables owned by the collaboration service (table names start with `collaboration_`).

A ticket is kept at the node of each of its two parties. Its messages are the truth; the
ticket row repeats what they imply (state, the party awaited, the due date) so the queue is
one indexed query. ``awaits_here`` says whether the awaited party is served by this node.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from yidi_runtime.db import service_base
from yidi_runtime.idempotency import request_model
from yidi_runtime.outbox import outbox_model

Base = service_base("collaboration")

RequestRecord = request_model(Base)
OutboxMessage = outbox_model(Base)


class TicketRow(Base):
    """One ticket as this node holds it."""

    __tablename__ = "collaboration_tickets"

    ticket_id: Mapped[str] = mapped_column(String(30), primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(12))
    subject_id: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(20))
    treatment_admdvs: Mapped[str] = mapped_column(String(6))
    insured_admdvs: Mapped[str] = mapped_column(String(6))
    fixmedins_code: Mapped[str] = mapped_column(String(12))
    opener: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(10))
    awaiting: Mapped[str] = mapped_column(String(10))
    awaits_here: Mapped[bool] = mapped_column(Boolean)
    due_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    version: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_collaboration_tickets_queue", "awaits_here", "due_date", "ticket_id"),
        Index("ix_collaboration_tickets_fixmedins_code", "fixmedins_code"),
    )


class MessageRow(Base):
    """One change of a ticket, in order."""

    __tablename__ = "collaboration_messages"

    ticket_id: Mapped[str] = mapped_column(
        String(30),
        ForeignKey(
            "collaboration_tickets.ticket_id", ondelete="CASCADE", name="fk_collaboration_messages_ticket"
        ),
        primary_key=True,
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(10))
    party: Mapped[str] = mapped_column(String(10))
    author: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(String(2000))
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_date: Mapped[date | None] = mapped_column(Date, nullable=True)
