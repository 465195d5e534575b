"""The national node's reconciliation handlers: runs, their discrepancies and report lines, repairs, institution checks.

Each takes a command (:mod:`~.commands`), never a proto request, and gives back rows or
values; a mutating one applies its effect once per ``request_id`` and hands back the
answer the servicer makes of its result (:mod:`~yidi_services.clearing.calls`). The
servicer builds :class:`Reconciliation` once in ``register``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from yidi_core.codes import NATIONAL_REGION
from yidi_core.errors import DomainError, invalid
from yidi_runtime.idempotency import RequestLog
from yidi_runtime.paging import bad_token, decode_token, encode_token
from yidi_runtime.service import ServiceContext
from yidi_runtime.wire import Clock, as_utc
from yidi_services.clearing.calls import Answering, Page, once, replayed
from yidi_services.clearing.models import RequestRecord
from yidi_services.clearing.reconciliation import commands, institutions
from yidi_services.clearing.reconciliation.collect import TreeWalker
from yidi_services.clearing.reconciliation.compare import Kind
from yidi_services.clearing.reconciliation.jobs import ReconciliationJobs, create_run, run_id_of
from yidi_services.clearing.reconciliation.metrics import register_open_discrepancies
from yidi_services.clearing.reconciliation.models import DiscrepancyRow, ReconciliationRunRow, ReportLineRow
from yidi_services.clearing.reconciliation.repair import (
    MAX_REPAIR_IDS,
    InsuredRepairs,
    Outcome,
    append_to_journal,
    noted,
)

Answer = TypeVar("Answer", bound=Message)


def _not_found(what: str, key: str) -> DomainError:
    return DomainError("NOT_FOUND", f"no {what} {key!r}", metadata={"key": key[:64]})


def _existing_run(session: Session, run_id: str) -> ReconciliationRunRow:
    row = session.get(ReconciliationRunRow, run_id)
    if row is None:
        raise _not_found("reconciliation run", run_id)
    return row


_LINE_KEY = (
    ReportLineRow.day,
    ReportLineRow.insured_province,
    ReportLineRow.treatment_province,
    ReportLineRow.insutype,
)
"""A report line's place in its run: the listing order and the page token's key."""


def _line_token_key(row: ReportLineRow) -> list[str]:
    """A line's place as a page token carries it."""
    return [row.day.isoformat(), row.insured_province, row.treatment_province, row.insutype]


def _after_line(last: list[str]) -> tuple[date, str, str, str]:
    """A page token's line place, as values to compare with (the inverse of :func:`_line_token_key`)."""
    try:
        day = date.fromisoformat(last[0])
    except ValueError:
        raise bad_token() from None
    return day, last[1], last[2], last[3]


def _replay_order(row: DiscrepancyRow) -> tuple[bool, int]:
    """Settlements before reversals: a reversal is journalled only after the settlement it undoes."""
    return bool(row.reverses_msgid), row.seq


@dataclass(frozen=True, slots=True)
class Repaired:
    """What a RepairDiscrepancies did: how many it repaired and could not, and each discrepancy as it now stands."""

    repaired_count: int
    failed_count: int
    discrepancies: tuple[DiscrepancyRow, ...]


class Reconciliation:
    """Runs, their discrepancies and report lines, repairs and institution checks at the national node.

    Rows handed back by a read are detached from their session, loaded.
    """

    def __init__(self, context: ServiceContext, clock: Clock) -> None:
        router = context.router
        self._database = context.database
        self._clock = clock
        self._requests = RequestLog(RequestRecord)
        walker = TreeWalker(router)
        hold = timedelta(seconds=context.settings.settlement_hold_timeout_s)
        self.jobs = ReconciliationJobs(
            context.database,
            walker,
            clock,
            hold,
            context.settings.label,
            timedelta(seconds=context.settings.clearing_stale_hold_s),
        )
        self._insured = InsuredRepairs(router, walker)
        if context.settings.region == NATIONAL_REGION:
            context.run_in_background(self.jobs)
            register_open_discrepancies(context.metrics_registry, context.database)

    def reconcile(
        self, command: commands.Reconcile, answering: Answering[ReconciliationRunRow, Answer]
    ) -> Answer:
        """Record the run (PENDING) once per request id and wake the worker."""
        done = once(
            self._requests,
            self._database,
            command.request_id,
            answering,
            lambda session: create_run(
                session, run_id_of(command.request_id), command.days, command.admdvs, as_utc(self._clock())
            ),
        )
        self.jobs.wake()
        return done.answer

    def run(self, query: commands.GetReconciliationRun) -> ReconciliationRunRow:
        """One run as it stands."""
        with self._database.unit_of_work() as uow:
            row = _existing_run(uow.session, query.run_id)
            uow.session.expunge(row)
        return row

    def discrepancies(self, query: commands.ListDiscrepancies) -> Page[DiscrepancyRow]:
        """One page of discrepancies in the order found."""
        key = {"run_id": query.run_id, "open_only": query.open_only}
        last = decode_token(query.page_token, key, 1)
        statement = select(DiscrepancyRow).order_by(DiscrepancyRow.seq).limit(query.page_size + 1)
        if last is not None:
            if not last[0].isdigit():
                raise bad_token()
            statement = statement.where(DiscrepancyRow.seq > int(last[0]))
        if query.run_id:
            statement = statement.where(DiscrepancyRow.run_id == query.run_id)
        if query.open_only:
            statement = statement.where(DiscrepancyRow.repaired.is_(False))
        with self._database.unit_of_work() as uow:
            rows = uow.session.scalars(statement).all()
            uow.session.expunge_all()
        size = query.page_size
        token = encode_token([str(rows[size - 1].seq)], key) if len(rows) > size else ""
        return Page(list(rows[:size]), token)

    def lines(self, query: commands.ListReconciliationLines) -> Page[ReportLineRow]:
        """One page of a run's report, by day, insured province, treatment province and insurance type."""
        key = {"run_id": query.run_id}
        last = decode_token(query.page_token, key, len(_LINE_KEY))
        statement = (
            select(ReportLineRow)
            .where(ReportLineRow.run_id == query.run_id)
            .order_by(*_LINE_KEY)
            .limit(query.page_size + 1)
        )
        if last is not None:
            statement = statement.where(tuple_(*_LINE_KEY) > _after_line(last))
        with self._database.unit_of_work() as uow:
            _existing_run(uow.session, query.run_id)
            rows = uow.session.scalars(statement).all()
            uow.session.expunge_all()
        size = query.page_size
        token = encode_token(_line_token_key(rows[size - 1]), key) if len(rows) > size else ""
        return Page(list(rows[:size]), token)

    def _targets(self, ids: tuple[str, ...], run_id: str) -> list[DiscrepancyRow]:
        """The discrepancies to repair as they stand now, detached (the remote rules run outside any transaction)."""
        with self._database.unit_of_work() as uow:
            session = uow.session
            if not ids:
                _existing_run(session, run_id)
                rows = list(
                    session.scalars(
                        select(DiscrepancyRow)
                        .where(DiscrepancyRow.run_id == run_id, DiscrepancyRow.repaired.is_(False))
                        .order_by(DiscrepancyRow.seq)
                        .limit(MAX_REPAIR_IDS)
                    )
                )
                session.expunge_all()
                return rows
            found = {
                row.discrepancy_id: row
                for row in session.scalars(
                    select(DiscrepancyRow).where(DiscrepancyRow.discrepancy_id.in_(ids))
                )
            }
            session.expunge_all()
        for key in ids:
            if key not in found:
                raise _not_found("discrepancy", key)
            if run_id and found[key].run_id != run_id:
                raise invalid(
                    "INVALID_ARGUMENT", "discrepancy_ids", f"{key} was found by another run than {run_id}"
                )
        return [found[key] for key in ids]

    def repair(self, command: commands.RepairDiscrepancies, answering: Answering[Repaired, Answer]) -> Answer:
        """Apply each open discrepancy's rule once; the insured nodes first, the local effects in one transaction."""
        answered = replayed(self._requests, self._database, command.request_id, answering)
        if answered is not None:
            return answered
        targets = self._targets(command.discrepancy_ids, command.run_id)
        remote = {
            row.discrepancy_id: self._insured.repair(row)
            for row in targets
            if not row.repaired and row.kind != Kind.MISSING_AT_NATIONAL.value
        }

        def effect(session: Session) -> Repaired:
            now = as_utc(self._clock())
            repaired = failed = 0
            rows: dict[int, DiscrepancyRow] = {}
            for target in sorted(targets, key=_replay_order):
                row = session.get(DiscrepancyRow, target.seq, with_for_update=True, populate_existing=True)
                assert row is not None
                rows[row.seq] = row
                if not row.repaired:
                    outcome: Outcome = (
                        append_to_journal(session, row, now)
                        if row.kind == Kind.MISSING_AT_NATIONAL.value
                        else remote[row.discrepancy_id]
                    )
                    row.repair_note = noted(outcome)
                    if outcome.repaired:
                        row.repaired, row.repaired_at = True, now
                        repaired += 1
                    else:
                        failed += 1
            return Repaired(repaired, failed, tuple(rows[target.seq] for target in targets))

        return once(self._requests, self._database, command.request_id, answering, effect).answer

    def totals(self, query: commands.CheckInstitutionTotals) -> institutions.TotalsCheck:
        """3201 对总账."""
        with self._database.unit_of_work() as uow:
            return institutions.check_totals(uow.session, query)

    def details(self, query: commands.CheckInstitutionDetails) -> institutions.DetailsCheck:
        """3202 对明细账."""
        with self._database.unit_of_work() as uow:
            return institutions.check_details(uow.session, query)
