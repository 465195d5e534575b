"""Settling in two halves equals settling at once.

The treatment node classifies a bill with its catalogue (``classify_bill``) and the insured
node applies its policy to the classified lines (``settle_classified``); for every bill the
two halves must give exactly what ``settle`` gives in one call, refusals included. The
scenarios are test_properties.py's strategies.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import event, given, settings
from test_properties import Scenario, scenarios

from yidi_core.errors import DomainError
from yidi_core.settlement import Settlement, classify_bill, settle_classified


def _outcome(settle: Callable[[], Settlement]) -> Settlement | str:
    """The settlement, or the reason it was refused."""
    try:
        return settle()
    except DomainError as refusal:
        return refusal.reason_code


@settings(max_examples=300, deadline=None)
@given(scenarios(catch_all=False))
def test_classify_then_settle_classified_equals_settle(sc: Scenario) -> None:
    whole = _outcome(sc.settle)
    halves = _outcome(
        lambda: settle_classified(
            sc.visit, sc.person, sc.policy, classify_bill(sc.visit, sc.catalogue, sc.items), sc.accumulators
        )
    )
    event("refused" if isinstance(whole, str) else "settled")
    assert halves == whole
