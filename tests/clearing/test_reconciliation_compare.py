"""The comparison rules on plain records: which kind each difference is, which msgids a run owns."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from yidi.settlement.v1 import insured_settlement_service_pb2 as settlement_api
from yidi_runtime.wire import timestamp_message
from yidi_services.clearing.reconciliation.compare import Kind, Period, Seen, Sides, compare, kinds_of

NOON = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
"""Noon of 2 March 2026 in China."""
LONG_AGO = NOON - timedelta(days=1)
STALE = NOON - timedelta(days=3)
STALE_SINCE = NOON - timedelta(days=2)
HELD, CONFIRMED, VOIDED = (
    settlement_api.HOLD_STATE_HELD,
    settlement_api.HOLD_STATE_CONFIRMED,
    settlement_api.HOLD_STATE_VOIDED,
)


def seen(
    *,
    fund: int = 4889,
    cash: int = 1540,
    insured: str = "630000",
    treatment: str = "330402",
    at: datetime = NOON,
    reversed_: bool = False,
    hold: int = 0,
    reverses: str = "",
) -> Seen:
    record = settlement_api.SettlementRecord(
        msgid="M",
        reverses_msgid=reverses,
        setl_id="330400000000000000000000000001",
        insuplc_admdvs=insured,
        mdtrtarea_admvs=treatment,
        insutype="390",
        medfee_sumamt_fen=fund + cash,
        fund_pay_sumamt_fen=fund,
        psn_cash_pay_fen=cash,
        record_time=timestamp_message(at),
        reversed=reversed_,
        hold_state=hold,
    )
    return Seen(record, "330400")


@pytest.mark.parametrize(
    ("sides", "kinds"),
    [
        (Sides(seen(), seen(), seen(hold=CONFIRMED)), []),
        (Sides(seen(), None, seen(hold=CONFIRMED)), [Kind.MISSING_AT_NATIONAL]),
        (Sides(seen(treatment="630102"), None, seen(hold=CONFIRMED)), []),
        (Sides(seen(), seen(), None), [Kind.MISSING_AT_INSURED]),
        (Sides(seen(), seen(), seen(hold=VOIDED, reversed_=True)), [Kind.MISSING_AT_INSURED]),
        (Sides(seen(), None, None), [Kind.MISSING_AT_NATIONAL, Kind.MISSING_AT_INSURED]),
        (Sides(seen(reversed_=True), seen(), seen(hold=CONFIRMED)), [Kind.REVERSAL_MISMATCH]),
        (Sides(seen(reversed_=True), seen(), seen(hold=VOIDED, reversed_=True)), []),
        (Sides(seen(), seen(fund=4800, cash=1629), seen(hold=CONFIRMED)), [Kind.AMOUNT_DIFFERS]),
        (Sides(seen(), seen(), seen(fund=1, cash=6428, hold=CONFIRMED)), [Kind.AMOUNT_DIFFERS]),
        (
            Sides(
                seen(fund=-4889, cash=-1540, reverses="O"), seen(fund=-4889, cash=-1540, reverses="O"), None
            ),
            [],
        ),
        (Sides(seen(fund=-4889, cash=-1540, reverses="O"), None, None), [Kind.MISSING_AT_NATIONAL]),
        (Sides(None, seen(), None), [Kind.MISSING_AT_TREATMENT]),
        (Sides(None, None, seen(hold=CONFIRMED)), [Kind.MISSING_AT_TREATMENT]),
        (Sides(None, None, seen(hold=HELD, at=LONG_AGO)), [Kind.MISSING_AT_TREATMENT]),
        (Sides(None, None, seen(hold=HELD, at=STALE)), [Kind.MISSING_AT_TREATMENT, Kind.STALE_HOLD]),
        (Sides(seen(), seen(), seen(hold=HELD, at=STALE)), [Kind.STALE_HOLD]),
        (Sides(seen(), seen(), seen(hold=HELD, at=LONG_AGO)), []),
        (Sides(None, None, seen(hold=VOIDED, reversed_=True)), []),
        (Sides(None, None, seen(hold=HELD)), None),
    ],
)
def test_each_difference_is_classified_by_its_rule(sides: Sides, kinds: list[Kind] | None) -> None:
    """A hold older than the hold timeout is compared; one older than the stale-hold age is also STALE_HOLD."""
    assert kinds_of(sides, NOON - timedelta(minutes=5), stale_since=STALE_SINCE) == kinds


def test_a_run_owns_the_msgids_whose_first_record_falls_on_its_days_and_reports_them_per_pair() -> None:
    before_midnight = datetime(2026, 3, 1, 15, 59, 59, tzinfo=UTC)
    records = {
        "today": Sides(seen(), None, seen(hold=CONFIRMED)),
        "applied before midnight, settled after": Sides(
            seen(at=before_midnight + timedelta(seconds=2)),
            seen(at=before_midnight + timedelta(seconds=2)),
            seen(at=before_midnight, hold=CONFIRMED),
        ),
        "yesterday": Sides(seen(at=before_midnight), seen(at=before_midnight), None),
        "hebei": Sides(
            seen(insured="131000", treatment="130105"), None, seen(insured="131000", hold=CONFIRMED)
        ),
    }
    everything = compare(records, Period(date(2026, 3, 2), date(2026, 3, 2)), "", NOON, STALE_SINCE)
    assert everything.compared == 3
    assert [(found.msgid, found.kinds) for found in everything.found] == [
        ("today", (Kind.MISSING_AT_NATIONAL,))
    ]
    pairs = {(key.insured_province, key.treatment_province): sums for key, sums in everything.lines.items()}
    assert pairs[("630000", "330000")].counts == [2, 1, 2]
    assert pairs[("630000", "330000")].discrepancy_count == 1
    assert pairs[("130000", "130000")].fund_fen == [4889, 0, 4889]
    only_zhejiang = compare(records, Period(date(2026, 3, 2), date(2026, 3, 2)), "330000", NOON, STALE_SINCE)
    assert only_zhejiang.compared == 2


def test_report_lines_count_settlements_net_of_reversals_on_every_side() -> None:
    records = {
        "kept": Sides(seen(), seen(), seen(hold=CONFIRMED)),
        "refunded": Sides(seen(reversed_=True), seen(reversed_=True), seen(hold=VOIDED, reversed_=True)),
        "refund": Sides(
            seen(fund=-4889, cash=-1540, reverses="refunded"),
            seen(fund=-4889, cash=-1540, reverses="refunded"),
            None,
        ),
    }
    comparison = compare(records, Period(date(2026, 3, 2), date(2026, 3, 2)), "", NOON, STALE_SINCE)
    assert (comparison.compared, comparison.found) == (3, [])
    [sums] = comparison.lines.values()
    assert (sums.counts, sums.medfee_fen, sums.fund_fen) == ([1, 1, 1], [6429] * 3, [4889] * 3)
