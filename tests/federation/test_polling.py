"""The one polling helper tests and the harness wait with (:mod:`yidi_harness.polling`)."""

from __future__ import annotations

import itertools

import pytest

from yidi_harness.polling import TimedOut, eventually


def test_it_returns_the_first_truthy_value_and_retries_failed_assertions() -> None:
    calls = itertools.count(1)

    def check() -> list[int]:
        call = next(calls)
        assert call >= 2, "not yet"
        return list(range(call - 2))  # [] on the second call: not yet either

    assert eventually(check, within_s=5, interval_s=0, what="a non-empty list") == [0]


def test_it_names_what_it_waited_for_and_what_the_check_last_saw() -> None:
    with pytest.raises(TimedOut, match=r"waiting until the answer \(the check last returned 0\)"):
        eventually(lambda: 0, within_s=0.05, interval_s=0.01, what="the answer")

    def failing() -> bool:
        raise AssertionError("still 3 rows")

    with pytest.raises(AssertionError, match="last raised AssertionError\\('still 3 rows'\\)"):
        eventually(failing, within_s=0, what="the rows are gone")


def test_any_other_exception_ends_the_wait_at_once() -> None:
    calls = itertools.count()

    def broken() -> bool:
        next(calls)
        raise RuntimeError("the node exited")

    with pytest.raises(RuntimeError, match="exited"):
        eventually(broken, within_s=5, what="the node serves")
    assert next(calls) == 1  # called once, not retried


def test_the_exceptions_that_mean_not_yet_can_be_named() -> None:
    def unparsed() -> int:
        return int("not yet a number")

    with pytest.raises(TimedOut, match="ValueError"):
        eventually(unparsed, within_s=0, what="it parses", retrying=(ValueError,))
