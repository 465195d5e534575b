"""The node's ticket queue as gauges, counted from the database at every scrape (never stale)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from yidi_runtime.db import Database
from yidi_services.collaboration.store import queue_size


class QueueCollector(Collector):
    """Tickets awaiting this node's regions, and those of them past their due date."""

    def __init__(self, database: Database, today: Callable[[], date]) -> None:
        self._database = database
        self._today = today

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._database.unit_of_work() as uow:
            size = queue_size(uow.session, self._today())
        yield GaugeMetricFamily(
            "yidi_collaboration_backlog_tickets",
            "Collaboration tickets awaiting an action of a region this node serves.",
            value=size.backlog,
        )
        yield GaugeMetricFamily(
            "yidi_collaboration_overdue_tickets",
            "Collaboration tickets awaiting this node's regions past their working-day due date.",
            value=size.overdue,
        )


def register_queue_gauges(registry: CollectorRegistry, database: Database, today: Callable[[], date]) -> None:
    """Serve the queue gauges on the node's registry."""
    registry.register(QueueCollector(database, today))
