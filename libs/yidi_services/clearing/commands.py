"""What each ClearingService call asks, as plain values: the servicer's reading of a request, a handler's input.

One frozen dataclass per RPC, named after it (a read's is its query). The servicer builds
it from the request (:mod:`~.convert` for the journal, :mod:`~.messages` for the rest),
checking every field on the way, so the handlers never see a proto request. A mutating
call's ``request_id`` is its key in the request log; the ledger names it as the source of
the entries it posts. The reconciliation calls have their own
(:mod:`~.reconciliation.commands`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from yidi_services.clearing.clawbacks import Clawback
from yidi_services.clearing.journal import Entry
from yidi_services.clearing.periods import Period
from yidi_services.clearing.statements import StatementState


@dataclass(frozen=True, slots=True)
class AppendJournalEntries:
    """A delivered batch: the sending node and its entries, each checked and its seal verified."""

    request_id: str
    source_admdvs: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class ListJournalEntries:
    """A page of the journal: a province (either side; "" for all) and a half-open ``setl_time`` range."""

    province: str
    start_time: datetime | None
    end_time: datetime | None
    page_size: int
    page_token: str


@dataclass(frozen=True, slots=True)
class SetAdvance:
    """The year's advance of a province, in fen."""

    request_id: str
    admdvs: str
    year: int
    amount_fen: int


@dataclass(frozen=True, slots=True)
class TopUpAdvance:
    """An emergency top-up (紧急调增) of a province's advance, and why."""

    request_id: str
    admdvs: str
    year: int
    amount_fen: int
    reason: str


@dataclass(frozen=True, slots=True)
class GetAdvanceStatus:
    """A province's advance for a year."""

    admdvs: str
    year: int


@dataclass(frozen=True, slots=True)
class ProposeAdvances:
    """Propose every province's advance for a year from the year before."""

    request_id: str
    year: int


@dataclass(frozen=True, slots=True)
class GetAdvanceProposal:
    """A province's advance proposal for a year."""

    year: int
    admdvs: str


@dataclass(frozen=True, slots=True)
class ListAdvanceProposals:
    """A page of a year's advance proposals: of one province, or "" for every one the caller may see."""

    year: int
    admdvs: str
    page_size: int
    page_token: str


@dataclass(frozen=True, slots=True)
class ApplyAdvanceProposal:
    """Apply a province's proposal: as proposed (``amount_fen`` None), or another amount and why."""

    request_id: str
    year: int
    admdvs: str
    amount_fen: int | None
    override_reason: str


@dataclass(frozen=True, slots=True)
class ListAlerts:
    """A page of alerts, newest first: of one province or the pool ("" for all), or only the active ones."""

    admdvs: str
    active_only: bool
    page_size: int
    page_token: str


@dataclass(frozen=True, slots=True)
class RunClearing:
    """Clear a period."""

    request_id: str
    period: Period


@dataclass(frozen=True, slots=True)
class GetClearingRun:
    """One clearing run."""

    run_id: str


@dataclass(frozen=True, slots=True)
class ListStatements:
    """A page of statements; "" (None for the state, False for overdue) leaves a filter out."""

    period: str
    admdvs: str
    state: StatementState | None
    confirmation_overdue: bool
    page_size: int
    page_token: str


@dataclass(frozen=True, slots=True)
class GetStatement:
    """One statement."""

    statement_id: str


@dataclass(frozen=True, slots=True)
class ConfirmStatement:
    """A province confirms its statement."""

    request_id: str
    statement_id: str
    confirmed_by: str


@dataclass(frozen=True, slots=True)
class DisputeStatement:
    """A province disputes its statement, and why."""

    request_id: str
    statement_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RecordTransfer:
    """Money moved for a confirmed statement; ``transfer_time`` None when the sender gave none (now, then)."""

    request_id: str
    statement_id: str
    amount_fen: int
    bank_reference: str
    transfer_time: datetime | None


@dataclass(frozen=True, slots=True)
class RecordClawback:
    """What supervision orders clawed back from a journalled settlement."""

    request_id: str
    clawback: Clawback


@dataclass(frozen=True, slots=True)
class GetClearingCalendar:
    """The configured calendar and thresholds: nothing to ask."""


@dataclass(frozen=True, slots=True)
class GetLedger:
    """Balances, of one province's or the pool's accounts ("" for all)."""

    admdvs: str


@dataclass(frozen=True, slots=True)
class ListLedgerEntries:
    """A page of ledger entries, those touching one province's or the pool's accounts ("" for all)."""

    admdvs: str
    page_size: int
    page_token: str
