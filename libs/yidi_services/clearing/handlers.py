"""The national node's clearing handlers: advances, alerts, clearing runs, statements, clawbacks, the ledger.

Each takes a checked request, runs one transaction (mutations exactly once per
``request_id``) and answers a response; the servicer only routes calls here. What lives
for as long as the node does — the alert watch and the clearing-run worker — is built
here and handed to the node.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import statement_pb2
from yidi_runtime import identity
from yidi_runtime.idempotency import RequestLog
from yidi_runtime.identity import CallerRole
from yidi_runtime.integrity import NodeIntegrity
from yidi_runtime.logs import get_logger
from yidi_runtime.paging import page_size
from yidi_runtime.service import ServiceContext
from yidi_runtime.wire import Clock
from yidi_services.clearing import (
    advances,
    alerts,
    clawbacks,
    clearing_runs,
    convert,
    journal,
    ledger,
    messages,
    statements,
)
from yidi_services.clearing.calendar import ClearingCalendar
from yidi_services.clearing.clearing_runs import ClearingRunner, Run
from yidi_services.clearing.models import RequestRecord
from yidi_services.clearing.watch import AlertWatch, ClearingMetrics

Response = TypeVar("Response", bound=Message)

ATTEMPTS = 3
"""A concurrent first attempt can win a unique key (an entry's msgid, a period's run, a year's advance);
the next attempt sees what it wrote."""


class Clearing:
    """What the clearing RPCs do at the national node."""

    def __init__(self, context: ServiceContext, clock: Clock) -> None:
        self._database = context.database
        self._clock = clock
        self._log = RequestLog(RequestRecord)
        self._integrity = NodeIntegrity(context.settings, context.metrics_registry)
        self._region = context.settings.region
        self.calendar = ClearingCalendar.of(context.settings)
        self.metrics = ClearingMetrics(context.metrics_registry)
        self.watch = AlertWatch(
            context.database, self.calendar, clock, self.metrics, context.settings.clearing_alert_interval_s
        )
        self.runner = ClearingRunner(context.database, self.calendar, clock, self._cleared)
        context.run_in_background(self.watch)
        context.run_in_background(self.runner)

    def once(
        self,
        request_id: str,
        method: str,
        request: Message,
        response_type: type[Response],
        effect: Callable[[Session], Response],
    ) -> Response:
        """Apply ``effect`` once per request id, trying again when a racing first attempt won a unique key."""
        for _ in range(ATTEMPTS - 1):
            with suppress(IntegrityError):
                return self._log.run_once(
                    self._database, request_id, method, [request], response_type, effect
                )
        return self._log.run_once(self._database, request_id, method, [request], response_type, effect)

    def _cleared(self, run: Run) -> None:
        """A run cleared entries: every province's usage dropped."""
        self.watch.touched(statements_provinces(run))

    def append_journal_entries(
        self, request: api.AppendJournalEntriesRequest
    ) -> api.AppendJournalEntriesResponse:
        """Record a delivered batch once; the insured provinces' advance usage is re-evaluated soon after."""
        convert.verify_seals(self._integrity, request)
        source, entries = convert.journal_entries(request)
        journal.ensure_sent_by_treatment_node(source, entries)

        def effect(session: Session) -> api.AppendJournalEntriesResponse:
            appended = journal.append(session, source, entries, self._clock())
            return api.AppendJournalEntriesResponse(
                appended_count=appended.appended_count, duplicate_count=appended.duplicate_count
            )

        response = self.once(
            request.request_id, "AppendJournalEntries", request, api.AppendJournalEntriesResponse, effect
        )
        self.watch.touched({entry.insured_province for entry in entries})
        get_logger().info(
            "journal entries delivered",
            source_admdvs=source,
            appended=response.appended_count,
            duplicates=response.duplicate_count,
        )
        return response

    def _journal_part(self) -> str:
        """The region whose part of the journal the caller may read: another node's own; "" for all."""
        principal = identity.acting()
        if principal.role is CallerRole.NODE and principal.region != self._region:
            return principal.region
        return ""

    def list_journal_entries(self, request: api.ListJournalEntriesRequest) -> api.ListJournalEntriesResponse:
        """A page of the journal in record order (a child node's own part only)."""
        query = convert.journal_query(request)
        with self._database.unit_of_work() as uow:
            page, token = journal.list_entries(uow.session, query, self._journal_part())
        return api.ListJournalEntriesResponse(
            entries=[convert.entry_message(recorded) for recorded in page], next_page_token=token
        )

    def set_advance(self, request: api.SetAdvanceRequest) -> api.SetAdvanceResponse:
        """SetAdvance: the year's advance set once per request; the ledger receives the difference."""
        admdvs, year, fen = messages.advance_request(request)

        def effect(session: Session) -> api.SetAdvanceResponse:
            advances.set_advance(session, request.request_id, admdvs, year, fen, self._clock())
            status = advances.status(session, admdvs, year, self.calendar)
            return api.SetAdvanceResponse(status=messages.advance_status(status))

        answer = self.once(request.request_id, "SetAdvance", request, api.SetAdvanceResponse, effect)
        self.watch.advance_status(admdvs, year)
        return answer

    def top_up_advance(self, request: api.TopUpAdvanceRequest) -> api.TopUpAdvanceResponse:
        """TopUpAdvance (紧急调增): added to an existing advance, logged with its reason."""
        admdvs, year, fen = messages.advance_request(request)
        reason = messages.text(request.reason, "reason")

        def effect(session: Session) -> api.TopUpAdvanceResponse:
            advances.top_up(session, request.request_id, admdvs, year, fen, reason, self._clock())
            status = advances.status(session, admdvs, year, self.calendar)
            return api.TopUpAdvanceResponse(status=messages.advance_status(status))

        answer = self.once(request.request_id, "TopUpAdvance", request, api.TopUpAdvanceResponse, effect)
        get_logger(service="clearing").info(
            "advance topped up", admdvs=admdvs, year=year, amount_fen=fen, reason=reason
        )
        self.watch.advance_status(admdvs, year)
        return answer

    def advance_status(self, request: api.GetAdvanceStatusRequest) -> api.GetAdvanceStatusResponse:
        """GetAdvanceStatus: usage now, with the province's alert brought up to date."""
        admdvs, year = messages.province(request.admdvs), messages.year(request.year)
        status = self.watch.advance_status(admdvs, year)
        return api.GetAdvanceStatusResponse(status=messages.advance_status(status))

    def list_alerts(self, request: api.ListAlertsRequest) -> api.ListAlertsResponse:
        """ListAlerts: what is still pending is evaluated first, so the list is current."""
        admdvs = messages.optional_province(request.admdvs, pool=True)
        size = page_size(request.page_size)
        try:
            self.watch.evaluate_pending()
        except Exception:  # an evaluation that cannot write now must not hide the alerts already raised
            get_logger(service="clearing").exception("clearing alert evaluation failed")
        with self._database.unit_of_work() as uow:
            found, token = alerts.list_alerts(
                uow.session, admdvs, request.active_only, size, request.page_token
            )
        return api.ListAlertsResponse(alerts=[messages.alert(item) for item in found], next_page_token=token)

    def run_clearing(self, request: api.RunClearingRequest) -> api.RunClearingResponse:
        """RunClearing: the run is recorded (or the period's existing run answered) and queued."""
        period = messages.period(request.period)

        def effect(session: Session) -> api.RunClearingResponse:
            return api.RunClearingResponse(
                run=messages.run(clearing_runs.start(session, period, self._clock()))
            )

        answer = self.once(request.request_id, "RunClearing", request, api.RunClearingResponse, effect)
        if answer.run.state in (statement_pb2.JOB_STATE_PENDING, statement_pb2.JOB_STATE_RUNNING):
            self.runner.submit(answer.run.run_id)
        return answer

    def clearing_run(self, request: api.GetClearingRunRequest) -> api.GetClearingRunResponse:
        """GetClearingRun: the run, with the live count of a run in progress."""
        run_id = request.run_id.strip()
        with self._database.unit_of_work() as uow:
            found = clearing_runs.get(uow.session, run_id, self.runner.progress(run_id))
        return api.GetClearingRunResponse(run=messages.run(found))

    def list_statements(self, request: api.ListStatementsRequest) -> api.ListStatementsResponse:
        """ListStatements: a page of statements with their lines and transfers."""
        period = messages.optional_period(request.period)
        admdvs = messages.optional_province(request.admdvs)
        state = messages.statement_state(request.state)
        size = page_size(request.page_size)
        with self._database.unit_of_work() as uow:
            found, token = statements.list_statements(
                uow.session, period, admdvs, state, size, request.page_token
            )
        return api.ListStatementsResponse(
            statements=[messages.statement(item) for item in found], next_page_token=token
        )

    def statement(self, request: api.GetStatementRequest) -> api.GetStatementResponse:
        """GetStatement: one statement with its lines and transfers."""
        with self._database.unit_of_work() as uow:
            found = statements.get(uow.session, request.statement_id.strip())
        return api.GetStatementResponse(statement=messages.statement(found))

    def confirm_statement(self, request: api.ConfirmStatementRequest) -> api.ConfirmStatementResponse:
        """ConfirmStatement: issued → confirmed, once per request."""
        confirmed_by = messages.text(request.confirmed_by, "confirmed_by", limit=messages.MAX_REFERENCE)

        def effect(session: Session) -> api.ConfirmStatementResponse:
            found = statements.confirm(
                session, request.request_id, request.statement_id.strip(), confirmed_by, self._clock()
            )
            return api.ConfirmStatementResponse(statement=messages.statement(found))

        return self.once(
            request.request_id, "ConfirmStatement", request, api.ConfirmStatementResponse, effect
        )

    def record_transfer(self, request: api.RecordTransferRequest) -> api.RecordTransferResponse:
        """RecordTransfer: money moved for a confirmed statement, once per request."""
        moved = messages.transfer(request, self._clock())

        def effect(session: Session) -> api.RecordTransferResponse:
            found = statements.record_transfer(
                session, request.request_id, request.statement_id.strip(), moved, self._clock()
            )
            return api.RecordTransferResponse(statement=messages.statement(found))

        return self.once(request.request_id, "RecordTransfer", request, api.RecordTransferResponse, effect)

    def record_clawback(self, request: api.RecordClawbackRequest) -> api.RecordClawbackResponse:
        """RecordClawback: recorded for the next clearing, once per request."""
        clawback = messages.clawback(request)

        def effect(session: Session) -> api.RecordClawbackResponse:
            closed = clearing_runs.last_closed(session)
            recorded = clawbacks.record(session, clawback, closed, self._clock())
            return api.RecordClawbackResponse(
                clawback_id=recorded.clawback_id, adjustment_period=recorded.adjustment_period
            )

        answer = self.once(request.request_id, "RecordClawback", request, api.RecordClawbackResponse, effect)
        get_logger(service="clearing").info(
            "clawback recorded",
            clawback_id=answer.clawback_id,
            msgid=clawback.msgid,
            amount_fen=clawback.amount_fen,
            adjustment_period=answer.adjustment_period,
        )
        return answer

    def clearing_calendar(self, request: api.GetClearingCalendarRequest) -> api.GetClearingCalendarResponse:
        """GetClearingCalendar: the configured calendar and thresholds."""
        return api.GetClearingCalendarResponse(calendar=messages.calendar(self.calendar))

    def ledger(self, request: api.GetLedgerRequest) -> api.GetLedgerResponse:
        """GetLedger: balances and the zero-sum check (which also refreshes the imbalance gauge)."""
        admdvs = messages.optional_province(request.admdvs, pool=True)
        with self._database.unit_of_work() as uow:
            found = ledger.ledger(uow.session, admdvs)
        self.metrics.imbalance.set(found.total_fen)
        return messages.ledger_response(found)

    def ledger_entries(self, request: api.ListLedgerEntriesRequest) -> api.ListLedgerEntriesResponse:
        """ListLedgerEntries: a page of entries in posting order."""
        admdvs = messages.optional_province(request.admdvs, pool=True)
        size = page_size(request.page_size)
        with self._database.unit_of_work() as uow:
            found, token = ledger.list_entries(uow.session, admdvs, size, request.page_token)
        return api.ListLedgerEntriesResponse(
            entries=[messages.ledger_entry(entry) for entry in found], next_page_token=token
        )


def statements_provinces(run: Run) -> list[str]:
    """The provinces a run issued statements to."""
    return [statement_id.split("/", 1)[1] for statement_id in run.statement_ids]
