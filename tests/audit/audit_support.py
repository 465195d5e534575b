"""What the audit tests share besides fixtures: the node they describe and a clock they move."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

NODE, REGION = "zhejiang", "330000"


@dataclass
class Clock:
    """The trail's clock: a fixed moment the test moves forward."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 25, 1, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
