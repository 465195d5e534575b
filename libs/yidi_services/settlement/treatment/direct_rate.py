"""The direct-settlement rate (应结尽结), the national KPI: what became of this node's visits.

A *case* is one of three things:

- **direct**: a visit settled directly;
- **manual**: a self-pay bill uploaded for online manual reimbursement (手工报销), counted
  under the reason the bill gives; a visit the bill names counts through the bill, once;
- **refused**: a visit whose last Settle or PreSettle was refused, that is neither settled nor
  billed, counted under that refusal's reason (a refused visit later cancelled still counts:
  the patient went home without direct settlement).

A visit with no outcome yet (open, never refused) is *pending*, outside the rate. The rate
is direct / cases. A refusal that says the request itself was wrong (a malformed field, a
reused msgid, a visit of another institution) is the HIS's bug, not the patient's outcome,
and is not recorded.

Cases are counted by service date (a stay's discharge day; a bill without one by its upload
day in China), per institution, treatment region and insured region. The same count of the
month so far is exported at every scrape.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import structlog
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from yidi_core.errors import DomainError
from yidi_runtime.db import Database
from yidi_runtime.regions import region_prefix
from yidi_runtime.wire import CHINA_STANDARD_TIME, Clock, china_day
from yidi_services.settlement.treatment.checks import Caller
from yidi_services.settlement.treatment.models import SelfPayBillRow, VisitRow, VisitState

_log = structlog.get_logger(__name__)

DIRECT, REFUSED, MANUAL = "direct", "refused", "manual"

REQUEST_FAULTS = frozenset(
    {
        "INVALID_CODE",
        "INVALID_ARGUMENT",
        "AMOUNT_MISMATCH",
        "DUPLICATE_REQUEST",
        "ALREADY_SETTLED",
        "ALREADY_REVERSED",
        "BILLED_FOR_REIMBURSEMENT",
        "NOT_FOUND",
        "CORRECTED",
        "HOLD_VOIDED",
        "RATE_LIMITED",
        "DATABASE_UNAVAILABLE",
        "PERMISSION_DENIED_REGION",
        "PERMISSION_DENIED_ROLE",
        "UNAUTHENTICATED",
        "SIGNATURE_INVALID",
    }
)
"""Refusals of the request rather than of the patient's direct settlement: never recorded."""

MAX_SPAN_DAYS = 366
_OPEN_STATES = (VisitState.OPEN.value, VisitState.DISCHARGED.value)


@dataclass(frozen=True)
class ReportQuery:
    """Which cases a report covers: service dates (inclusive) and optional filters."""

    start: date
    end: date
    fixmedins_code: str = ""
    insuplc_admdvs: str = ""


@dataclass
class Outcomes:
    """The cases of one institution or region (or all of them, ``key`` empty)."""

    key: str
    direct: int = 0
    refused: int = 0
    manual: int = 0
    pending: int = 0
    reasons: Tally[tuple[str, str]] = field(default_factory=Tally)
    """(outcome, reason) → cases, for the refused and manual ones."""

    @property
    def cases(self) -> int:
        """Cases with an outcome."""
        return self.direct + self.refused + self.manual

    @property
    def rate_bp(self) -> int:
        """Direct cases per 10,000 cases, rounded down; 0 without a case."""
        return self.direct * 10_000 // self.cases if self.cases else 0

    def add(self, outcome: str, reason: str, count: int) -> None:
        if outcome == DIRECT:
            self.direct += count
        elif outcome == "pending":
            self.pending += count
        else:
            setattr(self, outcome, getattr(self, outcome) + count)
            self.reasons[(outcome, reason)] += count


@dataclass(frozen=True)
class Report:
    """A report's total and its breakdowns, each sorted by key."""

    total: Outcomes
    institutions: list[Outcomes]
    treatment_regions: list[Outcomes]
    insured_regions: list[Outcomes]


@dataclass(frozen=True)
class _Group:
    fixmedins_code: str
    treatment: str
    insured: str
    outcome: str
    reason: str
    count: int


def record_refusal(session: Session, caller: Caller, mdtrt_id: str, reason: str, now: datetime) -> bool:
    """Note ``reason`` on the caller's open visit; False when there is none to note it on."""
    result = session.execute(
        update(VisitRow)
        .where(
            VisitRow.mdtrt_id == mdtrt_id.strip(),
            VisitRow.fixmedins_code == caller.fixmedins_code,
            VisitRow.state.in_(_OPEN_STATES),
        )
        .values(refusal_reason=reason, refused_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _visit_outcome(state: str, refusal: str | None, billed: bool) -> tuple[str, str] | None:
    """A visit's (outcome, reason); None when the visit is no case of its own (billed, or cancelled untried)."""
    if state == VisitState.SETTLED:
        return DIRECT, ""
    if billed:
        return None
    if refusal is not None:
        return REFUSED, refusal
    return None if state == VisitState.CANCELLED else ("pending", "")


def _visit_groups(session: Session, query: ReportQuery) -> Iterator[_Group]:
    billed = VisitRow.self_pay_bill_id.is_not(None)
    columns = (
        VisitRow.fixmedins_code,
        VisitRow.mdtrtarea_admvs,
        VisitRow.insuplc_admdvs,
        VisitRow.state,
        VisitRow.refusal_reason,
        billed,
    )
    statement = select(*columns, func.count()).where(VisitRow.service_date.between(query.start, query.end))
    if query.fixmedins_code:
        statement = statement.where(VisitRow.fixmedins_code == query.fixmedins_code)
    if query.insuplc_admdvs:
        statement = statement.where(VisitRow.insuplc_admdvs.startswith(region_prefix(query.insuplc_admdvs)))
    for code, treatment, insured, state, refusal, is_billed, count in session.execute(
        statement.group_by(*columns)
    ):
        outcome = _visit_outcome(state, refusal, bool(is_billed))
        if outcome is not None:
            yield _Group(code, treatment, insured, *outcome, count)


def _bill_groups(session: Session, query: ReportQuery) -> Iterator[_Group]:
    treatment = SelfPayBillRow.details["facts"]["mdtrtarea_admvs"].as_string()
    columns = (
        SelfPayBillRow.fixmedins_code,
        treatment,
        SelfPayBillRow.insuplc_admdvs,
        SelfPayBillRow.direct_settlement_failure_reason,
    )
    first = datetime.combine(query.start, time(), CHINA_STANDARD_TIME)
    after = datetime.combine(query.end + timedelta(days=1), time(), CHINA_STANDARD_TIME)
    statement = select(*columns, func.count()).where(
        or_(
            SelfPayBillRow.service_date.between(query.start, query.end),
            SelfPayBillRow.service_date.is_(None)
            & (SelfPayBillRow.upload_time >= first)
            & (SelfPayBillRow.upload_time < after),
        )
    )
    if query.fixmedins_code:
        statement = statement.where(SelfPayBillRow.fixmedins_code == query.fixmedins_code)
    if query.insuplc_admdvs:
        statement = statement.where(
            SelfPayBillRow.insuplc_admdvs.startswith(region_prefix(query.insuplc_admdvs))
        )
    for code, area, insured, reason, count in session.execute(statement.group_by(*columns)):
        yield _Group(code, area or "", insured, MANUAL, reason or "UNSPECIFIED", count)


def _breakdown(groups: Iterable[_Group], key: Callable[[_Group], str]) -> list[Outcomes]:
    by_key: dict[str, Outcomes] = defaultdict(lambda: Outcomes(""))
    for group in groups:
        outcomes = by_key[key(group)]
        outcomes.key = key(group)
        outcomes.add(group.outcome, group.reason, group.count)
    return [by_key[name] for name in sorted(by_key)]


def report(session: Session, query: ReportQuery) -> Report:
    """Count the cases ``query`` covers."""
    groups = [*_visit_groups(session, query), *_bill_groups(session, query)]
    total = Outcomes("")
    for group in groups:
        total.add(group.outcome, group.reason, group.count)
    return Report(
        total,
        _breakdown(groups, lambda group: group.fixmedins_code),
        _breakdown(groups, lambda group: group.treatment),
        _breakdown(groups, lambda group: group.insured),
    )


class _MonthCollector(Collector):
    """This month's cases (China time) by outcome and reason, and the rate, counted at every scrape."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        today = china_day(self._clock())
        with self._database.unit_of_work() as uow:
            total = report(uow.session, ReportQuery(today.replace(day=1), today)).total
        cases = GaugeMetricFamily(
            "yidi_direct_settlement_cases",
            "This month's cases by outcome (direct, refused, manual, pending) and, for refused and manual, reason.",
            labels=["outcome", "reason"],
        )
        cases.add_metric([DIRECT, ""], total.direct)
        cases.add_metric(["pending", ""], total.pending)
        for (outcome, reason), count in sorted(total.reasons.items()):
            cases.add_metric([outcome, reason], count)
        yield cases
        yield GaugeMetricFamily(
            "yidi_direct_settlement_rate",
            "This month's share of cases settled directly (应结尽结), 0 to 1; 1 with no case yet.",
            value=total.direct / total.cases if total.cases else 1.0,
        )


class DirectRate:
    """Records refusals on their visits and exports the rate on the node's registry."""

    def __init__(self, database: Database, registry: CollectorRegistry, clock: Clock) -> None:
        self._database = database
        self._clock = clock
        self._refusals = Counter(
            "yidi_settlement_refusals",
            "Settle and PreSettle refusals recorded on a visit, by stable reason.",
            ("reason",),
            registry=registry,
        )
        registry.register(_MonthCollector(database, clock))

    @contextmanager
    def refusals_of(self, caller: Caller, mdtrt_id: str) -> Iterator[None]:
        """Run a Settle or PreSettle; a refusal of the patient's direct settlement is noted on the visit."""
        try:
            yield
        except DomainError as refusal:
            if refusal.reason_code not in REQUEST_FAULTS:
                self._record(caller, mdtrt_id, refusal.reason_code)
            raise

    def _record(self, caller: Caller, mdtrt_id: str, reason: str) -> None:
        """Note the refusal; a failure to note it is logged, never put in place of the refusal."""
        try:
            with self._database.unit_of_work(write=True) as uow:
                recorded = record_refusal(uow.session, caller, mdtrt_id, reason, self._clock())
                uow.commit()
        except Exception:  # the HIS must still get the reason its settlement was refused for
            _log.exception("refusal_not_recorded", mdtrt_id=mdtrt_id[:40], reason=reason)
            return
        if recorded:
            self._refusals.labels(reason).inc()
