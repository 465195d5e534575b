"""Working days (工作日) of an insured region: weekends and holidays off, 调休 weekends on.

Review deadlines and complete-later deadlines are counted in working days, so a Friday
application with a 3-working-day deadline is due on Wednesday, not Monday.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class WorkingCalendar:
    """Holidays excluded from working days and weekend days worked instead (调休)."""

    holidays: frozenset[date] = frozenset()
    working_weekends: frozenset[date] = frozenset()

    def is_working_day(self, day: date) -> bool:
        """Monday to Friday unless a holiday; Saturday and Sunday only when listed as worked."""
        if day in self.working_weekends:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add(self, start: date, working_days: int) -> date:
        """The ``working_days``-th working day after ``start`` (``start`` itself when 0)."""
        day = start
        for _ in range(working_days):
            day += _ONE_DAY
            while not self.is_working_day(day):
                day += _ONE_DAY
        return day

    def between(self, today: date, deadline: date) -> int:
        """Working days left from ``today`` until ``deadline``: negative once it has passed."""
        low, high, sign = (today, deadline, 1) if deadline >= today else (deadline, today, -1)
        count = 0
        day = low
        while day < high:
            day += _ONE_DAY
            count += self.is_working_day(day)
        return sign * count
