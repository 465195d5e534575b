"""Keeps the clearing alerts and gauges current: advance usage, overdue statements, the ledger's balance.

When is usage re-evaluated? Summing a province's uncleared payments on every journal
append would put a query on the settlement path, so an append only names the insured
provinces it touched (:meth:`AlertWatch.touched`) and wakes a thread that re-evaluates
them within moments; ListAlerts and GetAdvanceStatus evaluate what is still pending
before they answer, and every ``interval_s`` the thread re-evaluates everything, which
also catches what other processes journalled and the deadlines a new day makes overdue.

Alerts are written only when they change (a read decides first), so the evaluation never
waits for a write lock just to confirm that nothing moved.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yidi_core.codes import NATIONAL_REGION
from yidi_core.money import format_money, from_fen
from yidi_runtime.db import Database
from yidi_runtime.logs import get_logger
from yidi_runtime.wire import Clock, china_day
from yidi_services.clearing import advances, ledger, statements
from yidi_services.clearing.advances import AdvanceStatus
from yidi_services.clearing.alerts import AlertKind, AlertLevel, Wanted, active_key, log_raised, reconcile
from yidi_services.clearing.calendar import ClearingCalendar
from yidi_services.clearing.models import AlertRecord
from yidi_services.clearing.statements import AWAITING_CONFIRMATION

_LEVEL_VALUE = {AlertLevel.NONE: 0, AlertLevel.YELLOW: 1, AlertLevel.RED: 2}
_MIN_PAUSE_S = 0.5
"""Under a stream of appends the thread re-evaluates at most this often."""


class ClearingMetrics:
    """Advance usage and alert level per province, the ledger's imbalance, and alerts raised."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.usage = Gauge(
            "yidi_clearing_advance_usage_ratio",
            "Advance usage of the current year: uncleared fund payments for the province's insured / advance.",
            ("admdvs",),
            registry=registry,
        )
        self.level = Gauge(
            "yidi_clearing_advance_alert_level",
            "Advance usage alert level of the current year: 0 none, 1 yellow, 2 red.",
            ("admdvs",),
            registry=registry,
        )
        self.imbalance = Gauge(
            "yidi_clearing_ledger_imbalance_fen",
            "Sum of every ledger balance in fen; anything but 0 means the ledger is broken.",
            registry=registry,
        )
        self.overdue = Gauge(
            "yidi_clearing_statements_overdue",
            "Statements of the province still unconfirmed (issued or disputed) after their confirmation day.",
            ("admdvs",),
            registry=registry,
        )
        self._overdue_provinces: set[str] = set()
        self.raised = Counter(
            "yidi_clearing_alerts_raised",
            "Clearing alerts raised, by kind and level.",
            ("kind", "level"),
            registry=registry,
        )

    def advance(self, status: AdvanceStatus) -> None:
        """Publish one province's usage."""
        self.usage.labels(status.admdvs).set(float(status.usage_ratio))
        self.level.labels(status.admdvs).set(_LEVEL_VALUE[status.level])

    def overdue_confirmations(self, overdue: list[Wanted]) -> None:
        """Publish each province's count of overdue confirmations (0 for one that had some before)."""
        counts = collections.Counter(alert.admdvs for alert in overdue)
        for admdvs in self._overdue_provinces | counts.keys():
            self.overdue.labels(admdvs).set(counts[admdvs])
        self._overdue_provinces |= counts.keys()


def advance_alert(status: AdvanceStatus, calendar: ClearingCalendar) -> Wanted:
    """The alert an advance status calls for (level NONE: none)."""
    line = calendar.red_ratio if status.level is AlertLevel.RED else calendar.yellow_ratio
    return Wanted(
        AlertKind.ADVANCE_USAGE,
        advance_subject(status.admdvs, status.year),
        status.level,
        status.admdvs,
        f"advance usage of {status.admdvs} for {status.year} is {status.usage_ratio} "
        f"(used {format_money(from_fen(status.used_fen))} of {format_money(from_fen(status.advance_fen))} "
        f"yuan), at or above {line}: top up the advance (紧急调增)",
    )


def advance_subject(admdvs: str, year: int) -> str:
    """The subject of a province's advance alerts for a year."""
    return f"{admdvs}/{year}"


def overdue_alerts(session: Session, now: datetime) -> tuple[list[Wanted], list[Wanted]]:
    """Confirmation and transfer alerts the unsettled statements call for on the day of ``now`` (China time)."""
    day = china_day(now)
    confirmations, transfers = [], []
    for record in statements.unsettled(session):
        if record.state in AWAITING_CONFIRMATION and day > record.confirm_by:
            confirmations.append(
                Wanted(
                    AlertKind.CONFIRMATION_OVERDUE,
                    record.statement_id,
                    AlertLevel.YELLOW,
                    record.admdvs,
                    f"statement {record.statement_id} was due for confirmation by {record.confirm_by}",
                )
            )
        if record.net_fen != 0 and day > record.transfer_by:
            transfers.append(
                Wanted(
                    AlertKind.TRANSFER_OVERDUE,
                    record.statement_id,
                    AlertLevel.RED,
                    record.admdvs,
                    f"statement {record.statement_id}: {format_money(from_fen(abs(record.net_fen) - record.transferred_fen))} "
                    f"yuan still to move, due by {record.transfer_by}",
                )
            )
    return confirmations, transfers


class AlertWatch:
    """Evaluates alerts on demand and in a background thread; publishes the gauges."""

    def __init__(
        self,
        database: Database,
        calendar: ClearingCalendar,
        clock: Clock,
        metrics: ClearingMetrics,
        interval_s: float,
    ) -> None:
        self._database = database
        self._calendar = calendar
        self._clock = clock
        self._metrics = metrics
        self._interval_s = interval_s
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._log = get_logger(service="clearing")

    def touched(self, provinces: Iterable[str]) -> None:
        """Insured provinces whose usage may have changed: re-evaluate them soon."""
        with self._lock:
            self._pending.update(provinces)
        self._wake.set()

    def advance_status(self, admdvs: str, year: int) -> AdvanceStatus:
        """A province's status now, with its alert brought up to date (NOT_FOUND without an advance)."""
        with self._database.unit_of_work() as uow:
            found = advances.status(uow.session, admdvs, year, self._calendar)
        self._publish([found])
        return found

    def evaluate_pending(self) -> None:
        """Re-evaluate the provinces touched since the last evaluation, the deadlines and the ledger."""
        with self._lock:
            provinces, self._pending = self._pending, set()
        if provinces:
            self._advances(provinces)
        self._deadlines_and_ledger()

    def evaluate_all(self) -> None:
        """Re-evaluate every advance, deadline and the ledger."""
        with self._lock:
            self._pending.clear()
        self._advances(None)
        self._deadlines_and_ledger()

    def _advances(self, provinces: set[str] | None) -> None:
        with self._database.unit_of_work() as uow:
            found = [
                advances.status_of(uow.session, record, self._calendar)
                for record in advances.every_advance(uow.session, provinces)
            ]
        self._publish(found)

    def _publish(self, found: list[AdvanceStatus]) -> None:
        year = china_day(self._clock()).year
        for status in found:
            if status.year == year:
                self._metrics.advance(status)
        subjects = [advance_subject(status.admdvs, status.year) for status in found]
        self._apply(
            AlertKind.ADVANCE_USAGE, subjects, [advance_alert(status, self._calendar) for status in found]
        )

    def _deadlines_and_ledger(self) -> None:
        with self._database.unit_of_work() as uow:
            confirmations, transfers = overdue_alerts(uow.session, self._clock())
            total = ledger.total(uow.session)
        self._metrics.imbalance.set(total)
        self._metrics.overdue_confirmations(confirmations)
        self._apply(AlertKind.CONFIRMATION_OVERDUE, None, confirmations)
        self._apply(AlertKind.TRANSFER_OVERDUE, None, transfers)
        imbalance = Wanted(
            AlertKind.LEDGER_IMBALANCE,
            "ledger",
            AlertLevel.RED if total else AlertLevel.NONE,
            NATIONAL_REGION,
            f"the ledger's balances sum to {total} fen instead of 0",
        )
        self._apply(AlertKind.LEDGER_IMBALANCE, ["ledger"], [imbalance])

    def _apply(self, kind: AlertKind, subjects: list[str] | None, wanted: list[Wanted]) -> None:
        """Bring the active alerts of ``kind`` in line with ``wanted``, writing only when they differ."""
        desired = {alert.key: alert.level.value for alert in wanted if alert.level is not AlertLevel.NONE}
        keys = None if subjects is None else {active_key(kind, subject) for subject in subjects}
        with self._database.unit_of_work() as uow:
            active = {
                key: level
                for key, level in uow.session.execute(
                    select(AlertRecord.active_key, AlertRecord.level).where(
                        AlertRecord.active.is_(True), AlertRecord.kind == kind.value
                    )
                )
                if keys is None or key in keys or key in desired
            }
        if active == desired:
            return
        now: datetime = self._clock()
        try:
            with self._database.unit_of_work(write=True) as uow:
                raised = reconcile(uow.session, kind, subjects, wanted, now)
                uow.commit()
        except IntegrityError:  # another evaluator raised the same alert first
            return
        for alert in raised:
            self._metrics.raised.labels(alert.kind.value, alert.level.value).inc()
        log_raised(raised)

    def _run(self) -> None:
        next_full = time.monotonic()
        while not self._stopping.is_set():
            try:
                if time.monotonic() >= next_full:
                    next_full = time.monotonic() + self._interval_s
                    self.evaluate_all()
                else:
                    self.evaluate_pending()
            except Exception:  # the database may be busy or down; the next pass tries again
                self._log.exception("clearing alert evaluation failed")
            if self._stopping.wait(_MIN_PAUSE_S):
                return
            self._wake.wait(max(0.0, next_full - time.monotonic()))
            self._wake.clear()

    def start(self) -> None:
        """Evaluate in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="clearing-alerts", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the evaluation in progress."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
