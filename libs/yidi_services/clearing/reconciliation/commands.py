"""What each reconciliation call asks, as plain values: the servicer's reading of a request, a handler's input.

One frozen dataclass per RPC, named after it (a read's is its query), built and checked by
:mod:`~.convert`, so :class:`~.handlers.Reconciliation` never sees a proto request.
"""

from __future__ import annotations

from dataclasses import dataclass

from yidi_services.clearing.reconciliation.compare import Period


@dataclass(frozen=True, slots=True)
class Reconcile:
    """Compare the three sides over some China calendar days, for one province or all ("")."""

    request_id: str
    days: Period
    admdvs: str


@dataclass(frozen=True, slots=True)
class GetReconciliationRun:
    """One run."""

    run_id: str


@dataclass(frozen=True, slots=True)
class ListDiscrepancies:
    """A page of discrepancies: of one run ("" for all), or only those still open."""

    run_id: str
    open_only: bool
    page_size: int
    page_token: str


@dataclass(frozen=True, slots=True)
class ListReconciliationLines:
    """A page of one run's report lines."""

    run_id: str
    page_size: int
    page_token: str


@dataclass(frozen=True, slots=True)
class RepairDiscrepancies:
    """Repair the discrepancies named (in order, no repeats), or else the open ones of a run."""

    request_id: str
    discrepancy_ids: tuple[str, ...]
    run_id: str


@dataclass(frozen=True, slots=True)
class CheckInstitutionTotals:
    """3201 对总账: an institution's totals for one group (insurance type, clearing type, settlement agency)."""

    fixmedins_code: str
    insutype: str
    clr_type: str
    setl_optins: str
    days: Period
    setl_cnt: int
    medfee_sumamt_fen: int
    fund_pay_sumamt_fen: int
    acct_pay_fen: int


@dataclass(frozen=True, slots=True)
class DetailRow:
    """One settlement as 3202 compares it; an institution's refund row with its amounts negated."""

    setl_id: str
    mdtrt_id: str
    psn_no: str
    medfee_sumamt_fen: int
    fund_pay_sumamt_fen: int
    acct_pay_fen: int
    refd_setl_flag: bool


@dataclass(frozen=True, slots=True)
class CheckInstitutionDetails:
    """3202 对明细账: an institution's settlements over some days, each ``setl_id`` once."""

    fixmedins_code: str
    days: Period
    rows: tuple[DetailRow, ...]
