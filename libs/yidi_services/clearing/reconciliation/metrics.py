"""``yidi_reconciliation_open_discrepancies{kind}``: what the latest reconciliation of each day left open.

Counted from the tables when Prometheus scrapes (like the filing queue), so every replica of
the national node reports the same figure, a restart loses nothing, and the figure moves as
soon as a run finishes or a repair marks a discrepancy repaired — no hook has to remember.

A discrepancy is open while it is not repaired and no later successful run covered its day
(and its provinces): when a day is reconciled again, the new run's findings replace the old
run's, so a repeated run never counts a difference twice, and one an operator settled outside
the system disappears at the next run over that day.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased

from yidi_runtime.db import Database
from yidi_runtime.logs import get_logger
from yidi_services.clearing.jobs import RunState
from yidi_services.clearing.reconciliation.compare import Kind
from yidi_services.clearing.reconciliation.models import DiscrepancyRow, ReconciliationRunRow

NAME = "yidi_reconciliation_open_discrepancies"


def open_discrepancies(session: Session) -> dict[Kind, int]:
    """Open discrepancies per kind (every kind present, 0 when none)."""
    found_by = aliased(ReconciliationRunRow)
    later = aliased(ReconciliationRunRow)
    superseded = exists().where(
        later.state == RunState.SUCCEEDED.value,
        later.finished_at > found_by.finished_at,
        later.start_date <= DiscrepancyRow.day,
        later.end_date >= DiscrepancyRow.day,
        or_(
            later.admdvs == "",
            later.admdvs == DiscrepancyRow.insured_province,
            later.admdvs == DiscrepancyRow.treatment_province,
        ),
    )
    rows = session.execute(
        select(DiscrepancyRow.kind, func.count())
        .join(found_by, found_by.run_id == DiscrepancyRow.run_id)
        .where(and_(DiscrepancyRow.repaired.is_(False), ~superseded))
        .group_by(DiscrepancyRow.kind)
    )
    counts = {kind: 0 for kind in Kind}
    for kind, count in rows:
        counts[Kind(kind)] = int(count)
    return counts


def _family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        NAME,
        "Discrepancies the latest reconciliation of their day found and no repair has fixed, by kind.",
        labels=["kind"],
    )


class _OpenDiscrepancies(Collector):
    def __init__(self, database: Database) -> None:
        self._database = database

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """Named without a query, so registering does not touch the database."""
        yield _family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with self._database.unit_of_work() as uow:
                counts = open_discrepancies(uow.session)
        except SQLAlchemyError:  # a scrape must not fail with the database; the service's health says so
            get_logger(service="clearing").warning("open discrepancies not counted", exc_info=True)
            return
        family = _family()
        for kind, count in counts.items():
            family.add_metric([kind.value], count)
        yield family


def register_open_discrepancies(registry: CollectorRegistry, database: Database) -> None:
    """Serve the gauge on the national node's ``/metrics``."""
    registry.register(_OpenDiscrepancies(database))
