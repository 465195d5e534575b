"""Advances (预付金): what each insured province prepays to the national pool for a year, and its usage.

*Used* is the fund payments for the province's insured, settled in that year (China time),
that no clearing has counted yet: the pool's exposure to the province until the month is
cleared. It is summed from the journal over a partial index of uncleared entries, never
kept in a balance row that every settlement would update. Usage crossing the yellow or red
line raises an alert (see :mod:`~yidi_services.clearing.watch`); settlement itself is never
refused for lack of advance — the journal does not even look.

SetAdvance sets the year's amount (a change posts only the difference to the ledger);
TopUpAdvance (紧急调增) adds to it and needs an advance to exist for that year.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yidi_core.errors import DomainError
from yidi_core.money import format_money, from_fen
from yidi_services.clearing import ledger
from yidi_services.clearing.alerts import AlertLevel
from yidi_services.clearing.calendar import ClearingCalendar
from yidi_services.clearing.models import AdvanceRecord, JournalEntryRecord
from yidi_services.clearing.periods import year_range

RATIO_PLACES = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class AdvanceStatus:
    """A province's advance for a year, its usage and the alert level that usage reaches."""

    admdvs: str
    year: int
    advance_fen: int
    used_fen: int
    level: AlertLevel

    @property
    def usage_ratio(self) -> Decimal:
        """used / advance to 4 decimals (half up)."""
        return (Decimal(self.used_fen) / Decimal(self.advance_fen)).quantize(RATIO_PLACES, ROUND_HALF_UP)


def level_of(used_fen: int, advance_fen: int, calendar: ClearingCalendar) -> AlertLevel:
    """The alert level of a usage, compared exactly (no rounding at the thresholds)."""
    if used_fen >= calendar.red_ratio * advance_fen:
        return AlertLevel.RED
    if used_fen >= calendar.yellow_ratio * advance_fen:
        return AlertLevel.YELLOW
    return AlertLevel.NONE


def used_fen(session: Session, admdvs: str, year: int) -> int:
    """Fund payments for the province's insured settled in ``year`` and not yet cleared."""
    start, end = year_range(year)
    journal = JournalEntryRecord
    total = session.scalar(
        select(func.coalesce(func.sum(journal.fund_pay_sumamt_fen), 0)).where(
            journal.cleared_period.is_(None),
            journal.insured_province == admdvs,
            journal.setl_time >= start,
            journal.setl_time < end,
        )
    )
    return int(total or 0)


def status(session: Session, admdvs: str, year: int, calendar: ClearingCalendar) -> AdvanceStatus:
    """The province's advance status now (NOT_FOUND when no advance was set for the year)."""
    record = session.get(AdvanceRecord, (admdvs, year))
    if record is None:
        raise DomainError(
            "NOT_FOUND",
            f"no advance is set for province {admdvs} in {year}",
            metadata={"admdvs": admdvs, "year": str(year)},
        )
    return status_of(session, record, calendar)


def status_of(session: Session, record: AdvanceRecord, calendar: ClearingCalendar) -> AdvanceStatus:
    """The status of a loaded advance row."""
    advance = record.set_fen + record.topped_up_fen
    used = used_fen(session, record.admdvs, record.year)
    return AdvanceStatus(record.admdvs, record.year, advance, used, level_of(used, advance, calendar))


def every_advance(session: Session, provinces: set[str] | None = None) -> list[AdvanceRecord]:
    """Every advance row (of some provinces), for the alert evaluation."""
    statement = select(AdvanceRecord).order_by(AdvanceRecord.admdvs, AdvanceRecord.year)
    if provinces is not None:
        statement = statement.where(AdvanceRecord.admdvs.in_(sorted(provinces)))
    return list(session.scalars(statement))


def _yuan(fen: int) -> str:
    return format_money(from_fen(fen))


def set_advance(
    session: Session, request_id: str, admdvs: str, year: int, amount_fen: int, now: datetime
) -> None:
    """Set the year's advance; the ledger receives the difference from what was set before."""
    record = session.scalars(
        select(AdvanceRecord)
        .where(AdvanceRecord.admdvs == admdvs, AdvanceRecord.year == year)
        .with_for_update()
    ).one_or_none()
    before = 0 if record is None else record.set_fen
    if record is None:
        session.add(
            AdvanceRecord(admdvs=admdvs, year=year, set_fen=amount_fen, topped_up_fen=0, update_time=now)
        )
    else:
        record.set_fen, record.update_time = amount_fen, now
    ledger.post(
        session,
        request_id,
        f"advance of {admdvs} for {year} set to {_yuan(amount_fen)} yuan (was {_yuan(before)})",
        ledger.advance(admdvs, amount_fen - before),
        now,
    )
    session.flush()


def top_up(
    session: Session, request_id: str, admdvs: str, year: int, amount_fen: int, reason: str, now: datetime
) -> None:
    """Add an emergency top-up (紧急调增) to the year's advance (NOT_FOUND when none is set)."""
    record = session.scalars(
        select(AdvanceRecord)
        .where(AdvanceRecord.admdvs == admdvs, AdvanceRecord.year == year)
        .with_for_update()
    ).one_or_none()
    if record is None:
        raise DomainError(
            "NOT_FOUND",
            f"no advance is set for province {admdvs} in {year}: set one before topping it up",
            metadata={"admdvs": admdvs, "year": str(year)},
        )
    record.topped_up_fen += amount_fen
    record.update_time = now
    why = f": {reason}" if reason else ""
    ledger.post(
        session,
        request_id,
        f"emergency top-up of {admdvs}'s {year} advance by {_yuan(amount_fen)} yuan{why}",
        ledger.advance(admdvs, amount_fen),
        now,
    )
    session.flush()
