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

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yidi_runtime.regions import below
from yidi_services.clearing.journal import Kind as EntryKind
from yidi_services.clearing.models import JournalEntryRecord
from yidi_services.clearing.reconciliation.commands import (
    CheckInstitutionDetails,
    CheckInstitutionTotals,
    DetailRow,
)
from yidi_services.clearing.reconciliation.compare import Period

_TOTALS = ("medfee_sumamt_fen", "fund_pay_sumamt_fen", "acct_pay_fen")
_COMPARED = ("mdtrt_id", "psn_no", *_TOTALS, "refd_setl_flag")
"""Fields of a detail row compared; an institution row that leaves mdtrt_id or psn_no empty is not checked on them."""


@dataclass(frozen=True, slots=True)
class TotalsCheck:
    """3201's outcome: the journal's totals, and whether the institution's equal them (the difference said)."""

    balanced: bool
    description: str
    setl_cnt: int
    medfee_sumamt_fen: int
    fund_pay_sumamt_fen: int
    acct_pay_fen: int


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A settlement that differs: the journal's row and the institution's (None where one lacks it)."""

    node_row: DetailRow | None
    institution_row: DetailRow | None
    msgid: str
    memo: str


@dataclass(frozen=True, slots=True)
class DetailsCheck:
    """3202's outcome: every settlement that differs."""

    mismatches: tuple[Mismatch, ...]

    @property
    def balanced(self) -> bool:
        """Nothing differs."""
        return not self.mismatches


def _in_range(period: Period) -> tuple[object, object]:
    return JournalEntryRecord.setl_time >= period.start_time, JournalEntryRecord.setl_time < period.end_time


def check_totals(session: Session, query: CheckInstitutionTotals) -> TotalsCheck:
    """3201: the journal's totals for the institution, group and days, against the institution's."""
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
            entry.fixmedins_code == query.fixmedins_code,
            entry.insutype == query.insutype,
            entry.clr_type == query.clr_type,
            below(entry.mdtrtarea_admvs, query.setl_optins),
            *_in_range(query.days),
        )
        .group_by(entry.kind)
    ).all()
    node = {"setl_cnt": 0, **dict.fromkeys(_TOTALS, 0)}
    for kind, count, *sums in rows:
        node["setl_cnt"] += -count if kind == EntryKind.REVERSAL.value else count
        for name, fen in zip(_TOTALS, sums, strict=True):
            node[name] += int(fen)
    differing = [
        f"{name}: node {node[name]}, institution {getattr(query, name)}"
        for name in ("setl_cnt", *_TOTALS)
        if node[name] != getattr(query, name)
    ]
    return TotalsCheck(
        balanced=not differing,
        description="balanced" if not differing else "differs: " + "; ".join(differing),
        **node,
    )


@dataclass(frozen=True)
class _NodeRow:
    row: DetailRow
    msgid: str


def _node_rows(session: Session, fixmedins_code: str, period: Period) -> dict[str, _NodeRow]:
    entries = session.scalars(
        select(JournalEntryRecord)
        .where(JournalEntryRecord.fixmedins_code == fixmedins_code, *_in_range(period))
        .order_by(JournalEntryRecord.seq)
    )
    return {
        entry.setl_id: _NodeRow(
            DetailRow(
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


def _memo(node: DetailRow, theirs: DetailRow) -> str:
    differing = [
        f"{name}: node {getattr(node, name)}, institution {getattr(theirs, name)}"
        for name in _COMPARED
        if getattr(node, name) != getattr(theirs, name)
        and (name in (*_TOTALS, "refd_setl_flag") or getattr(theirs, name))
    ]
    return "; ".join(differing)


def check_details(session: Session, query: CheckInstitutionDetails) -> DetailsCheck:
    """3202: which settlements differ between the journal and the institution's rows, with the msgid to correct."""
    theirs = {row.setl_id: row for row in query.rows}
    ours = _node_rows(session, query.fixmedins_code, query.days)
    mismatches = []
    for setl_id, node in ours.items():
        given = theirs.get(setl_id)
        if given is None:
            mismatches.append(
                Mismatch(node.row, None, node.msgid, "the institution's rows lack this settlement")
            )
            continue
        memo = _memo(node.row, given)
        if memo:
            mismatches.append(Mismatch(node.row, given, node.msgid, memo))
    mismatches += [
        Mismatch(None, given, "", "the national journal holds no such settlement in these days")
        for setl_id, given in theirs.items()
        if setl_id not in ours
    ]
    return DetailsCheck(tuple(mismatches))
