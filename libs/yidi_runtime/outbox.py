"""A durable outbox (DESIGN.md principle 4): cross-node messages that must arrive, exactly once.

A message is a row in the sending service's ``<service>_outbox`` table, written in the
same transaction as the local effect it announces: if that transaction rolls back, the
message never existed; once it commits, the message will be delivered however often the
network, the peer or this node fails. A background deliverer sends the messages of each
destination region strictly in the order they were added, through the node's router (next
hop up or down the tree, or this node itself, in process, for its own region), and marks one
delivered only after the receiver answered OK. A failed send is tried again after an
exponential, jittered pause, and nothing later for that destination goes out before it.

Receivers make this exactly-once: each message carries a ``request_id`` (its msgid) that
the receiver stores with its effect (``RequestLog.run_once``), so a message re-sent after a
lost answer or a crash between "answered" and "marked delivered" is answered from the
receiver's request log with no second effect. A receiver that answers ALREADY_EXISTS
(``DUPLICATE_REQUEST`` or ``ALREADY_EXISTS``: it already holds that id or record) has the
message too, so that counts as delivered (the answer is kept in ``last_error``).

Any other refusal is retried as well, with the pause growing to ``max_backoff``: the queue
of that destination waits rather than skip a message that money may depend on, and the
backlog gauge ``yidi_outbox_backlog{service, destination}`` and the ``last_error`` column
tell an operator why.

Replicas of a node on one PostgreSQL database each run a deliverer; a destination's queue
is sent by whichever holds its advisory lock at the time, so two replicas never send the
same messages side by side or out of order.

Using it in a service::

    # models.py
    OutboxMessage = outbox_model(Base)                    # the <service>_outbox table

    # migrations/versions/<service>_000N_outbox.py
    from yidi_runtime.outbox import create_outbox_table, drop_outbox_table

    def upgrade() -> None:
        create_outbox_table(op, "<service>")

    def downgrade() -> None:
        drop_outbox_table(op, "<service>")

    # servicer.py, in register(server, context)
    outbox = Outbox(OutboxMessage)
    context.run_in_background(OutboxDeliverer(outbox, context.database, context.router, context.metrics_registry))

    # a handler, inside the unit of work of the local effect (e.g. RequestLog.run_once's effect)
    outbox.add(session, "000000", APPEND_JOURNAL, journal_request)   # request.request_id is the msgid
    # the effect's commit commits the message with it; the deliverer wakes up on that commit

where ``APPEND_JOURNAL = clearing_service_pb2.DESCRIPTOR.services_by_name["ClearingService"]
.methods_by_name["AppendJournalEntries"]`` (any unary method whose request carries a
``request_id``; the payload is the request's deterministic encoding). The message's destination is a region; the nodes between pass the call on
synchronously (:mod:`yidi_runtime.relay`) and record nothing, so a hop that loses the
answer is covered by this outbox sending the same message again, which the destination
answers once (its request log).

A method may be sent in **batches**: the deliverer is given a :class:`Batching` for it (a
method that takes many such requests at once, and how to pack the payloads and unpack one
outcome per message). Consecutive due messages of that method to one destination then
leave as one call — under load, one call crosses the nodes between instead of one per
message. Each message keeps its own id and outcome: those refused are tried again, the
others are delivered; the rest of the destination's queue waits for a batch with a refusal
as it waits for a single message. Where a node on the way does not know the batch method
yet (a federation mid-upgrade), the messages go one call each, as before.

Order is the order of the outbox ids: on SQLite (serialized writers) that is commit order;
on PostgreSQL two *concurrent* transactions may commit in the other order, which only
matters for messages no one ordered.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic.operations import Operations
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import BigInteger, DateTime, Index, Integer, LargeBinary, String, UniqueConstraint, func
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from yidi_core.codes import check_region
from yidi_core.errors import DomainError
from yidi_runtime.db import Database
from yidi_runtime.logs import get_logger
from yidi_runtime.metrics import shared_metric
from yidi_runtime.resilience import Backoff
from yidi_runtime.routing import Router
from yidi_runtime.wire import Clock, as_utc, wall_clock

OUTBOX_BACKOFF = Backoff(base_s=0.5, max_s=60.0)
"""Between delivery attempts of one message: ½–1 s, 1–2 s, … up to 30–60 s."""

_ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite numbers rows only as INTEGER PRIMARY KEY
_ERROR_LENGTH = 500


def outbox_model(base: type[DeclarativeBase]) -> type[Any]:
    """The mapped class of one service's outbox (``<service>_outbox``)."""
    service = base.metadata.info["service"]
    table = f"{service}_outbox"

    class OutboxRecord(base):  # type: ignore[valid-type, misc]
        """One message to another node: where, which RPC, its msgid and bytes, and how delivery goes."""

        __tablename__ = table

        id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
        destination: Mapped[str] = mapped_column(String(6))
        method: Mapped[str] = mapped_column(String(200))
        message_id: Mapped[str] = mapped_column(String(64))
        payload: Mapped[bytes] = mapped_column(LargeBinary)
        created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
        attempts: Mapped[int] = mapped_column(Integer)
        next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
        delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
        last_error: Mapped[str | None] = mapped_column(String(_ERROR_LENGTH))

        __table_args__ = (
            UniqueConstraint("destination", "message_id"),
            Index(f"ix_{table}_queue", "destination", "delivered_at", "id"),
        )

    OutboxRecord.__name__ = OutboxRecord.__qualname__ = f"{service.title()}OutboxRecord"
    return OutboxRecord


def create_outbox_table(op: Operations, service: str) -> None:
    """Create ``<service>_outbox`` as :func:`outbox_model` maps it (call from the service's migration)."""
    table = f"{service}_outbox"
    op.create_table(
        table,
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("destination", sa.String(6), nullable=False),
        sa.Column("method", sa.String(200), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(_ERROR_LENGTH), nullable=True),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
        sa.UniqueConstraint("destination", "message_id", name=f"uq_{table}_destination_message_id"),
    )
    op.create_index(f"ix_{table}_queue", table, ["destination", "delivered_at", "id"])


def drop_outbox_table(op: Operations, service: str) -> None:
    """Undo :func:`create_outbox_table`."""
    op.drop_index(f"ix_{service}_outbox_queue", table_name=f"{service}_outbox")
    op.drop_table(f"{service}_outbox")


def method_path(method: MethodDescriptor) -> str:
    """The gRPC path of a method, ``/package.Service/Method``."""
    return f"/{method.containing_service.full_name}/{method.name}"


@dataclass(frozen=True)
class QueuedMessage:
    """An undelivered message as the deliverer reads it (outside any transaction)."""

    id: int
    destination: str
    method: str
    message_id: str
    payload: bytes
    attempts: int
    next_attempt_at: datetime


class Outbox:
    """Adds messages inside the caller's transaction and tells the deliverer when one commits."""

    def __init__(self, model: type[Any], clock: Clock = wall_clock) -> None:
        self.model = model
        self.clock = clock
        self._committed = threading.Event()
        table = model.__table__
        # Built once: a message is queued, read and recorded sent with every settlement.
        self.insert = sa.insert(table)
        self.update = sa.update(table).where(table.c.id == sa.bindparam("row_id"))
        self._queued = (
            sa.select(
                table.c.id,
                table.c.destination,
                table.c.method,
                table.c.message_id,
                table.c.payload,
                table.c.attempts,
                table.c.next_attempt_at,
            )
            .where(table.c.destination == sa.bindparam("destination"), table.c.delivered_at.is_(None))
            .order_by(table.c.id)
            .limit(sa.bindparam("limit"))
        )

    @property
    def service(self) -> str:
        """The service whose table this is."""
        return str(self.model.metadata.info["service"])

    def add(
        self,
        session: Session,
        destination: str,
        method: MethodDescriptor,
        request: Message,
        *,
        message_id: str | None = None,
    ) -> None:
        """Queue ``request`` for ``method`` at region ``destination``; it leaves only if ``session`` commits.

        ``message_id`` (default: the request's ``request_id``) is what the receiver dedupes
        on; one id is queued once per destination (a second add fails the transaction).
        """
        if request.DESCRIPTOR.full_name != method.input_type.full_name:
            raise TypeError(
                f"{method_path(method)} takes {method.input_type.full_name}, not {request.DESCRIPTOR.full_name}"
            )
        msgid = message_id if message_id is not None else str(getattr(request, "request_id", ""))
        if not msgid:
            raise ValueError(f"a message for {method_path(method)} needs a message id (request_id)")
        now = self.clock()
        session.execute(
            self.insert,
            {
                "destination": check_region(destination, "destination"),
                "method": method_path(method),
                "message_id": msgid,
                "payload": request.SerializeToString(deterministic=True),
                "created_at": now,
                "attempts": 0,
                "next_attempt_at": now,
            },
        )
        if not session.info.get(_WAKE_ON_COMMIT):
            session.info[_WAKE_ON_COMMIT] = True
            sa.event.listen(session, "after_commit", self._on_commit, once=True)

    def _on_commit(self, session: Session) -> None:
        session.info.pop(_WAKE_ON_COMMIT, None)
        self._committed.set()

    def wait_for_commit(self, timeout_s: float) -> None:
        """Block until a transaction that added messages commits, or ``timeout_s`` passes."""
        self._committed.wait(timeout_s)
        self._committed.clear()

    def wake(self) -> None:
        """End a :meth:`wait_for_commit` early."""
        self._committed.set()

    def backlog(self, session: Session) -> dict[str, int]:
        """Undelivered messages per destination."""
        model = self.model
        rows = session.execute(
            sa.select(model.destination, func.count())
            .where(model.delivered_at.is_(None))
            .group_by(model.destination)
        )
        return {destination: count for destination, count in rows}

    def queue(self, session: Session, destination: str, limit: int) -> list[QueuedMessage]:
        """The next undelivered messages for ``destination``, oldest first (columns, not mapped rows)."""
        rows = session.execute(self._queued, {"destination": destination, "limit": limit})
        return [
            QueuedMessage(
                row.id,
                row.destination,
                row.method,
                row.message_id,
                row.payload,
                row.attempts,
                as_utc(row.next_attempt_at),
            )
            for row in rows
        ]

    def purge(self, session: Session, delivered_before: datetime) -> int:
        """Forget messages delivered before a moment; returns how many."""
        model = self.model
        result = session.execute(
            sa.delete(model).where(model.delivered_at.is_not(None), model.delivered_at < delivered_before)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


_WAKE_ON_COMMIT = "yidi_outbox_wake_on_commit"


def backlog_gauge(registry: CollectorRegistry) -> Gauge:
    """The node's ``yidi_outbox_backlog`` gauge (one per registry, shared by its services)."""
    return shared_metric(
        registry,
        "yidi_outbox_backlog",
        lambda into: Gauge(
            "yidi_outbox_backlog",
            "Messages in a service's outbox not yet delivered, per destination region.",
            ("service", "destination"),
            registry=into,
        ),
    )


Outcome = DomainError | bytes
"""How the receiver took one message: its encoded answer (done) or its refusal."""

Delivered = Callable[[Session, list[tuple["QueuedMessage", bytes]]], None]
"""Called in the transaction that marks messages delivered, once with all of them and the receivers'
answers (e.g. to keep the receipts they signed); an answer is empty when the receiver held the
message already."""


@dataclass(frozen=True)
class Batching:
    """How to send queued messages of one method together, as one call of ``method``.

    ``pack`` turns the messages' payloads (oldest first) into the batch request; ``unpack``
    turns the batch's encoded answer (and how many messages it carried) into one outcome
    per message, in the same order.
    """

    method: MethodDescriptor
    pack: Callable[[list[bytes]], Message]
    unpack: Callable[[bytes, int], list[Outcome]]
    limit: int = 100


@dataclass(frozen=True)
class PassResult:
    """What one delivery pass did: messages delivered, destinations left waiting on a failed message."""

    delivered: int = 0
    failed: int = 0


class OutboxDeliverer:
    """Sends a service's outbox, in order per destination, in a thread that lives with the node.

    ``start``/``stop`` run a pass whenever a message commits and every ``poll_interval_s``
    (also how soon a message whose pause has passed goes again); ``deliver_pending`` is one
    synchronous pass, for a tool or test to call while the thread is not running. A pass
    waits ``linger_s`` after the commit that woke it, so that messages committed meanwhile
    leave in the same batch (:class:`Batching`) instead of one call each.
    """

    def __init__(
        self,
        outbox: Outbox,
        database: Database,
        router: Router,
        metrics_registry: CollectorRegistry,
        *,
        deadline_s: float = 10.0,
        backoff: Backoff = OUTBOX_BACKOFF,
        poll_interval_s: float = 1.0,
        batch_size: int = 100,
        retention: timedelta = timedelta(days=7),
        jitter: Callable[[], float] = random.random,
        batching: Mapping[MethodDescriptor, Batching] | None = None,
        linger_s: float = 0.0,
        on_delivered: Delivered | None = None,
    ) -> None:
        self._on_delivered = on_delivered
        self._outbox = outbox
        self._linger_s = linger_s
        self._database = database
        self._router = router
        self._deadline_s = deadline_s
        self._backoff = backoff
        self._poll_interval_s = poll_interval_s
        self._batch_size = batch_size
        self._retention = retention
        self._jitter = jitter
        self._batching = {method_path(method): batch for method, batch in (batching or {}).items()}
        self._gauge = backlog_gauge(metrics_registry)
        self._destinations: set[str] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_purge = float("-inf")
        self._log = get_logger(service=outbox.service, node=router.settings.label)

    @property
    def service(self) -> str:
        """The service whose outbox this delivers."""
        return self._outbox.service

    def deliver_pending(self) -> PassResult:
        """Send what is due now, destination by destination; update the backlog gauge."""
        result = self._pass()
        self.refresh_gauge()
        return result

    def _pass(self) -> PassResult:
        """One pass over every destination with a backlog; what it sent is recorded in one transaction per destination.

        Recording after sending is what makes delivery at-least-once; recording a
        destination's sends together (rather than one transaction per message) only widens
        the window in which a crash has a message sent again, and receivers answer a repeat
        from their request log.
        """
        with self._database.unit_of_work() as uow:
            destinations = sorted(self._outbox.backlog(uow.session))
        self._destinations.update(destinations)
        outcomes: list[tuple[QueuedMessage, Outcome]] = []
        delivered = failed = 0
        for destination in destinations:
            with self._claimed(destination) as mine:
                if not mine:
                    continue
                try:
                    sent, ok = self._deliver_to(destination, outcomes)
                finally:
                    self._record(outcomes)  # while the claim holds, so no other replica reads them as unsent
            delivered += sent
            failed += 0 if ok else 1
        return PassResult(delivered, failed)

    @contextmanager
    def _claimed(self, destination: str) -> Iterator[bool]:
        """Whether this deliverer may send ``destination``'s queue now.

        Replicas of a node share its PostgreSQL outbox; the one holding the destination's
        advisory lock sends it, in order, and the others pass it by (SQLite has one process).
        """
        if self._database.dialect != "postgresql":
            yield True
            return
        key = _lock_key(self._outbox.model.__tablename__, destination)
        connection = self._database.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        with connection:  # the lock is the session's: it outlives each statement until unlocked
            held = bool(
                connection.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
            )
            try:
                yield held
            finally:
                if held:
                    connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})

    def _deliver_to(
        self, destination: str, outcomes: list[tuple[QueuedMessage, Outcome]]
    ) -> tuple[int, bool]:
        """Send the queue of one destination until it is empty, a message is not due, or one fails."""
        sent = 0
        while not self._stopping.is_set():
            if sent:
                self._record(outcomes)  # before reading this queue again, so nothing sent is read as unsent
            with self._database.unit_of_work() as uow:
                queue = self._outbox.queue(uow.session, destination, self._batch_size)
            due = 0
            while due < len(queue):
                if self._stopping.is_set() or queue[due].next_attempt_at > self._outbox.clock():
                    return sent, True
                group = self._group(queue, due)
                errors = self._send_batch(group) if len(group) > 1 else [self._send(group[0])]
                group = group[: len(errors)]  # a batch sent one by one stops at its first refusal
                due += len(group)
                outcomes.extend(zip(group, errors, strict=True))
                delivered = [_delivered(error) for error in errors]
                sent += sum(delivered)
                if not all(delivered):
                    return sent, False
            if len(queue) < self._batch_size:
                return sent, True
        return sent, True

    def _group(self, queue: list[QueuedMessage], start: int) -> list[QueuedMessage]:
        """The message at ``start``, with the due messages after it of the same batched method."""
        first = queue[start]
        batching = self._batching.get(first.method)
        if batching is None:
            return [first]
        now = self._outbox.clock()
        group = [first]
        for message in queue[start + 1 : start + batching.limit]:
            if message.method != first.method or message.next_attempt_at > now:
                break
            group.append(message)
        return group

    def _send_batch(self, group: list[QueuedMessage]) -> list[Outcome]:
        """Send a group as one call of its batch method; an outcome per message (the call's refusal for all)."""
        batching = self._batching[group[0].method]
        try:
            request = batching.pack([message.payload for message in group])
            client = self._router.toward(group[0].destination, "destination")
            answer = client.call(
                client.raw(method_path(batching.method)),
                request.SerializeToString(deterministic=True),
                deadline_s=self._deadline_s,
            )
        except DomainError as refusal:
            if _unimplemented(refusal):  # a node on the way runs a version without the batch method
                return self._send_each(group)
            return [refusal] * len(group)
        errors = batching.unpack(answer, len(group))
        if len(errors) != len(group):
            unanswered = DomainError(
                "INTERNAL", f"{len(errors)} outcomes for a batch of {len(group)}: every message is sent again"
            )
            return [unanswered] * len(group)
        return errors

    def _send_each(self, group: list[QueuedMessage]) -> list[Outcome]:
        """The group's messages one call each, up to and including the first refused."""
        errors: list[Outcome] = []
        for message in group:
            errors.append(self._send(message))
            if not _delivered(errors[-1]):
                break
        return errors

    def _send(self, message: QueuedMessage) -> Outcome:
        try:
            client = self._router.toward(message.destination, "destination")
            answer: bytes = client.call(
                client.raw(message.method), message.payload, deadline_s=self._deadline_s
            )
        except DomainError as refusal:
            return refusal
        return answer

    def _record(self, outcomes: list[tuple[QueuedMessage, Outcome]]) -> None:
        """Mark each message sent delivered, or count its failure and set its next attempt; empties ``outcomes``.

        Rows that change the same columns are updated by one executemany: a batch's messages
        are recorded together, not one statement each.
        """
        if not outcomes:
            return
        updates: dict[frozenset[str], list[dict[str, Any]]] = {}
        for message, outcome in outcomes:
            values = {"row_id": message.id, **self._outcome(message, outcome)}
            updates.setdefault(frozenset(values), []).append(values)
        with self._database.unit_of_work(write=True) as uow:
            for rows in updates.values():
                uow.session.execute(self._outbox.update, rows)
            delivered = [
                (message, outcome if isinstance(outcome, bytes) else b"")
                for message, outcome in outcomes
                if _delivered(outcome)
            ]
            if self._on_delivered is not None and delivered:
                self._on_delivered(uow.session, delivered)
            uow.commit()
        outcomes.clear()

    def _outcome(self, message: QueuedMessage, outcome: Outcome) -> dict[str, Any]:
        """The columns that record one send: delivered, or failed and when to try again."""
        now = self._outbox.clock()
        attempts = message.attempts + 1
        error = outcome if isinstance(outcome, DomainError) else None
        if _delivered(outcome):
            values: dict[str, Any] = {"attempts": attempts, "delivered_at": now}
            if error is not None:
                values["last_error"] = _described(error)
                self._log.warning(
                    "outbox message already held by the receiver",
                    destination=message.destination,
                    message_id=message.message_id,
                    reason=error.reason_code,
                )
            return values
        assert error is not None
        pause = timedelta(seconds=self._backoff.delay_s(attempts, self._jitter()))
        self._log.warning(
            "outbox delivery failed",
            destination=message.destination,
            method=message.method,
            message_id=message.message_id,
            attempts=attempts,
            retry_in_s=round(pause.total_seconds(), 3),
            reason=error.reason_code,
            error=error.message,
        )
        return {"attempts": attempts, "next_attempt_at": now + pause, "last_error": _described(error)}

    def refresh_gauge(self) -> None:
        """Set the backlog gauge from the table (destinations that drained read 0)."""
        with self._database.unit_of_work() as uow:
            backlog = self._outbox.backlog(uow.session)
        self._destinations |= backlog.keys()
        for destination in self._destinations:
            self._gauge.labels(self._outbox.service, destination).set(backlog.get(destination, 0))

    def purge_delivered(self) -> int:
        """Forget messages delivered longer ago than the retention period."""
        with self._database.unit_of_work(write=True) as uow:
            purged = self._outbox.purge(uow.session, self._outbox.clock() - self._retention)
            uow.commit()
        return purged

    def _run(self) -> None:
        gauge_set = float("-inf")
        while not self._stopping.is_set():
            try:
                result = self._pass()
                # The gauge is for dashboards: once a poll interval is fresh enough, and spares a
                # query per pass when settlements arrive many a second.
                if result.failed or time.monotonic() - gauge_set >= self._poll_interval_s:
                    self.refresh_gauge()
                    gauge_set = time.monotonic()
                if time.monotonic() - self._last_purge >= _PURGE_EVERY_S:
                    self.purge_delivered()
                    self._last_purge = time.monotonic()
            except Exception:  # the database may be down for a while; the next pass tries again
                self._log.exception("outbox delivery pass failed")
            self._outbox.wait_for_commit(self._poll_interval_s)
            # Messages committed in the next moments go with this one: one call for several.
            self._stopping.wait(self._linger_s)

    def start(self) -> None:
        """Deliver in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"outbox-{self._outbox.service}-{self._router.settings.label}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the message in flight (undelivered ones wait for the next start)."""
        self._stopping.set()
        self._outbox.wake()
        if self._thread is not None:
            self._thread.join(timeout_s)
            finishing, self._thread = self._thread.is_alive(), None
            if finishing:
                return  # still in its send: it stops before the next one
        self._stopping.clear()  # stopped: a synchronous pass (deliver_pending) may run


_PURGE_EVERY_S = 3600.0


def _lock_key(table: str, destination: str) -> int:
    """The advisory lock of one outbox's destination: a signed 64-bit number from its names."""
    digest = hashlib.sha256(f"{table}:{destination}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _delivered(outcome: Outcome) -> bool:
    """The receiver has the message: it took it now, or held it already."""
    return not isinstance(outcome, DomainError) or _already_held(outcome)


def _already_held(error: DomainError) -> bool:
    """The receiver answered ALREADY_EXISTS: it holds this message's id (or record) already."""
    return error.reason.grpc_code == "ALREADY_EXISTS" or error.metadata.get("grpc_code") == "ALREADY_EXISTS"


def _unimplemented(error: DomainError) -> bool:
    """The receiver (or a node relaying to it) does not know the method called."""
    return error.reason_code == "NOT_IMPLEMENTED" or error.metadata.get("grpc_code") == "UNIMPLEMENTED"


def _described(error: DomainError) -> str:
    return f"{error.reason_code}: {error.message}"[:_ERROR_LENGTH]
