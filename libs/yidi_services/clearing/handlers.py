"""The national node's clearing handlers: advances, alerts, clearing runs, statements, clawbacks, the ledger.

Each takes a command (:mod:`~.commands`), never a proto request, and gives back a domain
result; a mutating one runs one transaction, its effect applied once per ``request_id``,
and hands back the answer the servicer makes of its result (:mod:`~.calls`). What lives
for as long as the node does — the alert watch and the clearing-run worker — is built
here and handed to the node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy.orm import Session

from yidi_core.codes import NATIONAL_REGION, province_of
from yidi_runtime import identity
from yidi_runtime.idempotency import RequestLog
from yidi_runtime.identity import CallerRole
from yidi_runtime.logs import get_logger
from yidi_runtime.service import ServiceContext
from yidi_runtime.wire import Clock, china_day
from yidi_services.clearing import (
    access,
    advances,
    alerts,
    clawbacks,
    clearing_runs,
    commands,
    journal,
    ledger,
    sizing,
    statements,
)
from yidi_services.clearing.calendar import ClearingCalendar
from yidi_services.clearing.calls import Answered, Answering, Page, once
from yidi_services.clearing.clearing_runs import ClearingRunner, Run
from yidi_services.clearing.jobs import RunState
from yidi_services.clearing.ledger import Entry as LedgerEntry
from yidi_services.clearing.ledger import Ledger
from yidi_services.clearing.models import RequestRecord
from yidi_services.clearing.statements import Statement, Transfer
from yidi_services.clearing.watch import AlertWatch, ClearingMetrics

Result = TypeVar("Result")
Answer = TypeVar("Answer", bound=Message)

ATTEMPTS = 3
"""A concurrent first attempt can win a unique key (an entry's msgid, a period's run, a year's advance);
the next attempt sees what it wrote."""


class Clearing:
    """What the clearing RPCs do at the national node."""

    def __init__(self, context: ServiceContext, clock: Clock) -> None:
        self._database = context.database
        self._clock = clock
        self._log = RequestLog(RequestRecord)
        self._region = context.settings.region
        self.calendar = ClearingCalendar.of(context.settings)
        self.sizing_rule = sizing.Rule.of(context.settings)
        self._provinces = {province_of(child.region) for child in context.settings.children}
        self.metrics = ClearingMetrics(context.metrics_registry)
        self.watch = AlertWatch(
            context.database, self.calendar, clock, self.metrics, context.settings.clearing_alert_interval_s
        )
        self.runner = ClearingRunner(context.database, self.calendar, clock, self._cleared)
        context.run_in_background(self.watch)
        context.run_in_background(self.runner)

    def _once(
        self,
        request_id: str,
        answering: Answering[Result, Answer],
        effect: Callable[[Session], Result],
    ) -> Answered[Result, Answer]:
        """Apply ``effect`` once per request id: the answer, with the result when this call made it."""
        return once(self._log, self._database, request_id, answering, effect, attempts=ATTEMPTS)

    def _cleared(self, run: Run) -> None:
        """A run cleared entries: every province's usage dropped."""
        self.watch.touched(statements_provinces(run))

    def append_journal_entries(
        self, command: commands.AppendJournalEntries, answering: Answering[journal.Appended, Answer]
    ) -> Answer:
        """Record a delivered batch once; the insured provinces' advance usage is re-evaluated soon after."""
        source, entries = command.source_admdvs, command.entries
        journal.ensure_sent_by_treatment_node(source, entries)
        done = self._once(
            command.request_id,
            answering,
            lambda session: journal.append(session, source, entries, self._clock()),
        )
        self.watch.touched({entry.insured_province for entry in entries})
        if (appended := done.made) is not None:
            get_logger().info(
                "journal entries delivered",
                source_admdvs=source,
                appended=appended.appended_count,
                duplicates=appended.duplicate_count,
            )
        return done.answer

    def _journal_part(self) -> str:
        """The region whose part of the journal the caller may read: another node's own; "" for all."""
        principal = identity.acting()
        if principal.role is CallerRole.NODE and principal.region != self._region:
            return principal.region
        return ""

    def list_journal_entries(self, query: commands.ListJournalEntries) -> Page[journal.Recorded]:
        """A page of the journal in record order (a child node's own part only)."""
        with self._database.unit_of_work() as uow:
            return Page(*journal.list_entries(uow.session, query, self._journal_part()))

    def set_advance(
        self, command: commands.SetAdvance, answering: Answering[advances.AdvanceStatus, Answer]
    ) -> Answer:
        """SetAdvance: the year's advance set once per request; the ledger receives the difference."""

        def effect(session: Session) -> advances.AdvanceStatus:
            advances.set_advance(
                session, command.request_id, command.admdvs, command.year, command.amount_fen, self._clock()
            )
            return advances.status(session, command.admdvs, command.year, self.calendar)

        answer = self._once(command.request_id, answering, effect).answer
        self.watch.advance_status(command.admdvs, command.year)
        return answer

    def top_up_advance(
        self, command: commands.TopUpAdvance, answering: Answering[advances.AdvanceStatus, Answer]
    ) -> Answer:
        """TopUpAdvance (紧急调增): added to an existing advance, logged with its reason."""

        def effect(session: Session) -> advances.AdvanceStatus:
            advances.top_up(
                session,
                command.request_id,
                command.admdvs,
                command.year,
                command.amount_fen,
                command.reason,
                self._clock(),
            )
            return advances.status(session, command.admdvs, command.year, self.calendar)

        answer = self._once(command.request_id, answering, effect).answer
        get_logger(service="clearing").info(
            "advance topped up",
            admdvs=command.admdvs,
            year=command.year,
            amount_fen=command.amount_fen,
            reason=command.reason,
        )
        self.watch.advance_status(command.admdvs, command.year)
        return answer

    def advance_status(self, query: commands.GetAdvanceStatus) -> advances.AdvanceStatus:
        """GetAdvanceStatus: usage now, with the province's alert brought up to date."""
        return self.watch.advance_status(query.admdvs, query.year)

    def propose_advances(
        self, command: commands.ProposeAdvances, answering: Answering[list[sizing.Proposal], Answer]
    ) -> Answer:
        """ProposeAdvances: every province's proposal for the year (its children's too), stored once per request."""
        done = self._once(
            command.request_id,
            answering,
            lambda session: sizing.propose(
                session, command.year, self.sizing_rule, self._provinces, self._clock()
            ),
        )
        if (proposed := done.made) is not None:
            get_logger(service="clearing").info(
                "advances proposed",
                year=command.year,
                provinces=len(proposed),
                proposed_fen=sum(proposal.proposed_fen for proposal in proposed),
            )
        return done.answer

    def advance_proposal(self, query: commands.GetAdvanceProposal) -> sizing.Proposal:
        """GetAdvanceProposal: one province's (a province's operator: only its own)."""
        access.own_province(identity.acting(), query.admdvs)
        with self._database.unit_of_work() as uow:
            return sizing.get(uow.session, query.year, query.admdvs)

    def advance_proposals(self, query: commands.ListAdvanceProposals) -> Page[sizing.Proposal]:
        """ListAdvanceProposals: a page of the year's, by province (a province's operator: only its own)."""
        admdvs = access.own_province(identity.acting(), query.admdvs)
        with self._database.unit_of_work() as uow:
            return Page(
                *sizing.page_of_proposals(uow.session, query.year, admdvs, query.page_size, query.page_token)
            )

    def apply_advance_proposal(
        self, command: commands.ApplyAdvanceProposal, answering: Answering[sizing.Applied, Answer]
    ) -> Answer:
        """ApplyAdvanceProposal: the proposal (or the operator's amount) set as the year's advance, once."""
        applied_by = identity.acting().subject

        def effect(session: Session) -> sizing.Applied:
            proposal = sizing.apply(
                session,
                command.request_id,
                command.year,
                command.admdvs,
                command.amount_fen,
                command.override_reason,
                applied_by,
                self._clock(),
            )
            return sizing.Applied(
                proposal, advances.status(session, command.admdvs, command.year, self.calendar)
            )

        done = self._once(command.request_id, answering, effect)
        if (applied := done.made) is not None:
            get_logger(service="clearing").info(
                "advance proposal applied",
                admdvs=command.admdvs,
                year=command.year,
                proposed_fen=applied.proposal.proposed_fen,
                applied_fen=applied.proposal.applied_fen,
                override_reason=command.override_reason,
                applied_by=applied_by,
            )
        self.watch.advance_status(command.admdvs, command.year)
        return done.answer

    def list_alerts(self, query: commands.ListAlerts) -> Page[alerts.Alert]:
        """ListAlerts: what is still pending is evaluated first, so the list is current."""
        try:
            self.watch.evaluate_pending()
        except Exception:  # an evaluation that cannot write now must not hide the alerts already raised
            get_logger(service="clearing").exception("clearing alert evaluation failed")
        with self._database.unit_of_work() as uow:
            return Page(
                *alerts.list_alerts(
                    uow.session, query.admdvs, query.active_only, query.page_size, query.page_token
                )
            )

    def run_clearing(self, command: commands.RunClearing, answering: Answering[Run, Answer]) -> Answer:
        """RunClearing: the run is recorded (or the period's existing run answered) and queued."""
        done = self._once(
            command.request_id,
            answering,
            lambda session: clearing_runs.start(session, command.period, self._clock()),
        )
        if (run := done.made) is not None and run.state in (RunState.PENDING, RunState.RUNNING):
            self.runner.submit(run.run_id)
        return done.answer

    def clearing_run(self, query: commands.GetClearingRun) -> Run:
        """GetClearingRun: the run, with the live count of a run in progress."""
        with self._database.unit_of_work() as uow:
            return clearing_runs.get(uow.session, query.run_id, self.runner.progress(query.run_id))

    def list_statements(self, query: commands.ListStatements) -> Page[Statement]:
        """ListStatements: a page of the caller's statements (a province's own) with their lines and transfers."""
        admdvs = access.own_province(identity.acting(), query.admdvs)
        overdue_on = china_day(self._clock()) if query.confirmation_overdue else None
        with self._database.unit_of_work() as uow:
            return Page(
                *statements.list_statements(
                    uow.session,
                    query.period,
                    admdvs,
                    query.state,
                    overdue_on,
                    query.page_size,
                    query.page_token,
                )
            )

    def statement(self, query: commands.GetStatement) -> Statement:
        """GetStatement: one of the caller's statements with its lines and transfers."""
        access.ensure_own_statement(identity.acting(), query.statement_id)
        with self._database.unit_of_work() as uow:
            return statements.get(uow.session, query.statement_id)

    def confirm_statement(
        self, command: commands.ConfirmStatement, answering: Answering[Statement, Answer]
    ) -> Answer:
        """ConfirmStatement: issued or disputed → confirmed, once per request; after the
        confirmation days, only by the national node."""
        principal = identity.acting()
        access.ensure_own_statement(principal, command.statement_id)
        return self._once(
            command.request_id,
            answering,
            lambda session: statements.confirm(
                session,
                command.request_id,
                command.statement_id,
                command.confirmed_by or principal.subject,
                self._clock(),
                overdue_allowed=principal.region == NATIONAL_REGION,
            ),
        ).answer

    def dispute_statement(
        self, command: commands.DisputeStatement, answering: Answering[Statement, Answer]
    ) -> Answer:
        """DisputeStatement: issued → disputed with the caller's reason, once per request."""
        principal = identity.acting()
        access.ensure_own_statement(principal, command.statement_id)
        done = self._once(
            command.request_id,
            answering,
            lambda session: statements.dispute(
                session, command.statement_id, command.reason, principal.subject, self._clock()
            ),
        )
        if done.made is not None:
            get_logger(service="clearing").warning(
                "statement disputed",
                statement_id=command.statement_id,
                disputed_by=principal.subject,
                reason=command.reason,
            )
        return done.answer

    def record_transfer(
        self, command: commands.RecordTransfer, answering: Answering[Statement, Answer]
    ) -> Answer:
        """RecordTransfer: money moved for a confirmed statement (at the time given, else now), once per request."""
        moved = Transfer(command.amount_fen, command.bank_reference, command.transfer_time or self._clock())
        return self._once(
            command.request_id,
            answering,
            lambda session: statements.record_transfer(
                session, command.request_id, command.statement_id, moved, self._clock()
            ),
        ).answer

    def record_clawback(
        self, command: commands.RecordClawback, answering: Answering[clawbacks.Recorded, Answer]
    ) -> Answer:
        """RecordClawback: recorded for the next clearing, once per request."""
        clawback = command.clawback
        done = self._once(
            command.request_id,
            answering,
            lambda session: clawbacks.record(
                session, clawback, clearing_runs.last_closed(session), self._clock()
            ),
        )
        if (recorded := done.made) is not None:
            get_logger(service="clearing").info(
                "clawback recorded",
                clawback_id=recorded.clawback_id,
                msgid=clawback.msgid,
                amount_fen=clawback.amount_fen,
                adjustment_period=recorded.adjustment_period,
            )
        return done.answer

    def clearing_calendar(self, query: commands.GetClearingCalendar) -> ClearingCalendar:
        """GetClearingCalendar: the configured calendar and thresholds."""
        return self.calendar

    def ledger(self, query: commands.GetLedger) -> Ledger:
        """GetLedger: balances and the zero-sum check (which also refreshes the imbalance gauge)."""
        with self._database.unit_of_work() as uow:
            found = ledger.ledger(uow.session, query.admdvs)
        self.metrics.imbalance.set(found.total_fen)
        return found

    def ledger_entries(self, query: commands.ListLedgerEntries) -> Page[LedgerEntry]:
        """ListLedgerEntries: a page of entries in posting order."""
        with self._database.unit_of_work() as uow:
            return Page(*ledger.list_entries(uow.session, query.admdvs, query.page_size, query.page_token))


def statements_provinces(run: Run) -> list[str]:
    """The provinces a run issued statements to."""
    return [statement_id.split("/", 1)[1] for statement_id in run.statement_ids]
