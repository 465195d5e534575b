"""ClearingService's reconciliation methods: a mixin the clearing servicer inherits.

Reconciliation is kept at the national node, like the journal it reads: any other node
relays these calls one hop up, as the servicer relays the rest (:mod:`yidi_runtime.relay`). At the national
node, :class:`Reconciliation` holds what the methods need; the servicer builds it once in
``register`` (:meth:`ReconciliationMethods.init_reconciliation`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi_core.codes import NATIONAL_REGION
from yidi_core.errors import DomainError, invalid
from yidi_runtime.idempotency import RequestLog, fingerprint
from yidi_runtime.paging import bad_token, decode_token, encode_token, page_size
from yidi_runtime.relay import Relay, Up
from yidi_runtime.service import ServiceContext
from yidi_runtime.wire import Clock, as_utc
from yidi_services.clearing.models import RequestRecord
from yidi_services.clearing.reconciliation import convert, institutions
from yidi_services.clearing.reconciliation.collect import TreeWalker
from yidi_services.clearing.reconciliation.compare import Kind
from yidi_services.clearing.reconciliation.jobs import ReconciliationJobs, create_run, run_id_of
from yidi_services.clearing.reconciliation.metrics import register_open_discrepancies
from yidi_services.clearing.reconciliation.models import DiscrepancyRow, ReconciliationRunRow, ReportLineRow
from yidi_services.clearing.reconciliation.repair import InsuredRepairs, Outcome, append_to_journal, noted

Answer = TypeVar("Answer", bound=Message)
REPAIR = "RepairDiscrepancies"


def _not_found(what: str, key: str) -> DomainError:
    return DomainError("NOT_FOUND", f"no {what} {key!r}", metadata={"key": key[:64]})


def _required_run_id(value: str) -> str:
    run_id = value.strip()
    if not run_id:
        raise invalid("INVALID_ARGUMENT", "run_id", "is required")
    return run_id


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


class Reconciliation:
    """Runs, their discrepancies and report lines, repairs and institution checks at the national node."""

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

    def reconcile(self, request: api.ReconcileRequest) -> api.ReconcileResponse:
        """Record the run (PENDING) once per request id and wake the worker."""
        period, admdvs = convert.reconcile_query(request)

        def effect(session: Session) -> api.ReconcileResponse:
            row = create_run(session, run_id_of(request.request_id), period, admdvs, as_utc(self._clock()))
            return api.ReconcileResponse(run=convert.run_message(row))

        answer = self._requests.run_once(
            self._database, request.request_id, "Reconcile", [request], api.ReconcileResponse, effect
        )
        self.jobs.wake()
        return answer

    def run(self, request: api.GetReconciliationRunRequest) -> api.GetReconciliationRunResponse:
        """One run as it stands."""
        run_id = _required_run_id(request.run_id)
        with self._database.unit_of_work() as uow:
            return api.GetReconciliationRunResponse(
                run=convert.run_message(_existing_run(uow.session, run_id))
            )

    def discrepancies(self, request: api.ListDiscrepanciesRequest) -> api.ListDiscrepanciesResponse:
        """One page of discrepancies in the order found."""
        size = page_size(request.page_size)
        query = {"run_id": request.run_id.strip(), "open_only": request.open_only}
        last = decode_token(request.page_token, query, 1)
        statement = select(DiscrepancyRow).order_by(DiscrepancyRow.seq).limit(size + 1)
        if last is not None:
            if not last[0].isdigit():
                raise bad_token()
            statement = statement.where(DiscrepancyRow.seq > int(last[0]))
        if query["run_id"]:
            statement = statement.where(DiscrepancyRow.run_id == query["run_id"])
        if request.open_only:
            statement = statement.where(DiscrepancyRow.repaired.is_(False))
        with self._database.unit_of_work() as uow:
            rows = uow.session.scalars(statement).all()
            page = [convert.discrepancy_message(row) for row in rows[:size]]
            token = encode_token([str(rows[size - 1].seq)], query) if len(rows) > size else ""
        return api.ListDiscrepanciesResponse(discrepancies=page, next_page_token=token)

    def lines(self, request: api.ListReconciliationLinesRequest) -> api.ListReconciliationLinesResponse:
        """One page of a run's report, by day, insured province, treatment province and insurance type."""
        run_id = _required_run_id(request.run_id)
        size = page_size(request.page_size)
        query = {"run_id": run_id}
        last = decode_token(request.page_token, query, len(_LINE_KEY))
        statement = (
            select(ReportLineRow).where(ReportLineRow.run_id == run_id).order_by(*_LINE_KEY).limit(size + 1)
        )
        if last is not None:
            statement = statement.where(tuple_(*_LINE_KEY) > _after_line(last))
        with self._database.unit_of_work() as uow:
            _existing_run(uow.session, run_id)
            rows = uow.session.scalars(statement).all()
            page = [convert.line_message(row) for row in rows[:size]]
            token = encode_token(_line_token_key(rows[size - 1]), query) if len(rows) > size else ""
        return api.ListReconciliationLinesResponse(lines=page, next_page_token=token)

    def _targets(self, ids: list[str], run_id: str) -> list[DiscrepancyRow]:
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
                        .limit(convert.MAX_REPAIR_IDS)
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

    def repair(self, request: api.RepairDiscrepanciesRequest) -> api.RepairDiscrepanciesResponse:
        """Apply each open discrepancy's rule once; the insured nodes first, the local effects in one transaction."""
        ids, run_id = convert.repair_targets(request)
        with self._database.unit_of_work() as uow:
            answered = self._requests.replay(
                uow.session,
                request.request_id,
                REPAIR,
                fingerprint([request]),
                api.RepairDiscrepanciesResponse,
            )
        if answered is not None:
            return answered
        targets = self._targets(ids, run_id)
        remote = {
            row.discrepancy_id: self._insured.repair(row)
            for row in targets
            if not row.repaired and row.kind != Kind.MISSING_AT_NATIONAL.value
        }

        def effect(session: Session) -> api.RepairDiscrepanciesResponse:
            now = as_utc(self._clock())
            answer = api.RepairDiscrepanciesResponse()
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
                        answer.repaired_count += 1
                    else:
                        answer.failed_count += 1
            answer.discrepancies.extend(convert.discrepancy_message(rows[target.seq]) for target in targets)
            return answer

        return self._requests.run_once(
            self._database, request.request_id, REPAIR, [request], api.RepairDiscrepanciesResponse, effect
        )

    def totals(self, request: api.CheckInstitutionTotalsRequest) -> api.CheckInstitutionTotalsResponse:
        """3201 对总账."""
        with self._database.unit_of_work() as uow:
            return institutions.check_totals(uow.session, request)

    def details(self, request: api.CheckInstitutionDetailsRequest) -> api.CheckInstitutionDetailsResponse:
        """3202 对明细账."""
        with self._database.unit_of_work() as uow:
            return institutions.check_details(uow.session, request)


class ReconciliationMethods:
    """Reconcile, GetReconciliationRun, ListDiscrepancies, ListReconciliationLines, RepairDiscrepancies,
    CheckInstitutionTotals/Details."""

    _reconciliation: Reconciliation
    relay: Relay
    """The clearing servicer's relay toward the national node."""

    def init_reconciliation(self, context: ServiceContext, clock: Clock) -> None:
        """Build what the methods need (and register the run worker with the node); call once in ``register``."""
        self._reconciliation = Reconciliation(context, clock)

    def _at_national(
        self,
        method: str,
        request: Answer,
        handler: Callable[[Answer], Message],
        context: grpc.ServicerContext,
    ) -> Message:
        """``handler`` at the national node; elsewhere the parent's answer, within the caller's deadline."""
        answer: Message = self.relay.answer(method, request, context, Up.NATIONAL, lambda: handler(request))
        return answer

    def Reconcile(self, request: api.ReconcileRequest, context: grpc.ServicerContext) -> Message:
        return self._at_national("Reconcile", request, self._reconciliation.reconcile, context)

    def GetReconciliationRun(
        self, request: api.GetReconciliationRunRequest, context: grpc.ServicerContext
    ) -> Message:
        return self._at_national("GetReconciliationRun", request, self._reconciliation.run, context)

    def ListDiscrepancies(
        self, request: api.ListDiscrepanciesRequest, context: grpc.ServicerContext
    ) -> Message:
        return self._at_national("ListDiscrepancies", request, self._reconciliation.discrepancies, context)

    def ListReconciliationLines(
        self, request: api.ListReconciliationLinesRequest, context: grpc.ServicerContext
    ) -> Message:
        return self._at_national("ListReconciliationLines", request, self._reconciliation.lines, context)

    def RepairDiscrepancies(
        self, request: api.RepairDiscrepanciesRequest, context: grpc.ServicerContext
    ) -> Message:
        return self._at_national("RepairDiscrepancies", request, self._reconciliation.repair, context)

    def CheckInstitutionTotals(
        self, request: api.CheckInstitutionTotalsRequest, context: grpc.ServicerContext
    ) -> Message:
        return self._at_national("CheckInstitutionTotals", request, self._reconciliation.totals, context)

    def CheckInstitutionDetails(
        self, request: api.CheckInstitutionDetailsRequest, context: grpc.ServicerContext
    ) -> Message:
        return self._at_national("CheckInstitutionDetails", request, self._reconciliation.details, context)
