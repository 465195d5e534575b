"""Exactly-once mutating RPCs (DESIGN.md principle 4): the request id is stored with the effect.

Each service keeps a ``<service>_requests`` table (built by :func:`request_model` on the
service's declarative base and created by its own migration). A handler's effect and the
row recording its answer commit in one transaction, so a repeat of the same request gets
the original answer, byte for byte, and the same id with different content is refused
with ``DUPLICATE_REQUEST``. Two racing first attempts cannot both commit: the primary key
lets one win, and the loser answers with the winner's response.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message
from sqlalchemy import DateTime, LargeBinary, String
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from yidi_core.errors import DomainError, invalid
from yidi_runtime.db import Database

Response = TypeVar("Response", bound=Message)
MAX_REQUEST_ID = 64
"""The width of the request log's key column."""


def request_model(base: type[DeclarativeBase]) -> type[Any]:
    """The mapped class of one service's request log (``<service>_requests``)."""
    service = base.metadata.info["service"]

    class RequestRecord(base):  # type: ignore[valid-type, misc]
        """One answered mutating request: its id, method, content fingerprint and response."""

        __tablename__ = f"{service}_requests"

        request_id: Mapped[str] = mapped_column(String(MAX_REQUEST_ID), primary_key=True)
        method: Mapped[str] = mapped_column(String(80))
        fingerprint: Mapped[str] = mapped_column(String(64))
        response: Mapped[bytes] = mapped_column(LargeBinary)
        created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    RequestRecord.__name__ = RequestRecord.__qualname__ = f"{service.title()}RequestRecord"
    return RequestRecord


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


class RequestLog:
    """Replays answered requests and records new answers, inside the caller's transaction."""

    def __init__(self, model: type[Any]) -> None:
        self._model = model

    def replay(
        self, session: Session, request_id: str, method: str, digest: str, response_type: type[Response]
    ) -> Response | None:
        """The stored answer to this request, None for a new one; ``DUPLICATE_REQUEST`` on a clash."""
        if not request_id or len(request_id) > MAX_REQUEST_ID:
            raise invalid(
                "INVALID_ARGUMENT",
                "request_id",
                f"is required on every mutating request, at most {MAX_REQUEST_ID} characters",
            )
        record = session.get(self._model, request_id)
        if record is None:
            return None
        if record.method != method or record.fingerprint != digest:
            raise DomainError(
                "DUPLICATE_REQUEST",
                f"request_id {request_id} was already used for a different {record.method} request",
                metadata={"request_id": request_id, "method": record.method},
            )
        return response_type.FromString(record.response)

    def record(self, session: Session, request_id: str, method: str, digest: str, response: Message) -> None:
        """Store the answer with the effect (the caller commits both together)."""
        session.add(
            self._model(
                request_id=request_id,
                method=method,
                fingerprint=digest,
                response=response.SerializeToString(deterministic=True),
                created_at=datetime.now(UTC),
            )
        )

    def run_once(
        self,
        database: Database,
        request_id: str,
        method: str,
        requests: Iterable[Message],
        response_type: type[Response],
        effect: Callable[[Session], Response],
    ) -> Response:
        """Apply ``effect`` at most once for ``request_id`` and return its (original) answer.

        ``effect`` does its work in the given session and returns the response; nothing is
        committed if it raises, so a refused request leaves no trace and may be retried.
        """
        digest = fingerprint(requests)
        with database.unit_of_work(write=True) as uow:
            replayed = self.replay(uow.session, request_id, method, digest, response_type)
            if replayed is not None:
                return replayed
            response = effect(uow.session)
            uow.session.flush()  # the effect's own constraint errors surface here, as its own
            self.record(uow.session, request_id, method, digest, response)
            try:
                uow.session.flush()
            except IntegrityError:
                uow.session.rollback()  # a concurrent attempt with this id committed first
            else:
                uow.commit()
                return response
        with database.unit_of_work() as uow:
            replayed = self.replay(uow.session, request_id, method, digest, response_type)
        if replayed is None:
            raise RuntimeError(f"request {request_id} neither committed nor recorded")
        return replayed

    def run(self, database: Database, call: Once[Response]) -> Response:
        """:meth:`run_once` of a request given as a :class:`Once`."""
        return self.run_once(
            database, call.request_id, call.method, call.requests, call.response_type, call.effect
        )

    def run_each(self, database: Database, calls: Sequence[Once[Response]]) -> list[Response | DomainError]:
        """:meth:`run_once` for each of ``calls`` in one transaction: each answer, or each refusal.

        Every call runs in a savepoint of its own, so a refused one leaves no trace and the
        others commit together: one commit for the batch instead of one per request.
        """
        outcomes: dict[int, Response | DomainError] = {}
        raced: list[int] = []
        with database.unit_of_work(write=True) as uow:
            session = uow.session
            for index, call in enumerate(calls):
                digest = fingerprint(call.requests)
                try:
                    replayed = self.replay(session, call.request_id, call.method, digest, call.response_type)
                    if replayed is not None:
                        outcomes[index] = replayed
                        continue
                    with session.begin_nested():
                        response = call.effect(session)
                        session.flush()
                        self.record(session, call.request_id, call.method, digest, response)
                        session.flush()
                    outcomes[index] = response
                except DomainError as refusal:
                    outcomes[index] = refusal
                except IntegrityError:  # a concurrent attempt with this id is committing
                    raced.append(index)
            uow.commit()
        for index in raced:
            outcomes[index] = self.run(database, calls[index])
        return [outcomes[index] for index in range(len(calls))]
