"""Placement decisions: payment location, clearing type, national journal, audit flag."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yidi_core.codes import NATIONAL_REGION
from yidi_core.dictionaries import NATIONAL
from yidi_core.errors import DomainError
from yidi_core.money import from_fen
from yidi_core.placement import (
    AUDIT_THRESHOLD_FEN,
    CROSS_PROVINCE,
    IN_PROVINCE,
    INPATIENT,
    OUTPATIENT,
    PHARMACY,
    audit_flagged,
    clr_type,
    is_inpatient,
    journaled_nationally,
    pay_loc,
)

# A few provinces, so that the two regions of a draw often share one.
regions = st.tuples(st.sampled_from(["11", "33", "44", "63"]), st.from_regex(r"[0-9]{4}", fullmatch=True))
clr_types = st.sampled_from(NATIONAL.codes("clr_type"))
locations = st.sampled_from([IN_PROVINCE, CROSS_PROVINCE])


@given(regions, regions)
def test_pay_loc_is_cross_province_exactly_when_the_provinces_differ(
    insured: tuple[str, str], treatment: tuple[str, str]
) -> None:
    expected = CROSS_PROVINCE if insured[0] != treatment[0] else IN_PROVINCE
    assert pay_loc("".join(insured), "".join(treatment)) == expected


def test_pay_loc_codes() -> None:
    assert pay_loc("630100", "330100") == "4"
    assert pay_loc("330200", "330100") == "3"
    assert pay_loc("330100", "330100") == "3"  # the same city too: never 4 within a province


@pytest.mark.parametrize(("insured", "treatment"), [(NATIONAL_REGION, "330100"), ("330100", "33010")])
def test_pay_loc_refuses_the_national_node_and_a_malformed_region(insured: str, treatment: str) -> None:
    with pytest.raises(DomainError) as caught:
        pay_loc(insured, treatment)
    assert caught.value.reason_code == "INVALID_CODE"


@pytest.mark.parametrize(
    ("med_type", "expected"),
    [
        ("11", "11"),
        ("12", "11"),
        ("13", "11"),
        ("14", "11"),
        ("21", "21"),
        ("22", "21"),
        ("24", "21"),
        ("2901", "21"),  # a local inpatient extension
        ("41", "41"),
        ("9901", "11"),  # a local non-inpatient extension
    ],
)
def test_clr_type_of_each_med_type(med_type: str, expected: str) -> None:
    assert clr_type(med_type) == expected


def test_every_national_med_type_clears_under_a_national_clr_type() -> None:
    cleared = {clr_type(med_type) for med_type in NATIONAL.codes("med_type")}
    assert cleared == {OUTPATIENT, INPATIENT, PHARMACY} <= set(NATIONAL.codes("clr_type"))


@given(st.text(max_size=6))
def test_clr_type_is_inpatient_exactly_for_inpatient_med_types(med_type: str) -> None:
    assert clr_type(med_type) in {OUTPATIENT, INPATIENT, PHARMACY}
    assert (clr_type(med_type) == INPATIENT) == is_inpatient(med_type) == med_type.startswith("2")


def test_only_cross_province_settlements_go_to_the_national_journal() -> None:
    assert journaled_nationally(CROSS_PROVINCE)
    assert not journaled_nationally(IN_PROVINCE)
    assert not journaled_nationally("")


def test_audit_threshold_is_30000_yuan() -> None:
    assert from_fen(AUDIT_THRESHOLD_FEN) == Decimal("30000.00")


def test_audit_flag_starts_at_the_threshold() -> None:
    assert audit_flagged(INPATIENT, CROSS_PROVINCE, AUDIT_THRESHOLD_FEN)
    assert not audit_flagged(INPATIENT, CROSS_PROVINCE, AUDIT_THRESHOLD_FEN - 1)


@given(clr_types, locations, st.integers(-10 * AUDIT_THRESHOLD_FEN, 10 * AUDIT_THRESHOLD_FEN))
def test_audit_flag_only_for_large_cross_province_inpatient_bills(
    clearing: str, location: str, fen: int
) -> None:
    expected = clearing == "21" and location == "4" and fen >= AUDIT_THRESHOLD_FEN
    assert audit_flagged(clearing, location, fen) == expected


@given(clr_types, locations, st.integers(0, 10 * AUDIT_THRESHOLD_FEN), st.integers(0, AUDIT_THRESHOLD_FEN))
def test_a_larger_bill_stays_flagged(clearing: str, location: str, fen: int, more: int) -> None:
    assert audit_flagged(clearing, location, fen) <= audit_flagged(clearing, location, fen + more)
