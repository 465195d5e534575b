"""The filing service's business metrics, on the node's registry next to the gRPC families.

Applications are counted by channel and outcome; the review queue (pending and overdue, per
insured region) and the rechecks waiting for a decision after a rules change are read from
the database at every scrape, so the gauges are never stale;
decisions feed a time-to-decision histogram in seconds (instant approvals observe 0).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from yidi_runtime.db import Database
from yidi_services.filing.applications import AUTO_REVIEWER
from yidi_services.filing.filings import Filing
from yidi_services.filing.queue import queue_sizes
from yidi_services.filing.rechecks import pending_counts

_HOUR = 3600.0
_DAY = 24 * _HOUR
DECISION_BUCKETS = (1.0, 60.0, _HOUR, 4 * _HOUR, _DAY, 2 * _DAY, 3 * _DAY, 5 * _DAY, 10 * _DAY, 30 * _DAY)


class _QueueCollector(Collector):
    """Pending and overdue reviews and pending rechecks per insured region, counted when Prometheus scrapes."""

    def __init__(self, database: Database, today: Callable[[], date]) -> None:
        self._database = database
        self._today = today

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pending = GaugeMetricFamily(
            "yidi_filing_pending_reviews", "Filings waiting for manual review.", labels=["insuplc_admdvs"]
        )
        overdue = GaugeMetricFamily(
            "yidi_filing_overdue_reviews",
            "Filings waiting for review past their working-day deadline.",
            labels=["insuplc_admdvs"],
        )
        rechecks = GaugeMetricFamily(
            "yidi_filing_pending_rechecks",
            "Open filings that fail their region's new rules, waiting for an operator's decision.",
            labels=["insuplc_admdvs"],
        )
        with self._database.unit_of_work() as uow:
            sizes = queue_sizes(uow.session, self._today())
            waiting = pending_counts(uow.session, self._today())
        for size in sizes:
            pending.add_metric([size.insuplc_admdvs], size.pending)
            overdue.add_metric([size.insuplc_admdvs], size.overdue)
        for region, count in waiting:
            rechecks.add_metric([region], count)
        yield pending
        yield overdue
        yield rechecks


class FilingMetrics:
    """Applications, decisions and the queue of one node's filing service."""

    def __init__(self, registry: CollectorRegistry, database: Database, today: Callable[[], date]) -> None:
        self.applications = Counter(
            "yidi_filing_applications",
            "Filing applications by channel and outcome (approved, pending_review, existing, refused).",
            ("channel", "outcome"),
            registry=registry,
        )
        self.time_to_decision = Histogram(
            "yidi_filing_time_to_decision_seconds",
            "Time from submission to approval or rejection.",
            ("decided_by",),
            buckets=DECISION_BUCKETS,
            registry=registry,
        )
        registry.register(_QueueCollector(database, today))

    def decided(self, filing: Filing) -> None:
        """Observe how long a decided filing waited."""
        if filing.decide_time is not None:
            seconds = (filing.decide_time - filing.submit_time).total_seconds()
            decided_by = "auto" if filing.reviewer == AUTO_REVIEWER else "reviewer"
            self.time_to_decision.labels(decided_by).observe(max(seconds, 0.0))
