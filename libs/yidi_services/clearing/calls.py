"""How a ClearingService call crosses between the servicer and its handlers.

At the national node the servicer turns the request into a command (:mod:`~.commands`),
hands it to a handler and turns the handler's result into the answer: a handler never
sees a proto. Any other node passes the request one hop up as it came, unread.

A mutating call's answer is also what the request log (:mod:`yidi_runtime.idempotency`)
keeps: it keys the call on (owner, request_id), fingerprints the request and stores the
answer as sent, so a repeat gets the original bytes back. So the servicer gives a mutating
handler an :class:`Answering` as well — the request to fingerprint and how to answer a
result — and the handler runs its effect through :func:`once` without reading either.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

import grpc
from google.protobuf.message import Message
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yidi_runtime.db import Database
from yidi_runtime.idempotency import RequestLog, fingerprint
from yidi_runtime.relay import Relay, Up

Request = TypeVar("Request", bound=Message)
Command = TypeVar("Command")
Result = TypeVar("Result")
Answer = TypeVar("Answer", bound=Message)
Handlers = TypeVar("Handlers")
Item = TypeVar("Item")


class Answered(NamedTuple, Generic[Result, Answer]):
    """A mutating call's answer, and the result when this call made it (None: the log had answered it before)."""

    answer: Answer
    made: Result | None


class Page(NamedTuple, Generic[Item]):
    """What a list call found: one page of items, and the token of the next ("" after the last)."""

    items: list[Item]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class Answering(Generic[Result, Answer]):
    """A mutating call as the request log keeps it: its method and request, and how a result is answered."""

    method: str
    request: Message
    answer_type: type[Answer]
    answer: Callable[[Result], Answer]


def _attempt(
    log: RequestLog,
    database: Database,
    request_id: str,
    answering: Answering[Result, Answer],
    effect: Callable[[Session], Result],
) -> Answered[Result, Answer]:
    made: list[tuple[Result, Answer]] = []

    def answered(session: Session) -> Answer:
        result = effect(session)
        made.append((result, answering.answer(result)))
        return made[-1][1]

    answer = log.run_once(
        database, request_id, answering.method, [answering.request], answering.answer_type, answered
    )
    # The log hands back the effect's own answer only when it committed it.
    return Answered(answer, next((result for result, sent in made if sent is answer), None))


def once(
    log: RequestLog,
    database: Database,
    request_id: str,
    answering: Answering[Result, Answer],
    effect: Callable[[Session], Result],
    *,
    attempts: int = 1,
) -> Answered[Result, Answer]:
    """Apply ``effect`` once per request id: the answer, with the result when this call made it.

    With ``attempts`` above one, a first attempt that lost a unique key to a racing one is
    tried again: the next attempt sees what the other wrote.
    """
    for _ in range(attempts - 1):
        with suppress(IntegrityError):
            return _attempt(log, database, request_id, answering, effect)
    return _attempt(log, database, request_id, answering, effect)


def replayed(
    log: RequestLog, database: Database, request_id: str, answering: Answering[Result, Answer]
) -> Answer | None:
    """The answer the log already holds for this request, None for a new one (``DUPLICATE_REQUEST`` on a clash)."""
    with database.unit_of_work() as uow:
        return log.replay(
            uow.session,
            request_id,
            answering.method,
            fingerprint([answering.request]),
            answering.answer_type,
        )


class AtNational(Generic[Handlers]):
    """Calls answered by ``Handlers`` at the national node, passed one hop up from any other node."""

    def __init__(self, relay: Relay, handlers: Callable[[], Handlers]) -> None:
        self._relay = relay
        self._handlers = handlers

    def read(
        self,
        method: str,
        request: Request,
        context: grpc.ServicerContext,
        command: Callable[[Request], Command],
        handler: Callable[[Handlers, Command], Result],
        answer: Callable[[Result], Answer],
    ) -> Answer:
        """A call that changes nothing: its command handled, the result answered."""
        return self._relay.answer(
            method,
            request,
            context,
            Up.NATIONAL,
            lambda: answer(handler(self._handlers(), command(request))),
        )

    def write(
        self,
        method: str,
        request: Request,
        context: grpc.ServicerContext,
        command: Callable[[Request], Command],
        handler: Callable[[Handlers, Command, Answering[Result, Answer]], Answer],
        answer_type: type[Answer],
        answer: Callable[[Result], Answer],
    ) -> Answer:
        """A mutating call: its command handled once per request id, the result answered."""
        answering = Answering(method, request, answer_type, answer)
        return self._relay.answer(
            method,
            request,
            context,
            Up.NATIONAL,
            lambda: handler(self._handlers(), command(request), answering),
        )
