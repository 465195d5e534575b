"""Waiting for something that happens in the background: one bounded polling helper.

Tests and the harness wait with :func:`eventually` rather than by sleeping: it returns as
soon as the check holds, and fails naming what it waited for, and what the check last saw,
when it does not hold in time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class TimedOut(AssertionError):
    """What :func:`eventually` waited for did not happen in time."""


def eventually(
    check: Callable[[], T],
    *,
    within_s: float,
    what: str,
    interval_s: float = 0.05,
    retrying: tuple[type[Exception], ...] = (AssertionError,),
) -> T:
    """Call ``check`` every ``interval_s`` until it returns a truthy value; return that value.

    A check that raises one of ``retrying`` (a failed assertion, by default) has not held
    yet; any other exception propagates at once. The check is called at least once, and
    once more at the end of ``within_s``; then :class:`TimedOut` names ``what`` and the
    check's last value or exception.
    """
    deadline = time.monotonic() + within_s
    while True:
        try:
            value = check()
        except retrying as error:
            last = f"last raised {error!r}"
        else:
            if value:
                return value
            last = f"last returned {value!r}"
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimedOut(f"timed out after {within_s:g} s waiting until {what} (the check {last})")
        time.sleep(min(interval_s, left))
