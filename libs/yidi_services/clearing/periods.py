"""Clearing periods: calendar months in China time (``yyyy-MM``), as half-open UTC ranges of ``setl_time``.

A settlement made at 23:30 in Beijing on 31 May belongs to May even though it is 15:30 UTC;
the journal stores UTC moments, so a period is the UTC range between two Chinese midnights.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from yidi_core.errors import invalid
from yidi_runtime.wire import CHINA_STANDARD_TIME, as_utc

_PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


@dataclass(frozen=True, order=True, slots=True)
class Period:
    """One clearing month."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str, field: str = "period") -> Period:
        """``2026-05`` → Period; anything else is INVALID_ARGUMENT naming ``field``."""
        matched = _PERIOD.fullmatch(text.strip())
        if matched is None or int(matched.group(1)) < 2000:
            raise invalid("INVALID_ARGUMENT", field, f"must be a month yyyy-MM from 2000 on, got {text!r}")
        return cls(int(matched.group(1)), int(matched.group(2)))

    @classmethod
    def of(cls, moment: datetime) -> Period:
        """The period a moment falls in (China time)."""
        local = as_utc(moment).astimezone(CHINA_STANDARD_TIME)
        return cls(local.year, local.month)

    @classmethod
    def of_day(cls, day: date) -> Period:
        """The period a calendar day falls in."""
        return cls(day.year, day.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> date:
        """The first calendar day of the month."""
        return date(self.year, self.month, 1)

    def next(self) -> Period:
        """The following month."""
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Period:
        """The month before."""
        return Period(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    @property
    def start(self) -> datetime:
        """First moment of the month (China midnight) in UTC."""
        return midnight(self.first_day)

    @property
    def end(self) -> datetime:
        """First moment after the month, in UTC."""
        return self.next().start


def midnight(day: date) -> datetime:
    """The UTC moment a calendar day starts in China."""
    return datetime(day.year, day.month, day.day, tzinfo=CHINA_STANDARD_TIME).astimezone(UTC)


def year_range(year: int) -> tuple[datetime, datetime]:
    """The UTC range of a calendar year in China time."""
    return midnight(date(year, 1, 1)), midnight(date(year + 1, 1, 1))
