"""Institution reconciliation against the national journal: totals (3201 对总账) and details (3202 对明细账).

The journal holds every cross-province settlement and reversal, so an institution checks
its cross-province settlements against it (in-province ones are the province's business).
Days are China calendar days of ``setl_time``. A reversal counts with its amounts negated
and takes one from the count, so a settlement reversed within the range counts for
nothing, as in the institution's own net totals.

Totals are grouped as 3201 groups them: insurance type, clearing type and the settlement
agency (``setl_optins``): the treatment-place agency whose region holds the institution's
settlements. Details are matched by ``setl_id``; an institution may send a refund row
(``refd_setl_flag``) with its amounts positive or negative, it is compared negated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi_core.codes import check_institution, check_region
from yidi_core.dictionaries import NATIONAL
from yidi_core.errors import DomainError, combine, invalid
from yidi_runtime.regions import below
from yidi_services.clearing.journal import Kind as EntryKind
from yidi_services.clearing.models import JournalEntryRecord
from yidi_services.clearing.reconciliation.compare import Period
from yidi_services.clearing.reconciliation.convert import checked_days

MAX_DAYS = 366
MAX_ROWS = 10_000
_TOTALS = ("medfee_sumamt_fen", "fund_pay_sumamt_fen", "acct_pay_fen")
_COMPARED = ("mdtrt_id", "psn_no", *_TOTALS, "refd_setl_flag")
"""Fields of a detail row compared; an institution row that leaves mdtrt_id or psn_no empty is not checked on them."""


def _checked(*checks: object) -> list[DomainError]:
    problems = []
    for check in checks:
        try:
            check()  # type: ignore[operator]
        except DomainError as error:
            problems.append(error)
    return problems


def _raise_any(problems: Sequence[DomainError]) -> None:
    error = combine(list(problems))
    if error is not None:
        raise error


def _in_range(period: Period) -> tuple[object, object]:
    return JournalEntryRecord.setl_time >= period.start_time, JournalEntryRecord.setl_time < period.end_time


def check_totals(
    session: Session, request: api.CheckInstitutionTotalsRequest
) -> api.CheckInstitutionTotalsResponse:
    """3201: the journal's totals for the institution, group and days, against the institution's."""
    group = request.group
    problems = _checked(
        lambda: check_institution(request.fixmedins_code),
        lambda: NATIONAL.check("insutype", group.insutype, "group.insutype"),
        lambda: NATIONAL.check("clr_type", group.clr_type, "group.clr_type"),
        lambda: check_region(group.setl_optins, "group.setl_optins"),
    )
    if request.fixmedins_setl_cnt < 0:
        problems.append(invalid("INVALID_ARGUMENT", "fixmedins_setl_cnt", "must not be negative"))
    _raise_any(problems)
    period = checked_days(request.start_date, request.end_date, MAX_DAYS, end_required=True)
    entry = JournalEntryRecord
    rows = session.execute(
        select(
            entry.kind,
            func.count(),
            func.coalesce(func.sum(entry.medfee_sumamt_fen), 0),
            func.coalesce(func.sum(entry.fund_pay_sumamt_fen), 0),
            func.coalesce(func.sum(entry.acct_pay_fen), 0),
        )
        .where(
            entry.fixmedins_code == request.fixmedins_code.strip(),
            entry.insutype == group.insutype.strip(),
            entry.clr_type == group.clr_type.strip(),
            below(entry.mdtrtarea_admvs, group.setl_optins.strip()),
            *_in_range(period),
        )
        .group_by(entry.kind)
    ).all()
    node = {"setl_cnt": 0, **dict.fromkeys(_TOTALS, 0)}
    for kind, count, *sums in rows:
        node["setl_cnt"] += -count if kind == EntryKind.REVERSAL.value else count
        for name, fen in zip(_TOTALS, sums, strict=True):
            node[name] += int(fen)
    theirs = {"setl_cnt": request.fixmedins_setl_cnt, **{name: getattr(request, name) for name in _TOTALS}}
    differing = [
        f"{name}: node {node[name]}, institution {theirs[name]}"
        for name in ("setl_cnt", *_TOTALS)
        if node[name] != theirs[name]
    ]
    return api.CheckInstitutionTotalsResponse(
        balanced=not differing,
        description="balanced" if not differing else "differs: " + "; ".join(differing),
        **node,
    )


@dataclass(frozen=True)
class _NodeRow:
    row: api.InstitutionDetailRow
    msgid: str


def _node_rows(session: Session, fixmedins_code: str, period: Period) -> dict[str, _NodeRow]:
    entries = session.scalars(
        select(JournalEntryRecord)
        .where(JournalEntryRecord.fixmedins_code == fixmedins_code, *_in_range(period))
        .order_by(JournalEntryRecord.seq)
    )
    return {
        entry.setl_id: _NodeRow(
            api.InstitutionDetailRow(
                setl_id=entry.setl_id,
                mdtrt_id=entry.mdtrt_id,
                psn_no=entry.psn_no,
                medfee_sumamt_fen=entry.medfee_sumamt_fen,
                fund_pay_sumamt_fen=entry.fund_pay_sumamt_fen,
                acct_pay_fen=entry.acct_pay_fen,
                refd_setl_flag=entry.kind == EntryKind.REVERSAL.value,
            ),
            entry.msgid,
        )
        for entry in entries
    }


def _institution_rows(rows: Sequence[api.InstitutionDetailRow]) -> dict[str, api.InstitutionDetailRow]:
    """The institution's rows by setl_id, refunds negated; a missing or repeated setl_id is refused."""
    if len(rows) > MAX_ROWS:
        raise invalid("INVALID_ARGUMENT", "rows", f"at most {MAX_ROWS} rows, got {len(rows)}")
    found: dict[str, api.InstitutionDetailRow] = {}
    problems = []
    for index, given in enumerate(rows):
        setl_id = given.setl_id.strip()
        if not setl_id:
            problems.append(invalid("INVALID_ARGUMENT", f"rows[{index}].setl_id", "is required"))
        elif setl_id in found:
            problems.append(invalid("INVALID_ARGUMENT", f"rows[{index}].setl_id", f"{setl_id} appears twice"))
        row = api.InstitutionDetailRow()
        row.CopyFrom(given)
        row.setl_id = setl_id
        if row.refd_setl_flag:
            for name in _TOTALS:
                setattr(row, name, -abs(getattr(row, name)))
        found[setl_id] = row
    _raise_any(problems)
    return found


def _memo(node: api.InstitutionDetailRow, theirs: api.InstitutionDetailRow) -> str:
    differing = [
        f"{name}: node {getattr(node, name)}, institution {getattr(theirs, name)}"
        for name in _COMPARED
        if getattr(node, name) != getattr(theirs, name)
        and (name in (*_TOTALS, "refd_setl_flag") or getattr(theirs, name))
    ]
    return "; ".join(differing)


def check_details(
    session: Session, request: api.CheckInstitutionDetailsRequest
) -> api.CheckInstitutionDetailsResponse:
    """3202: which settlements differ between the journal and the institution's rows, with the msgid to correct."""
    fixmedins_code = check_institution(request.fixmedins_code)
    period = checked_days(request.start_date, request.end_date, MAX_DAYS, end_required=True)
    theirs = _institution_rows(request.rows)
    ours = _node_rows(session, fixmedins_code, period)
    mismatches = []
    for setl_id, node in ours.items():
        given = theirs.get(setl_id)
        if given is None:
            mismatches.append(
                api.DetailMismatch(
                    node_row=node.row, msgid=node.msgid, memo="the institution's rows lack this settlement"
                )
            )
            continue
        memo = _memo(node.row, given)
        if memo:
            mismatches.append(
                api.DetailMismatch(node_row=node.row, institution_row=given, msgid=node.msgid, memo=memo)
            )
    mismatches += [
        api.DetailMismatch(
            institution_row=given, memo="the national journal holds no such settlement in these days"
        )
        for setl_id, given in theirs.items()
        if setl_id not in ours
    ]
    return api.CheckInstitutionDetailsResponse(balanced=not mismatches, mismatches=mismatches)
