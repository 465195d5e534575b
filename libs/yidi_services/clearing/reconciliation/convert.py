"""Proto ↔ values for reconciliation: requests become commands (:mod:`~.commands`), every field checked
on the way; runs, discrepancies, report lines and the institution checks' outcomes go out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import reconciliation_pb2
from yidi.settlement.v1 import insured_settlement_service_pb2 as settlement_api
from yidi_codec.fields import Violations
from yidi_core.codes import check_institution, check_region, province_of
from yidi_core.dictionaries import NATIONAL
from yidi_core.errors import invalid
from yidi_runtime.paging import page_size
from yidi_runtime.settlement_keys import split_key
from yidi_runtime.wire import date_message, day_of, required_day, timestamp_message
from yidi_services.clearing.jobs import JOB_STATES, RunState
from yidi_services.clearing.reconciliation import commands, snapshots
from yidi_services.clearing.reconciliation.compare import Kind, Period
from yidi_services.clearing.reconciliation.institutions import DetailsCheck, TotalsCheck
from yidi_services.clearing.reconciliation.models import DiscrepancyRow, ReconciliationRunRow, ReportLineRow
from yidi_services.clearing.reconciliation.repair import MAX_REPAIR_IDS

MAX_DAYS = 31
"""Days one run may compare: a month at most, so a run's records fit the node's memory."""
MAX_CHECK_DAYS = 366
"""Days an institution check may cover."""
MAX_ROWS = 10_000
"""Rows one 3202 check may send."""
_TOTALS = ("medfee_sumamt_fen", "fund_pay_sumamt_fen", "acct_pay_fen")
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


def _run_id(value: str) -> str:
    run_id = value.strip()
    if not run_id:
        raise invalid("INVALID_ARGUMENT", "run_id", "is required")
    return run_id


def _request_id(value: str) -> None:
    if not value.strip():
        raise invalid("INVALID_ARGUMENT", "request_id", "is required on every mutating request")


def reconcile(request: api.ReconcileRequest) -> commands.Reconcile:
    """Reconcile's command: its days and optional province, checked."""
    _request_id(request.request_id)
    days = checked_days(request.start_date, request.end_date, MAX_DAYS, end_required=False)
    return commands.Reconcile(request.request_id, days, province_filter(request.admdvs))


def get_reconciliation_run(request: api.GetReconciliationRunRequest) -> commands.GetReconciliationRun:
    """GetReconciliationRun's query."""
    return commands.GetReconciliationRun(_run_id(request.run_id))


def list_discrepancies(request: api.ListDiscrepanciesRequest) -> commands.ListDiscrepancies:
    """ListDiscrepancies' query."""
    size = page_size(request.page_size)
    return commands.ListDiscrepancies(request.run_id.strip(), request.open_only, size, request.page_token)


def list_reconciliation_lines(
    request: api.ListReconciliationLinesRequest,
) -> commands.ListReconciliationLines:
    """ListReconciliationLines' query."""
    run_id = _run_id(request.run_id)
    return commands.ListReconciliationLines(run_id, page_size(request.page_size), request.page_token)


def repair_discrepancies(request: api.RepairDiscrepanciesRequest) -> commands.RepairDiscrepancies:
    """RepairDiscrepancies' command: the discrepancy ids named (deduplicated, in order) and the run; one of the
    two is required."""
    _request_id(request.request_id)
    ids = tuple(dict.fromkeys(value.strip() for value in request.discrepancy_ids))
    if "" in ids:
        raise invalid("INVALID_ARGUMENT", "discrepancy_ids", "must not contain an empty id")
    if len(ids) > MAX_REPAIR_IDS:
        raise invalid("INVALID_ARGUMENT", "discrepancy_ids", f"at most {MAX_REPAIR_IDS} ids per request")
    run_id = request.run_id.strip()
    if not ids and not run_id:
        raise invalid("INVALID_ARGUMENT", "run_id", "name the run, or the discrepancies in discrepancy_ids")
    return commands.RepairDiscrepancies(request.request_id, ids, run_id)


def check_institution_totals(request: api.CheckInstitutionTotalsRequest) -> commands.CheckInstitutionTotals:
    """CheckInstitutionTotals' query: the institution and its group (every bad field at once), then the days."""
    group = request.group
    violations = Violations()
    violations.check(lambda: check_institution(request.fixmedins_code))
    violations.check(lambda: NATIONAL.check("insutype", group.insutype, "group.insutype"))
    violations.check(lambda: NATIONAL.check("clr_type", group.clr_type, "group.clr_type"))
    violations.check(lambda: check_region(group.setl_optins, "group.setl_optins"))
    if request.fixmedins_setl_cnt < 0:
        violations.add(invalid("INVALID_ARGUMENT", "fixmedins_setl_cnt", "must not be negative"))
    violations.raise_any()
    return commands.CheckInstitutionTotals(
        fixmedins_code=request.fixmedins_code.strip(),
        insutype=group.insutype.strip(),
        clr_type=group.clr_type.strip(),
        setl_optins=group.setl_optins.strip(),
        days=checked_days(request.start_date, request.end_date, MAX_CHECK_DAYS, end_required=True),
        setl_cnt=request.fixmedins_setl_cnt,
        medfee_sumamt_fen=request.medfee_sumamt_fen,
        fund_pay_sumamt_fen=request.fund_pay_sumamt_fen,
        acct_pay_fen=request.acct_pay_fen,
    )


def _institution_rows(rows: Sequence[api.InstitutionDetailRow]) -> tuple[commands.DetailRow, ...]:
    """The institution's rows, refunds negated; a missing or repeated setl_id is refused."""
    if len(rows) > MAX_ROWS:
        raise invalid("INVALID_ARGUMENT", "rows", f"at most {MAX_ROWS} rows, got {len(rows)}")
    violations = Violations()
    seen: set[str] = set()
    for index, given in enumerate(rows):
        setl_id = given.setl_id.strip()
        if not setl_id:
            violations.add(invalid("INVALID_ARGUMENT", f"rows[{index}].setl_id", "is required"))
        elif setl_id in seen:
            violations.add(invalid("INVALID_ARGUMENT", f"rows[{index}].setl_id", f"{setl_id} appears twice"))
        seen.add(setl_id)
    violations.raise_any()
    return tuple(
        commands.DetailRow(
            setl_id=given.setl_id.strip(),
            mdtrt_id=given.mdtrt_id,
            psn_no=given.psn_no,
            refd_setl_flag=given.refd_setl_flag,
            **{
                name: -abs(getattr(given, name)) if given.refd_setl_flag else getattr(given, name)
                for name in _TOTALS
            },
        )
        for given in rows
    )


def check_institution_details(
    request: api.CheckInstitutionDetailsRequest,
) -> commands.CheckInstitutionDetails:
    """CheckInstitutionDetails' query: the institution, the days, then the rows."""
    fixmedins_code = check_institution(request.fixmedins_code)
    days = checked_days(request.start_date, request.end_date, MAX_CHECK_DAYS, end_required=True)
    return commands.CheckInstitutionDetails(fixmedins_code, days, _institution_rows(request.rows))


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


def side_record(snapshot: dict[str, Any] | None) -> reconciliation_pb2.SideRecord:
    """What one side recorded, as a discrepancy shows it (``present`` false when it lacks the record)."""
    if snapshot is None:
        return reconciliation_pb2.SideRecord(present=False)
    record = snapshots.record(snapshot)
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
        treatment=side_record(row.treatment_snapshot),
        national=side_record(row.national_snapshot),
        insured=side_record(row.insured_snapshot),
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


def _detail_row(row: commands.DetailRow | None) -> api.InstitutionDetailRow | None:
    return None if row is None else api.InstitutionDetailRow(**dataclasses.asdict(row))


def totals_response(found: TotalsCheck) -> api.CheckInstitutionTotalsResponse:
    """CheckInstitutionTotals' answer."""
    return api.CheckInstitutionTotalsResponse(**dataclasses.asdict(found))


def details_response(found: DetailsCheck) -> api.CheckInstitutionDetailsResponse:
    """CheckInstitutionDetails' answer."""
    return api.CheckInstitutionDetailsResponse(
        balanced=found.balanced,
        mismatches=[
            api.DetailMismatch(
                node_row=_detail_row(mismatch.node_row),
                institution_row=_detail_row(mismatch.institution_row),
                msgid=mismatch.msgid,
                memo=mismatch.memo,
            )
            for mismatch in found.mismatches
        ],
    )
