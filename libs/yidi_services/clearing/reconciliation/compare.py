"""The three-way comparison itself: what the treatment node, the national journal and the insured node recorded.

Pure: given each side's records keyed by msgid, it says which msgids belong to the run,
what differs for each, and the run's report lines. The rules, per msgid:

- the **treatment** record is the truth (the patient was told "settled"); when it is
  present, a cross-province one the journal lacks is MISSING_AT_NATIONAL (an in-province
  settlement is never journalled, by design); amounts that differ from the journal's or
  the insured node's are AMOUNT_DIFFERS; for a settlement (a reversing record has no
  insured counterpart of its own) an insured node that lacks it, or voided it while the
  treatment node did not reverse it, is MISSING_AT_INSURED, and one that still holds what
  the treatment node reversed is REVERSAL_MISMATCH;
- with **no treatment record**, a journal entry is MISSING_AT_TREATMENT, and so is an
  insured application still in force — unless it is a hold younger than the hold timeout,
  whose treatment record is on its way (in flight, skipped). An application the insured
  node voided itself (expired or reverted) is consistent with a settlement that failed;
- whatever the other sides hold, an insured application still **held** longer than the
  stale-hold age is also STALE_HOLD: its insured node has asked its treatment node what
  became of it, and had no answer for that long.

A msgid belongs to the run when its first-known record (treatment, else journal, else
insured) falls on one of the run's China calendar days; records are read over a wider
window so that a record just across midnight still finds its counterparts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from yidi.settlement.v1 import insured_settlement_service_pb2 as settlement_api
from yidi_core.codes import NATIONAL_REGION
from yidi_runtime.wire import CHINA_STANDARD_TIME, china_day

SettlementRecord = settlement_api.SettlementRecord


class Kind(StrEnum):
    """What differs between the sides for one msgid."""

    MISSING_AT_NATIONAL = "missing_at_national"
    MISSING_AT_INSURED = "missing_at_insured"
    MISSING_AT_TREATMENT = "missing_at_treatment"
    AMOUNT_DIFFERS = "amount_differs"
    REVERSAL_MISMATCH = "reversal_mismatch"
    STALE_HOLD = "stale_hold"


@dataclass(frozen=True)
class Period:
    """The run's China calendar days, first to last inclusive."""

    start: date
    end: date

    @property
    def start_time(self) -> datetime:
        """Midnight in China at the start of the first day."""
        return datetime.combine(self.start, time(0), CHINA_STANDARD_TIME).astimezone(UTC)

    @property
    def end_time(self) -> datetime:
        """Midnight in China after the last day."""
        return datetime.combine(self.end + timedelta(days=1), time(0), CHINA_STANDARD_TIME).astimezone(UTC)

    def widened(self, margin: timedelta) -> tuple[datetime, datetime]:
        """The range records are read over: the days and ``margin`` either side."""
        return self.start_time - margin, self.end_time + margin

    def holds(self, moment: datetime) -> bool:
        """Whether ``moment`` falls on one of the days."""
        return self.start <= china_day(moment) <= self.end


@dataclass(frozen=True, slots=True)
class Seen:
    """One side's record of a settlement and the node that listed it ("" for the journal)."""

    record: SettlementRecord
    node: str = ""

    @property
    def moment(self) -> datetime:
        """When this side recorded it."""
        return self.record.record_time.ToDatetime(tzinfo=UTC)

    @property
    def amounts(self) -> tuple[int, int, int, int]:
        """Total, fund, account and cash, in fen."""
        record = self.record
        return (
            record.medfee_sumamt_fen,
            record.fund_pay_sumamt_fen,
            record.acct_pay_fen,
            record.psn_cash_pay_fen,
        )

    @property
    def is_reversal(self) -> bool:
        """A reversing record (it names the settlement it undoes); it has no insured counterpart."""
        return bool(self.record.reverses_msgid)


@dataclass(frozen=True, slots=True)
class Sides:
    """What each side recorded for one msgid."""

    treatment: Seen | None = None
    national: Seen | None = None
    insured: Seen | None = None

    @property
    def anchor(self) -> Seen:
        """The record that decides the msgid's day, provinces and insurance type."""
        first = self.treatment or self.national or self.insured
        assert first is not None, "a msgid is compared only when some side recorded it"
        return first


def province(region: str) -> str:
    """The province of a region code ("" when the code names none)."""
    return region[:2] + "0000" if len(region) == 6 and region != NATIONAL_REGION else ""


def _kinds_with_treatment(sides: Sides) -> list[Kind]:
    treatment, national, insured = sides.treatment, sides.national, sides.insured
    assert treatment is not None
    record = treatment.record
    kinds = []
    if national is None and province(record.insuplc_admdvs) != province(record.mdtrtarea_admvs):
        kinds.append(Kind.MISSING_AT_NATIONAL)
    counterparts = [national] + ([] if treatment.is_reversal else [insured])
    if any(other is not None and other.amounts != treatment.amounts for other in counterparts):
        return [*kinds, Kind.AMOUNT_DIFFERS]
    if treatment.is_reversal:
        return kinds
    if insured is None or (insured.record.reversed and not record.reversed):
        kinds.append(Kind.MISSING_AT_INSURED)
    elif record.reversed and not insured.record.reversed:
        kinds.append(Kind.REVERSAL_MISMATCH)
    return kinds


def kinds_of(sides: Sides, in_flight_since: datetime, stale_since: datetime) -> list[Kind] | None:
    """What differs for one settlement; None when it is in flight (a young hold) and not compared now."""
    kinds = _kinds(sides, in_flight_since)
    insured = sides.insured
    if (
        kinds is not None
        and insured is not None
        and insured.record.hold_state == settlement_api.HOLD_STATE_HELD
        and insured.moment <= stale_since
    ):
        return [*kinds, Kind.STALE_HOLD]
    return kinds


def _kinds(sides: Sides, in_flight_since: datetime) -> list[Kind] | None:
    if sides.treatment is not None:
        return _kinds_with_treatment(sides)
    if sides.national is not None:
        return [Kind.MISSING_AT_TREATMENT]
    insured = sides.insured
    if insured is None or insured.record.reversed:
        return []
    young = insured.moment > in_flight_since
    if insured.record.hold_state == settlement_api.HOLD_STATE_HELD and young:
        return None
    return [Kind.MISSING_AT_TREATMENT]


@dataclass(frozen=True, slots=True)
class LineKey:
    """A report line: one day, one (insured province, treatment province) pair, one insurance type."""

    day: date
    insured_province: str
    treatment_province: str
    insutype: str


@dataclass
class LineSums:
    """Per side: settlements net of reversals, total fees and fund payments; and the discrepancies found.

    Net as 3201 counts: a reversing record takes one from the count (its amounts are
    negative already), and the insured side, which holds no reversing records, leaves out
    what it voided — so a settlement reversed within the run counts for nothing on any side.
    """

    counts: list[int] = field(default_factory=lambda: [0, 0, 0])
    medfee_fen: list[int] = field(default_factory=lambda: [0, 0, 0])
    fund_fen: list[int] = field(default_factory=lambda: [0, 0, 0])
    discrepancy_count: int = 0

    def add(self, sides: Sides) -> None:
        """Count each side's record."""
        for index, seen in enumerate((sides.treatment, sides.national, sides.insured)):
            if seen is not None and not (index == 2 and seen.record.reversed):
                self.counts[index] += -1 if seen.is_reversal else 1
                self.medfee_fen[index] += seen.record.medfee_sumamt_fen
                self.fund_fen[index] += seen.record.fund_pay_sumamt_fen


@dataclass(frozen=True)
class Found:
    """A msgid that differs: what differs, each side's record, where it is reported."""

    msgid: str
    kinds: tuple[Kind, ...]
    sides: Sides
    line: LineKey


@dataclass(frozen=True)
class Comparison:
    """A run's outcome: how many msgids were compared, those that differ, the report lines."""

    compared: int
    found: list[Found]
    lines: dict[LineKey, LineSums]


def line_of(sides: Sides) -> LineKey:
    """Where a msgid is reported (its anchor record's day, provinces and insurance type)."""
    record = sides.anchor.record
    return LineKey(
        china_day(sides.anchor.moment),
        province(record.insuplc_admdvs),
        province(record.mdtrtarea_admvs),
        record.insutype,
    )


def compare(
    records: Mapping[str, Sides],
    period: Period,
    admdvs: str,
    in_flight_since: datetime,
    stale_since: datetime,
) -> Comparison:
    """Compare every msgid of the period (of province ``admdvs`` as either side, when given)."""
    compared = 0
    found: list[Found] = []
    lines: dict[LineKey, LineSums] = defaultdict(LineSums)
    for msgid in sorted(records):
        sides = records[msgid]
        if not period.holds(sides.anchor.moment):
            continue
        line = line_of(sides)
        if admdvs and admdvs not in (line.insured_province, line.treatment_province):
            continue
        kinds = kinds_of(sides, in_flight_since, stale_since)
        if kinds is None:
            continue
        compared += 1
        sums = lines[line]
        sums.add(sides)
        if kinds:
            sums.discrepancy_count += len(kinds)
            found.append(Found(msgid, tuple(kinds), sides, line))
    return Comparison(compared, found, dict(lines))
