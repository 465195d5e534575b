"""The clearing calendar (configuration ``[clearing]``): when statements are due, confirmed and paid.

Statements for a month are issued on ``issue_day`` of the next month; a province has
``confirmation_days`` calendar days to confirm, and the money moves by the first
``transfer_deadline_day`` on or after the confirmation deadline. A run made before the
issue day does not shorten a province's time: deadlines count from the later of the
two days. Advance-usage thresholds live here too, since GetClearingCalendar reports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from yidi_runtime.config import NodeSettings
from yidi_services.clearing.periods import Period


@dataclass(frozen=True, slots=True)
class Deadlines:
    """When a statement must be confirmed and its money moved (both days inclusive)."""

    confirm_by: date
    transfer_by: date


@dataclass(frozen=True, slots=True)
class ClearingCalendar:
    """The calendar and alert thresholds in force."""

    issue_day: int
    confirmation_days: int
    transfer_deadline_day: int
    yellow_ratio: Decimal
    red_ratio: Decimal

    @classmethod
    def of(cls, settings: NodeSettings) -> ClearingCalendar:
        """The node's configured calendar (validated by the configuration loader)."""
        return cls(
            settings.clearing_issue_day,
            settings.clearing_confirmation_days,
            settings.clearing_transfer_deadline_day,
            settings.clearing_advance_yellow_ratio,
            settings.clearing_advance_red_ratio,
        )

    def issue_date(self, period: Period) -> date:
        """The day the calendar issues ``period``'s statements."""
        following = period.next()
        return date(following.year, following.month, self.issue_day)

    def deadlines(self, period: Period, issued_on: date) -> Deadlines:
        """Deadlines of statements for ``period`` issued on ``issued_on``."""
        confirm_by = max(issued_on, self.issue_date(period)) + timedelta(days=self.confirmation_days)
        month = Period.of_day(confirm_by)
        transfer_by = date(month.year, month.month, self.transfer_deadline_day)
        if transfer_by < confirm_by:
            following = month.next()
            transfer_by = date(following.year, following.month, self.transfer_deadline_day)
        return Deadlines(confirm_by, transfer_by)
