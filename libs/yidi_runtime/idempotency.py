"""Exactly-once mutating RPCs (DESIGN.md principle 4): the request id is stored with the effect.

Each service keeps a ``<service>_requests`` table (built by :func:`request_model` on the
service's declarative base and created by its own migration). A handler's effect and the
row recording its answer commit in one transaction, so a repeat of the same request gets
the original answer, byte for byte, and the same id with different content is refused
with ``DUPLICATE_REQUEST``. Two racing first attempts cannot both commit: the primary key
lets one win, and the loser answers with the winner's response.

Request ids are unique per sender, not across senders (DESIGN.md principle 8): the log is
keyed by the id's *owner* and the id, so no caller can take another's next id or read its
answer. The owner is the principal the call acts for (:func:`yidi_runtime.identity.acting`:
the institution, the operator, or the node whose vouch a forwarded call carries) unless the
service names it. Rows written before owners were recorded carry :data:`LEGACY_OWNER` and
still answer a repeat whose content matches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from alembic.operations import Operations
from google.protobuf.message import Message
from sqlalchemy import DateTime, LargeBinary, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from yidi_core.errors import DomainError, invalid
from yidi_runtime import identity
from yidi_runtime.db import Database

Response = TypeVar("Response", bound=Message)
MAX_REQUEST_ID = 64
"""The width of the request log's key column."""
MAX_OWNER = 100
"""The width of the owner column: a principal's subject (``operator/110000/<64 characters>``)."""
LEGACY_OWNER = ""
"""The owner of rows logged before request ids were kept per owner."""


def owner_of_call() -> str:
    """Whose request ids a call uses: the subject of the principal it acts for."""
    return identity.acting().subject


def request_model(base: type[DeclarativeBase]) -> type[Any]:
    """The mapped class of one service's request log (``<service>_requests``)."""
    service = base.metadata.info["service"]

    class RequestRecord(base):  # type: ignore[valid-type, misc]
        """One answered mutating request: whose, its id, method, content fingerprint and response."""

        __tablename__ = f"{service}_requests"

        owner: Mapped[str] = mapped_column(String(MAX_OWNER), primary_key=True)
        request_id: Mapped[str] = mapped_column(String(MAX_REQUEST_ID), primary_key=True)
        method: Mapped[str] = mapped_column(String(80))
        fingerprint: Mapped[str] = mapped_column(String(64))
        response: Mapped[bytes] = mapped_column(LargeBinary)
        created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    RequestRecord.__name__ = RequestRecord.__qualname__ = f"{service.title()}RequestRecord"
    return RequestRecord


def key_requests_by_owner(op: Operations, service: str) -> None:
    """Migration step: add ``owner`` to ``<service>_requests`` and key the log by (owner, request id).

    Rows already logged get :data:`LEGACY_OWNER`; a repeat of one still finds its answer.
    """
    table = f"{service}_requests"
    with op.batch_alter_table(table) as batch:
        batch.add_column(
            sa.Column("owner", sa.String(MAX_OWNER), nullable=False, server_default=LEGACY_OWNER)
        )
        batch.drop_constraint(f"pk_{table}", type_="primary")
        batch.create_primary_key(f"pk_{table}", ["owner", "request_id"])


def key_requests_by_id(op: Operations, service: str) -> None:
    """The downgrade of :func:`key_requests_by_owner` (fails if two owners used one id)."""
    table = f"{service}_requests"
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(f"pk_{table}", type_="primary")
        batch.drop_column("owner")
        batch.create_primary_key(f"pk_{table}", ["request_id"])


def fingerprint(messages: Iterable[Message]) -> str:
    """SHA-256 of the deterministic encoding of the request (every message of a stream)."""
    digest = hashlib.sha256()
    for message in messages:
        encoded = message.SerializeToString(deterministic=True)
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return digest.hexdigest()


@dataclass(frozen=True)
class Once(Generic[Response]):
    """One request of a batch run by :meth:`RequestLog.run_each`, as :meth:`RequestLog.run_once` takes it."""

    request_id: str
    method: str
    requests: Sequence[Message]
    response_type: type[Response]
    effect: Callable[[Session], Response]
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class _Logged:
    """A logged answer as :func:`_answer` reads it (a row of the log has the same fields)."""

    method: str
    fingerprint: str
    response: bytes


def _check_request_id(request_id: str) -> None:
    if not request_id or len(request_id) > MAX_REQUEST_ID:
        raise invalid(
            "INVALID_ARGUMENT",
            "request_id",
            f"is required on every mutating request, at most {MAX_REQUEST_ID} characters",
        )


def _answer(
    record: _Logged | sa.Row[Any] | None,
    request_id: str,
    method: str,
    digest: str,
    response_type: type[Response],
) -> Response | None:
    """The logged answer ``record`` to a request with this method and digest (None when nothing was
    logged); ``DUPLICATE_REQUEST`` when it answered other content."""
    if record is None:
        return None
    if record.method != method or record.fingerprint != digest:
        raise DomainError(
            "DUPLICATE_REQUEST",
            f"request_id {request_id} was already used for a different {record.method} request",
            metadata={"request_id": request_id, "method": record.method},
        )
    return response_type.FromString(record.response)


class RequestLog:
    """Replays answered requests and records new answers, inside the caller's transaction."""

    def __init__(self, model: type[Any]) -> None:
        table = model.__table__
        # Built once: every mutating call of the node looks up and records its request here.
        self._find = (
            select(table.c.method, table.c.fingerprint, table.c.response)
            .where(
                table.c.request_id == sa.bindparam("request_id"),
                table.c.owner.in_([sa.bindparam("owner"), LEGACY_OWNER]),
            )
            .order_by(table.c.owner.desc())
            .limit(1)
        )
        self._find_each = select(
            table.c.owner, table.c.request_id, table.c.method, table.c.fingerprint, table.c.response
        ).where(
            table.c.request_id.in_(sa.bindparam("request_ids", expanding=True)),
            table.c.owner.in_(sa.bindparam("owners", expanding=True)),
        )
        self._insert = sa.insert(table)

    def replay(
        self,
        session: Session,
        request_id: str,
        method: str,
        digest: str,
        response_type: type[Response],
        owner: str | None = None,
    ) -> Response | None:
        """The stored answer to this request of ``owner`` (default: the call's), None for a new one;
        ``DUPLICATE_REQUEST`` on a clash."""
        _check_request_id(request_id)
        record = session.execute(
            self._find, {"request_id": request_id, "owner": owner or owner_of_call()}
        ).first()
        return _answer(record, request_id, method, digest, response_type)

    def record(
        self,
        session: Session,
        request_id: str,
        method: str,
        digest: str,
        response: Message,
        owner: str | None = None,
    ) -> bytes:
        """Store the answer with the effect (the caller commits both together) and return it as stored;
        IntegrityError when a concurrent attempt with this id recorded it first."""
        stored = response.SerializeToString(deterministic=True)
        session.execute(
            self._insert,
            {
                "owner": owner or owner_of_call(),
                "request_id": request_id,
                "method": method,
                "fingerprint": digest,
                "response": stored,
                "created_at": datetime.now(UTC),
            },
        )
        return stored

    def run_once(
        self,
        database: Database,
        request_id: str,
        method: str,
        requests: Iterable[Message],
        response_type: type[Response],
        effect: Callable[[Session], Response],
        owner: str | None = None,
    ) -> Response:
        """Apply ``effect`` at most once for ``owner``'s ``request_id`` and return its (original) answer.

        ``effect`` does its work in the given session and returns the response; nothing is
        committed if it raises, so a refused request leaves no trace and may be retried.
        ``owner`` defaults to the call's (:func:`owner_of_call`).
        """
        return self.run_fingerprinted(
            database, request_id, method, fingerprint(requests), response_type, effect, owner
        )

    def run_fingerprinted(
        self,
        database: Database,
        request_id: str,
        method: str,
        digest: str,
        response_type: type[Response],
        effect: Callable[[Session], Response],
        owner: str | None = None,
    ) -> Response:
        """:meth:`run_once` of a request whose fingerprint the caller took (:func:`fingerprint`)."""
        owner = owner or owner_of_call()
        with database.unit_of_work(write=True) as uow:
            replayed = self.replay(uow.session, request_id, method, digest, response_type, owner)
            if replayed is not None:
                return replayed
            response = effect(uow.session)
            uow.session.flush()  # the effect's own constraint errors surface here, as its own
            try:
                self.record(uow.session, request_id, method, digest, response, owner)
            except IntegrityError:
                uow.session.rollback()  # a concurrent attempt with this id committed first
            else:
                uow.commit()
                return response
        with database.unit_of_work() as uow:
            replayed = self.replay(uow.session, request_id, method, digest, response_type, owner)
        if replayed is None:
            raise RuntimeError(f"request {request_id} neither committed nor recorded")
        return replayed

    def run(self, database: Database, call: Once[Response]) -> Response:
        """:meth:`run_once` of a request given as a :class:`Once`."""
        return self.run_once(
            database, call.request_id, call.method, call.requests, call.response_type, call.effect, call.owner
        )

    def _logged(
        self, session: Session, request_ids: set[str], owners: set[str]
    ) -> dict[tuple[str, str], _Logged]:
        """The answers logged under any of ``request_ids`` for any of ``owners`` (or the legacy owner), in one SELECT."""
        found = session.execute(
            self._find_each, {"request_ids": list(request_ids), "owners": [*owners, LEGACY_OWNER]}
        )
        return {
            (row.owner, row.request_id): _Logged(row.method, row.fingerprint, row.response) for row in found
        }

    def run_each(self, database: Database, calls: Sequence[Once[Response]]) -> list[Response | DomainError]:
        """:meth:`run_once` for each of ``calls`` in one transaction: each answer, or each refusal.

        The answers already logged for the batch are read with one SELECT (and each answer
        recorded here joins them, for a later call of the batch with the same id). Every call
        runs in a savepoint of its own, so a refused one leaves no trace and the others commit
        together: one commit for the batch instead of one per request.
        """
        outcomes: dict[int, Response | DomainError] = {}
        raced: list[int] = []
        owners = [call.owner or owner_of_call() for call in calls]
        with database.unit_of_work(write=True) as uow:
            session = uow.session
            logged = self._logged(session, {call.request_id for call in calls}, set(owners))
            for index, (call, owner) in enumerate(zip(calls, owners, strict=True)):
                digest = fingerprint(call.requests)
                try:
                    _check_request_id(call.request_id)
                    record = logged.get((owner, call.request_id)) or logged.get(
                        (LEGACY_OWNER, call.request_id)
                    )
                    replayed = _answer(record, call.request_id, call.method, digest, call.response_type)
                    if replayed is not None:
                        outcomes[index] = replayed
                        continue
                    with session.begin_nested():
                        response = call.effect(session)
                        session.flush()
                        stored = self.record(session, call.request_id, call.method, digest, response, owner)
                    logged[owner, call.request_id] = _Logged(call.method, digest, stored)
                    outcomes[index] = response
                except DomainError as refusal:
                    outcomes[index] = refusal
                except IntegrityError:  # a concurrent attempt with this id is committing
                    raced.append(index)
            uow.commit()
        for index in raced:
            outcomes[index] = self.run(database, calls[index])
        return [outcomes[index] for index in range(len(calls))]
