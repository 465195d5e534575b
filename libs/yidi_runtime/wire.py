"""Dates and times on the wire: ``google.type.Date`` / ``Timestamp`` ↔ Python, and the service day.

Business days in this domain (review deadlines, validity, service dates) are calendar days
in China; servicers take an injected clock so tests can set "today" and handlers never read
the wall clock themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.type.date_pb2 import Date

from yidi_core.errors import invalid

CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")

Clock = Callable[[], datetime]
"""Returns the current moment as an aware datetime."""

CLOCK_TOLERANCE = timedelta(minutes=5)
"""How far past this node's clock a time a HIS sends may lie: the HIS's clock may run a little fast."""


def wall_clock() -> datetime:
    """The real clock (UTC); servicers default to it, tests pass their own."""
    return datetime.now(UTC)


def china_day(moment: datetime) -> date:
    """The calendar day in China at ``moment``."""
    return moment.astimezone(CHINA_STANDARD_TIME).date()


def as_utc(moment: datetime) -> datetime:
    """A stored moment as aware UTC (SQLite hands datetimes back without their zone)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def day_of(message: Date, field: str, *, required: bool = False) -> date | None:
    """A ``google.type.Date`` as a date; unset is None (or refused when required), an impossible date refused."""
    if (message.year, message.month, message.day) == (0, 0, 0):
        if required:
            raise invalid("INVALID_ARGUMENT", field, "is required")
        return None
    try:
        return date(message.year, message.month, message.day)
    except ValueError:
        raise invalid(
            "INVALID_ARGUMENT",
            field,
            f"{message.year:04d}-{message.month:02d}-{message.day:02d} is not a date",
        ) from None


def required_day(message: Date, field: str) -> date:
    """A date the request must carry (INVALID_ARGUMENT naming ``field`` when unset or impossible)."""
    day = day_of(message, field, required=True)
    if day is None:
        raise invalid("INVALID_ARGUMENT", field, "is required")
    return day


def moment_of(message: Message, field: str) -> datetime | None:
    """A set ``Timestamp`` field as aware UTC, None when unset; one outside Timestamp's range refused."""
    if not message.HasField(field):
        return None
    return stamp_moment(getattr(message, field), field)


def stamp_moment(stamp: Timestamp, field: str) -> datetime:
    """A wire timestamp as aware UTC; one outside Timestamp's range is refused naming ``field``."""
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise invalid("INVALID_ARGUMENT", field, "is not a representable time") from None


def ensure_not_future(value: date | None, now: datetime, field: str) -> None:
    """Refuse a time, or a calendar day, that has not come yet, naming ``field`` (None passes).

    A time may lie up to :data:`CLOCK_TOLERANCE` past ``now``; a day may be at most China's
    calendar day at that moment (a service date after today is refused).
    """
    if value is None:
        return
    latest = now + CLOCK_TOLERANCE
    if isinstance(value, datetime):
        if value > latest:
            raise invalid(
                "INVALID_ARGUMENT",
                field,
                f"{as_utc(value).isoformat()} has not come yet (it is {as_utc(now).isoformat()})",
            )
    elif value > china_day(latest):
        raise invalid(
            "INVALID_ARGUMENT", field, f"{value.isoformat()} is after today ({china_day(now)} in China)"
        )


def date_message(day: date | None) -> Date | None:
    """A date for the wire (None leaves the field unset)."""
    return None if day is None else Date(year=day.year, month=day.month, day=day.day)


def timestamp_message(moment: datetime | None) -> Timestamp | None:
    """A moment for the wire (None leaves the field unset)."""
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(as_utc(moment))
    return stamp
