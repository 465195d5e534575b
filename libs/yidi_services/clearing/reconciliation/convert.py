"""Proto ↔ values for reconciliation: requests checked at the edge; runs, discrepancies, report lines out."""

from __future__ import annotations

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import reconciliation_pb2
from yidi.settlement.v1 import insured_settlement_service_pb2 as settlement_api
from yidi_codec.fields import Violations
from yidi_core.codes import check_region, province_of
from yidi_core.errors import invalid
from yidi_runtime.settlement_keys import split_key
from yidi_runtime.wire import date_message, day_of, required_day, timestamp_message
from yidi_services.clearing.jobs import JOB_STATES, RunState
from yidi_services.clearing.reconciliation.compare import Kind, Period, SettlementRecord
from yidi_services.clearing.reconciliation.models import DiscrepancyRow, ReconciliationRunRow, ReportLineRow

MAX_DAYS = 31
"""Days one run may compare: a month at most, so a run's records fit the node's memory."""
MAX_REPAIR_IDS = 1_000
_KINDS = {
    Kind.MISSING_AT_NATIONAL: reconciliation_pb2.DISCREPANCY_KIND_MISSING_AT_NATIONAL,
    Kind.MISSING_AT_INSURED: reconciliation_pb2.DISCREPANCY_KIND_MISSING_AT_INSURED,
    Kind.MISSING_AT_TREATMENT: reconciliation_pb2.DISCREPANCY_KIND_MISSING_AT_TREATMENT,
    Kind.AMOUNT_DIFFERS: reconciliation_pb2.DISCREPANCY_KIND_AMOUNT_DIFFERS,
    Kind.REVERSAL_MISMATCH: reconciliation_pb2.DISCREPANCY_KIND_REVERSAL_MISMATCH,
    Kind.STALE_HOLD: reconciliation_pb2.DISCREPANCY_KIND_STALE_HOLD,
}


def province_filter(value: str, field: str = "admdvs") -> str:
    """An optional province code (PP0000); "" for every province."""
    if not value:
        return ""
    code = check_region(value, field)
    if province_of(code, field) != code:
        raise invalid("INVALID_CODE", field, f"must be a province (PP0000), got {code}")
    return code


def checked_days(start: object, end: object, max_days: int, *, end_required: bool) -> Period:
    """A range of days from ``start_date`` to ``end_date``, in order and at most ``max_days`` long."""
    violations = Violations()
    first = violations.check(lambda: required_day(start, "start_date"))  # type: ignore[arg-type]
    last = violations.check(lambda: day_of(end, "end_date", required=end_required))  # type: ignore[arg-type]
    violations.raise_any()
    assert first is not None
    last = last or first
    if last < first:
        raise invalid("INVALID_ARGUMENT", "end_date", "must not be before start_date")
    if (last - first).days >= max_days:
        raise invalid("INVALID_ARGUMENT", "end_date", f"a range covers at most {max_days} days")
    return Period(first, last)


def reconcile_query(request: api.ReconcileRequest) -> tuple[Period, str]:
    """Reconcile's days and optional province, checked."""
    if not request.request_id.strip():
        raise invalid("INVALID_ARGUMENT", "request_id", "is required on every mutating request")
    period = checked_days(request.start_date, request.end_date, MAX_DAYS, end_required=False)
    return period, province_filter(request.admdvs)


def run_message(row: ReconciliationRunRow) -> reconciliation_pb2.ReconciliationRun:
    """A run for the wire."""
    return reconciliation_pb2.ReconciliationRun(
        run_id=row.run_id,
        start_date=date_message(row.start_date),
        end_date=date_message(row.end_date),
        admdvs=row.admdvs,
        state=JOB_STATES[RunState(row.state)],
        compared_count=row.compared_count,
        discrepancy_count=row.discrepancy_count,
        start_time=timestamp_message(row.started_at),
        end_time=timestamp_message(row.finished_at),
        failure_reason=row.failure_reason,
    )


def side_record(data: bytes | None) -> reconciliation_pb2.SideRecord:
    """What one side recorded, as a discrepancy shows it (``present`` false when it lacks the record)."""
    if data is None:
        return reconciliation_pb2.SideRecord(present=False)
    record = SettlementRecord.FromString(data)
    return reconciliation_pb2.SideRecord(
        present=True,
        fund_pay_sumamt_fen=record.fund_pay_sumamt_fen,
        medfee_sumamt_fen=record.medfee_sumamt_fen,
        reversed=record.reversed,
        acct_pay_fen=record.acct_pay_fen,
        psn_cash_pay_fen=record.psn_cash_pay_fen,
        setl_id=record.setl_id,
        record_time=record.record_time if record.HasField("record_time") else None,
        confirmed=record.hold_state == settlement_api.HOLD_STATE_CONFIRMED,
    )


def discrepancy_message(row: DiscrepancyRow) -> reconciliation_pb2.Discrepancy:
    """A discrepancy for the wire, its three sides side by side."""
    fixmedins_code, msgid = split_key(row.msgid)
    return reconciliation_pb2.Discrepancy(
        discrepancy_id=row.discrepancy_id,
        run_id=row.run_id,
        kind=_KINDS[Kind(row.kind)],
        msgid=msgid,
        fixmedins_code=fixmedins_code,
        setl_id=row.setl_id,
        treatment=side_record(row.treatment_record),
        national=side_record(row.national_record),
        insured=side_record(row.insured_record),
        repaired=row.repaired,
        repair_note=row.repair_note,
        day=date_message(row.day),
        insured_province=row.insured_province,
        treatment_province=row.treatment_province,
        insutype=row.insutype,
        repair_time=timestamp_message(row.repaired_at),
    )


def line_message(row: ReportLineRow) -> reconciliation_pb2.ReconciliationLine:
    """A report line for the wire, each side's totals side by side."""
    return reconciliation_pb2.ReconciliationLine(
        day=date_message(row.day),
        insured_province=row.insured_province,
        treatment_province=row.treatment_province,
        insutype=row.insutype,
        treatment=reconciliation_pb2.SideTotals(
            count=row.treatment_count,
            medfee_sumamt_fen=row.treatment_medfee_fen,
            fund_pay_sumamt_fen=row.treatment_fund_fen,
        ),
        national=reconciliation_pb2.SideTotals(
            count=row.national_count,
            medfee_sumamt_fen=row.national_medfee_fen,
            fund_pay_sumamt_fen=row.national_fund_fen,
        ),
        insured=reconciliation_pb2.SideTotals(
            count=row.insured_count,
            medfee_sumamt_fen=row.insured_medfee_fen,
            fund_pay_sumamt_fen=row.insured_fund_fen,
        ),
        discrepancy_count=row.discrepancy_count,
    )


def repair_targets(request: api.RepairDiscrepanciesRequest) -> tuple[list[str], str]:
    """The discrepancy ids named (deduplicated, in order) and the run; one of the two is required."""
    if not request.request_id.strip():
        raise invalid("INVALID_ARGUMENT", "request_id", "is required on every mutating request")
    ids = list(dict.fromkeys(value.strip() for value in request.discrepancy_ids))
    if "" in ids:
        raise invalid("INVALID_ARGUMENT", "discrepancy_ids", "must not contain an empty id")
    if len(ids) > MAX_REPAIR_IDS:
        raise invalid("INVALID_ARGUMENT", "discrepancy_ids", f"at most {MAX_REPAIR_IDS} ids per request")
    run_id = request.run_id.strip()
    if not ids and not run_id:
        raise invalid("INVALID_ARGUMENT", "run_id", "name the run, or the discrepancies in discrepancy_ids")
    return ids, run_id
