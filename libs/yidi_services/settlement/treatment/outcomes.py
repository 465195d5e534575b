"""Exactly once, and correctable: the request log, and the one row that decides "applied or corrected".

Every mutating call runs through the service's request log. A call a correction (冲正,
2601) may target — RegisterVisit, UploadFeeItems, Settle — also claims its request id in
``settlement_outcomes`` inside its own transaction; a correction that arrives first claims
the same key as corrected. The primary key lets exactly one of the two commit: the request
then refuses with CORRECTED for ever, or the correction finds it applied and undoes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yidi_core.errors import DomainError
from yidi_runtime.config import region_contains
from yidi_runtime.db import Database, insert_if_absent, row_by_key
from yidi_runtime.idempotency import RequestLog, Response
from yidi_services.settlement.models import RequestRecord
from yidi_services.settlement.treatment.commands import Call
from yidi_services.settlement.treatment.models import Outcome, OutcomeRow

T = TypeVar("T")


@contextmanager
def reading(database: Database) -> Iterator[Session]:
    """A read-only unit of work whose rows stay readable after it ends (detached, not expired)."""
    with database.unit_of_work() as uow:
        try:
            yield uow.session
        finally:
            uow.session.expunge_all()


class Raced(Exception):
    """A concurrent request claimed the same id first; running again finds what it did."""


def retried(attempt: Callable[[], T]) -> T:
    """Run a transaction again once when a concurrent one claimed the same id first."""
    try:
        return attempt()
    except Raced:
        return attempt()


def corrected_refusal(request_id: str) -> DomainError:
    """The refusal of a request a correction barred."""
    return DomainError(
        "CORRECTED",
        f"request {request_id} was corrected (冲正) and will never take effect",
        metadata={"request_id": request_id},
    )


def voided_refusal(request_id: str) -> DomainError:
    """The refusal of a Settle whose hold the insured node voided after fencing it here."""
    return DomainError(
        "HOLD_VOIDED",
        f"settlement request {request_id} was not recorded in time and the insured place voided its hold",
        metadata={"request_id": request_id},
    )


def ensure_not_barred(row: OutcomeRow | None, request_id: str, insured_region: str | None) -> bool:
    """Refuse a request a correction barred, or one the insured node of its visit fenced.

    A fence binds only the node that insures the visit's person (``insured_region``): one
    that does not cannot stop another's settlement. True when ``row`` is such a powerless
    fence, which the request then takes over.
    """
    if row is None:
        return False
    if row.outcome == Outcome.CORRECTED:
        raise corrected_refusal(request_id)
    if row.outcome == Outcome.FENCED:
        if insured_region is None or region_contains(row.fenced_by or "", insured_region):
            raise voided_refusal(request_id)
        return True
    return False


def claim(
    session: Session,
    owner: str,
    request_id: str,
    operation: str,
    mdtrt_id: str,
    now: datetime,
    insured_region: str | None = None,
) -> None:
    """Record that ``owner``'s ``request_id`` takes effect now on visit ``mdtrt_id`` (insured in
    ``insured_region``, for a Settle), unless a correction barred it or its insured node fenced it."""
    row = row_by_key(session, OutcomeRow, (owner, request_id), lock=True)
    if row is not None and ensure_not_barred(row, request_id, insured_region):
        row.operation, row.mdtrt_id, row.outcome, row.fenced_by = operation, mdtrt_id, Outcome.APPLIED, None
        return
    if row is not None:
        raise DomainError(
            "DUPLICATE_REQUEST",
            f"request_id {request_id} already took effect as a {row.operation}",
            metadata={"request_id": request_id},
        )
    claimed = insert_if_absent(
        session,
        OutcomeRow,
        {
            "owner": owner,
            "request_id": request_id,
            "operation": operation,
            "mdtrt_id": mdtrt_id,
            "outcome": Outcome.APPLIED.value,
            "created_at": now,
        },
    )
    if not claimed:  # a concurrent attempt with this id claimed it first
        raise Raced(request_id)


def bar(
    session: Session, owner: str, request_id: str, operation: str, correction_id: str, now: datetime
) -> OutcomeRow:
    """The outcome row of ``owner``'s ``request_id``: the existing one, or a new one barring it (corrected)."""
    row = row_by_key(session, OutcomeRow, (owner, request_id), lock=True)
    if row is not None:
        return row
    row = OutcomeRow(
        owner=owner,
        request_id=request_id,
        operation=operation,
        outcome=Outcome.CORRECTED,
        correction_id=correction_id,
        created_at=now,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise Raced(request_id) from None
    return row


class Requests:
    """The request log of the treatment side: replay before any remote call, run an effect once."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._log = RequestLog(RequestRecord)

    def replayed(self, call: Call, response_type: type[Response]) -> Response | None:
        """The original answer to an answered call (DUPLICATE_REQUEST on other content), else None."""
        with self._database.unit_of_work() as uow:
            return self.replayed_in(uow.session, call, response_type)

    def replayed_in(self, session: Session, call: Call, response_type: type[Response]) -> Response | None:
        """:meth:`replayed`, read in the caller's unit of work."""
        return self._log.replay(session, call.request_id, call.method, call.digest, response_type, call.owner)

    def run_once(
        self, call: Call, response_type: type[Response], effect: Callable[[Session], Response]
    ) -> Response:
        """Apply ``effect`` at most once for the call; a lost race is run again to answer as the winner decided."""
        return retried(
            lambda: self._log.run_fingerprinted(
                self._database, call.request_id, call.method, call.digest, response_type, effect, call.owner
            )
        )
