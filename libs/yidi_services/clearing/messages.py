"""Proto ↔ plain values for the ledger, advances, alerts, clearing runs and statements.

Requests become commands (:mod:`~.commands`) here, every field checked on the way;
results become the messages the answers carry.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import ledger_pb2, statement_pb2
from yidi_codec.fields import Violations
from yidi_core.codes import NATIONAL_REGION, check_region, province_of
from yidi_core.errors import invalid
from yidi_runtime.paging import page_size
from yidi_runtime.wire import date_message, stamp_moment, timestamp_message
from yidi_services.clearing import commands
from yidi_services.clearing.advances import AdvanceStatus
from yidi_services.clearing.alerts import Alert, AlertKind, AlertLevel
from yidi_services.clearing.calendar import ClearingCalendar
from yidi_services.clearing.clawbacks import Clawback
from yidi_services.clearing.clearing_runs import Run
from yidi_services.clearing.jobs import JOB_STATES
from yidi_services.clearing.ledger import AccountKind, Entry, Ledger
from yidi_services.clearing.periods import Period
from yidi_services.clearing.sizing import Proposal
from yidi_services.clearing.statements import Line, Statement, StatementState

MAX_AMOUNT_FEN = 10**15
"""Ten trillion yuan: far above any advance or transfer, far below int64."""
MAX_TEXT = 200
MAX_REFERENCE = 64
FIRST_YEAR, LAST_YEAR = 2000, 2100

_ACCOUNT_KINDS = {
    AccountKind.ADVANCE: ledger_pb2.ACCOUNT_KIND_ADVANCE,
    AccountKind.PAYABLE: ledger_pb2.ACCOUNT_KIND_PAYABLE,
    AccountKind.RECEIVABLE: ledger_pb2.ACCOUNT_KIND_RECEIVABLE,
    AccountKind.CLEARING_TRANSIT: ledger_pb2.ACCOUNT_KIND_CLEARING_TRANSIT,
}
_ALERT_KINDS = {
    AlertKind.ADVANCE_USAGE: ledger_pb2.ALERT_KIND_ADVANCE_USAGE,
    AlertKind.CONFIRMATION_OVERDUE: ledger_pb2.ALERT_KIND_CONFIRMATION_OVERDUE,
    AlertKind.TRANSFER_OVERDUE: ledger_pb2.ALERT_KIND_TRANSFER_OVERDUE,
    AlertKind.LEDGER_IMBALANCE: ledger_pb2.ALERT_KIND_LEDGER_IMBALANCE,
}
_ALERT_LEVELS = {
    AlertLevel.NONE: ledger_pb2.ALERT_LEVEL_UNSPECIFIED,
    AlertLevel.YELLOW: ledger_pb2.ALERT_LEVEL_YELLOW,
    AlertLevel.RED: ledger_pb2.ALERT_LEVEL_RED,
}
_STATEMENT_STATES = {
    StatementState.OPEN: statement_pb2.STATEMENT_STATE_OPEN,
    StatementState.ISSUED: statement_pb2.STATEMENT_STATE_ISSUED,
    StatementState.CONFIRMED: statement_pb2.STATEMENT_STATE_CONFIRMED,
    StatementState.SETTLED: statement_pb2.STATEMENT_STATE_SETTLED,
    StatementState.DISPUTED: statement_pb2.STATEMENT_STATE_DISPUTED,
}
_STATES_BY_NUMBER = {number: state for state, number in _STATEMENT_STATES.items()}


def province(value: str, field: str = "admdvs", *, pool: bool = False) -> str:
    """A province code (PP0000); the national pool's 000000 too when ``pool``."""
    code = check_region(value, field)
    if pool and code == NATIONAL_REGION:
        return code
    if province_of(code, field) != code:
        raise invalid("INVALID_CODE", field, f"must be a province (PP0000), got {code}")
    return code


def optional_province(value: str, field: str = "admdvs", *, pool: bool = False) -> str:
    """A province filter: empty means every province."""
    return province(value, field, pool=pool) if value.strip() else ""


def year(value: int, field: str = "year") -> int:
    """A calendar year in the service's range."""
    if not FIRST_YEAR <= value <= LAST_YEAR:
        raise invalid("INVALID_ARGUMENT", field, f"must be between {FIRST_YEAR} and {LAST_YEAR}, got {value}")
    return value


def amount(value: int, field: str = "amount_fen") -> int:
    """A positive amount of fen."""
    if not 0 < value <= MAX_AMOUNT_FEN:
        raise invalid("INVALID_ARGUMENT", field, f"must be a positive number of fen, got {value}")
    return value


def text(value: str, field: str, *, required: bool = False, limit: int = MAX_TEXT) -> str:
    """Free text, trimmed and bounded."""
    trimmed = value.strip()
    if required and not trimmed:
        raise invalid("INVALID_ARGUMENT", field, "is required")
    if len(trimmed) > limit:
        raise invalid("INVALID_ARGUMENT", field, f"must be at most {limit} characters")
    return trimmed


def _checked(*checks: Callable[[], Any]) -> list[Any]:
    """Every check's value, or one error naming every bad field."""
    violations = Violations()
    values = [violations.check(check) for check in checks]
    violations.raise_any()
    return values


def _advance(request: api.SetAdvanceRequest | api.TopUpAdvanceRequest) -> tuple[str, int, int]:
    """Province, year and amount of SetAdvance / TopUpAdvance, every bad field named at once."""
    admdvs, year_value, fen = _checked(
        lambda: province(request.admdvs), lambda: year(request.year), lambda: amount(request.amount_fen)
    )
    return admdvs, year_value, fen


def period(value: str, field: str = "period") -> Period:
    """A required period ``yyyy-MM``."""
    if not value.strip():
        raise invalid("INVALID_ARGUMENT", field, "is required")
    return Period.parse(value, field)


def optional_period(value: str, field: str = "period") -> str:
    """A period filter: empty means every period."""
    return str(Period.parse(value, field)) if value.strip() else ""


def statement_state(value: int) -> StatementState | None:
    """A state filter: UNSPECIFIED means every state."""
    if value == statement_pb2.STATEMENT_STATE_UNSPECIFIED:
        return None
    found = _STATES_BY_NUMBER.get(value)  # type: ignore[call-overload]
    if found is None:
        raise invalid("INVALID_ARGUMENT", "state", f"is not a statement state: {value}")
    return found


def set_advance(request: api.SetAdvanceRequest) -> commands.SetAdvance:
    """SetAdvance's command."""
    return commands.SetAdvance(request.request_id, *_advance(request))


def top_up_advance(request: api.TopUpAdvanceRequest) -> commands.TopUpAdvance:
    """TopUpAdvance's command: an advance's fields, then the reason."""
    admdvs, year_value, fen = _advance(request)
    return commands.TopUpAdvance(request.request_id, admdvs, year_value, fen, text(request.reason, "reason"))


def get_advance_status(request: api.GetAdvanceStatusRequest) -> commands.GetAdvanceStatus:
    """GetAdvanceStatus's query."""
    return commands.GetAdvanceStatus(province(request.admdvs), year(request.year))


def propose_advances(request: api.ProposeAdvancesRequest) -> commands.ProposeAdvances:
    """ProposeAdvances' command."""
    return commands.ProposeAdvances(request.request_id, year(request.year))


def get_advance_proposal(request: api.GetAdvanceProposalRequest) -> commands.GetAdvanceProposal:
    """GetAdvanceProposal's query, every bad field named at once."""
    year_value, admdvs = _checked(lambda: year(request.year), lambda: province(request.admdvs))
    return commands.GetAdvanceProposal(year_value, admdvs)


def list_advance_proposals(request: api.ListAdvanceProposalsRequest) -> commands.ListAdvanceProposals:
    """ListAdvanceProposals' query, every bad field named at once."""
    year_value, admdvs = _checked(lambda: year(request.year), lambda: optional_province(request.admdvs))
    return commands.ListAdvanceProposals(year_value, admdvs, page_size(request.page_size), request.page_token)


def _override(request: api.ApplyAdvanceProposalRequest) -> tuple[int | None, str]:
    """The amount applied instead of the proposal and why; both or neither."""
    if request.amount_fen == 0:
        if request.override_reason.strip():
            raise invalid("INVALID_ARGUMENT", "override_reason", "is only given with another amount_fen")
        return None, ""
    return amount(request.amount_fen), text(request.override_reason, "override_reason", required=True)


def apply_advance_proposal(request: api.ApplyAdvanceProposalRequest) -> commands.ApplyAdvanceProposal:
    """ApplyAdvanceProposal's command, every bad field named at once."""
    year_value, admdvs, (override_fen, reason) = _checked(
        lambda: year(request.year), lambda: province(request.admdvs), lambda: _override(request)
    )
    return commands.ApplyAdvanceProposal(request.request_id, year_value, admdvs, override_fen, reason)


def list_alerts(request: api.ListAlertsRequest) -> commands.ListAlerts:
    """ListAlerts' query."""
    admdvs = optional_province(request.admdvs, pool=True)
    return commands.ListAlerts(admdvs, request.active_only, page_size(request.page_size), request.page_token)


def run_clearing(request: api.RunClearingRequest) -> commands.RunClearing:
    """RunClearing's command."""
    return commands.RunClearing(request.request_id, period(request.period))


def get_clearing_run(request: api.GetClearingRunRequest) -> commands.GetClearingRun:
    """GetClearingRun's query (an empty or unknown id is the lookup's to refuse)."""
    return commands.GetClearingRun(request.run_id.strip())


def list_statements(request: api.ListStatementsRequest) -> commands.ListStatements:
    """ListStatements' query."""
    period_value = optional_period(request.period)
    admdvs = optional_province(request.admdvs)
    state = statement_state(request.state)
    return commands.ListStatements(
        period_value,
        admdvs,
        state,
        request.confirmation_overdue,
        page_size(request.page_size),
        request.page_token,
    )


def get_statement(request: api.GetStatementRequest) -> commands.GetStatement:
    """GetStatement's query (an empty or unknown id is the lookup's to refuse)."""
    return commands.GetStatement(request.statement_id.strip())


def confirm_statement(request: api.ConfirmStatementRequest) -> commands.ConfirmStatement:
    """ConfirmStatement's command."""
    confirmed_by = text(request.confirmed_by, "confirmed_by", limit=MAX_REFERENCE)
    return commands.ConfirmStatement(request.request_id, request.statement_id.strip(), confirmed_by)


def dispute_statement(request: api.DisputeStatementRequest) -> commands.DisputeStatement:
    """DisputeStatement's command: the reason is required and bounded."""
    reason = text(request.reason, "reason", required=True)
    return commands.DisputeStatement(request.request_id, request.statement_id.strip(), reason)


def record_transfer(request: api.RecordTransferRequest) -> commands.RecordTransfer:
    """RecordTransfer's command: the transfer is required, its time is not."""
    if not request.HasField("transfer"):
        raise invalid("INVALID_ARGUMENT", "transfer", "is required")
    message = request.transfer
    moved_at = (
        stamp_moment(message.transfer_time, "transfer.transfer_time")
        if message.HasField("transfer_time")
        else None
    )
    return commands.RecordTransfer(
        request.request_id,
        request.statement_id.strip(),
        amount(message.amount_fen, "transfer.amount_fen"),
        text(message.bank_reference, "transfer.bank_reference", limit=MAX_REFERENCE),
        moved_at,
    )


def record_clawback(request: api.RecordClawbackRequest) -> commands.RecordClawback:
    """RecordClawback's command, every bad field named at once."""
    clawback = Clawback(
        *_checked(
            lambda: text(request.msgid, "msgid", required=True, limit=MAX_REFERENCE),
            lambda: amount(request.amount_fen),
            lambda: text(request.reason, "reason", required=True),
            lambda: text(request.fixmedins_code, "fixmedins_code", required=True, limit=12),
        )
    )
    return commands.RecordClawback(request.request_id, clawback)


def get_clearing_calendar(_request: api.GetClearingCalendarRequest) -> commands.GetClearingCalendar:
    """GetClearingCalendar's query: the request asks nothing."""
    return commands.GetClearingCalendar()


def get_ledger(request: api.GetLedgerRequest) -> commands.GetLedger:
    """GetLedger's query."""
    return commands.GetLedger(optional_province(request.admdvs, pool=True))


def list_ledger_entries(request: api.ListLedgerEntriesRequest) -> commands.ListLedgerEntries:
    """ListLedgerEntries' query."""
    admdvs = optional_province(request.admdvs, pool=True)
    return commands.ListLedgerEntries(admdvs, page_size(request.page_size), request.page_token)


def advance_status(status: AdvanceStatus) -> api.AdvanceStatus:
    """An advance status for the wire."""
    return api.AdvanceStatus(
        admdvs=status.admdvs,
        year=status.year,
        advance_fen=status.advance_fen,
        used_fen=status.used_fen,
        usage_ratio=f"{status.usage_ratio:.4f}",
        alert_level=_ALERT_LEVELS[status.level],
    )


def advance_proposal(found: Proposal) -> api.AdvanceProposal:
    """An advance proposal and its basis for the wire."""
    return api.AdvanceProposal(
        admdvs=found.admdvs,
        year=found.year,
        basis_year=found.basis_year,
        periods=found.periods,
        outflow_fen=found.outflow_fen,
        monthly_average_fen=found.monthly_average_fen,
        rule_months=f"{found.rule_months.normalize():f}",
        minimum_fen=found.minimum_fen,
        rule=found.rule,
        proposed_fen=found.proposed_fen,
        current_advance_fen=found.current_advance_fen,
        propose_time=timestamp_message(found.propose_time),
        applied=found.applied_fen is not None,
        applied_fen=found.applied_fen or 0,
        applied_by=found.applied_by,
        apply_time=timestamp_message(found.apply_time),
        override_reason=found.override_reason,
    )


def alert(found: Alert) -> ledger_pb2.Alert:
    """An alert for the wire."""
    return ledger_pb2.Alert(
        alert_id=found.alert_id,
        kind=_ALERT_KINDS[found.kind],
        level=_ALERT_LEVELS[found.level],
        admdvs=found.admdvs,
        message=found.message,
        raise_time=timestamp_message(found.raise_time),
        active=found.active,
    )


def run(found: Run) -> statement_pb2.ClearingRun:
    """A clearing run for the wire."""
    return statement_pb2.ClearingRun(
        run_id=found.run_id,
        period=found.period,
        state=JOB_STATES[found.state],
        entries_counted=found.entries_counted,
        statement_ids=found.statement_ids,
        failure_reason=found.failure_reason,
        start_time=timestamp_message(found.start_time),
        end_time=timestamp_message(found.end_time),
    )


def _line(line: Line) -> statement_pb2.StatementLine:
    return statement_pb2.StatementLine(
        insured_admdvs=line.insured_admdvs,
        treatment_admdvs=line.treatment_admdvs,
        settlement_count=line.settlement_count,
        medfee_sumamt_fen=line.medfee_sumamt_fen,
        fund_pay_sumamt_fen=line.fund_pay_sumamt_fen,
        adjustment=line.adjustment,
        adjustment_note=line.adjustment_note,
    )


def statement(found: Statement) -> statement_pb2.Statement:
    """A statement for the wire."""
    return statement_pb2.Statement(
        statement_id=found.statement_id,
        period=found.period,
        admdvs=found.admdvs,
        state=_STATEMENT_STATES[found.state],
        lines=[_line(line) for line in found.lines],
        payable_fen=found.payable_fen,
        receivable_fen=found.receivable_fen,
        net_fen=found.net_fen,
        issue_time=timestamp_message(found.issue_time),
        confirm_by=date_message(found.confirm_by),
        confirm_time=timestamp_message(found.confirm_time),
        transfer_by=date_message(found.transfer_by),
        transfers=[
            statement_pb2.Transfer(
                amount_fen=moved.amount_fen,
                bank_reference=moved.bank_reference,
                transfer_time=timestamp_message(moved.transfer_time),
            )
            for moved in found.transfers
        ],
        confirmed_by=found.confirmed_by,
        dispute_reason=found.dispute.reason if found.dispute else "",
        disputed_by=found.dispute.disputed_by if found.dispute else "",
        dispute_time=timestamp_message(found.dispute.dispute_time) if found.dispute else None,
    )


def calendar(found: ClearingCalendar) -> statement_pb2.ClearingCalendar:
    """The calendar for the wire."""
    return statement_pb2.ClearingCalendar(
        issue_day=found.issue_day,
        confirmation_days=found.confirmation_days,
        transfer_deadline_day=found.transfer_deadline_day,
        yellow_threshold=_ratio(found.yellow_ratio),
        red_threshold=_ratio(found.red_ratio),
    )


def _ratio(value: Decimal) -> str:
    """``0.70``: two decimals at least, more only when configured so."""
    return f"{value:.2f}" if value == value.quantize(Decimal("0.01")) else f"{value.normalize():f}"


def ledger_response(found: Ledger) -> api.GetLedgerResponse:
    """GetLedger's answer."""
    return api.GetLedgerResponse(
        accounts=[
            ledger_pb2.LedgerAccount(
                admdvs=account.admdvs, kind=_ACCOUNT_KINDS[account.kind], balance_fen=account.balance_fen
            )
            for account in found.accounts
        ],
        total_fen=found.total_fen,
        balanced=found.balanced,
    )


def ledger_entry(found: Entry) -> ledger_pb2.LedgerEntry:
    """A ledger entry for the wire."""
    return ledger_pb2.LedgerEntry(
        entry_id=found.entry_id,
        source_id=found.source_id,
        description=found.description,
        postings=[
            ledger_pb2.LedgerPosting(
                admdvs=posting.admdvs, kind=_ACCOUNT_KINDS[posting.kind], amount_fen=posting.amount_fen
            )
            for posting in found.postings
        ],
        post_time=timestamp_message(found.post_time),
    )
