"""Registry changes and suspension notices on their way through the tree, in the registry outbox.

Every institution change a node stores (register, update, import, a child's sync) is queued,
in the same transaction, as SyncInstitutions to its parent, which keeps the highest version
of each record and queues what it stored to its own parent: a city's change reaches the
national node with no manual step. What the outbox delivers is recorded as acknowledged by
the parent (``registry_pushed_versions``), so ``yidi registry sync`` stays an operator's
catch-up that only sends what the outbox has not (records from before this release, or a
node that gained a parent).

A suspension notice, published or revoked here or received from a neighbour, is queued as
SyncSuspension to every other neighbour on the path between the national node and the
notice's region: the parent, and each child whose region contains that region or lies in
it. So it reaches every node where the institution settles after one delivery round, with
the same ``suspension_id`` everywhere; each node applies it once (its request log, and a
revocation that sticks).

The lag from a change at its origin to its application here is the histogram
``yidi_registry_propagation_lag_seconds{kind}``; the age of the oldest message not yet
delivered is ``yidi_registry_outbox_oldest_seconds``, which keeps growing when delivery stops.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from yidi.registry.v1 import institution_registry_service_pb2 as api
from yidi_runtime.config import NodeSettings, region_contains
from yidi_runtime.db import Database
from yidi_runtime.outbox import Outbox, QueuedMessage, method_path
from yidi_runtime.peers import message_id
from yidi_runtime.wire import Clock, as_utc, timestamp_message
from yidi_services.registry import convert, store
from yidi_services.registry.institutions import Institution
from yidi_services.registry.suspensions import Suspension

_METHODS = api.DESCRIPTOR.services_by_name["InstitutionRegistryService"].methods_by_name
SYNC_INSTITUTIONS = _METHODS["SyncInstitutions"]
SYNC_SUSPENSION = _METHODS["SyncSuspension"]

BATCH_SIZE = 500
"""Records per queued SyncInstitutions: ≈150 kB, well inside gRPC's 4 MB message limit."""

DEADLINE_S = 30.0
"""How long a neighbour may take to store one message."""

LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0)


class _OldestCollector(Collector):
    """The age of the oldest undelivered registry outbox message, read when Prometheus scrapes (0 when none)."""

    def __init__(self, database: Database, outbox: Outbox) -> None:
        self._database = database
        self._outbox = outbox

    def collect(self) -> Iterator[GaugeMetricFamily]:
        model = self._outbox.model
        with self._database.unit_of_work() as uow:
            oldest = uow.session.scalar(
                sa.select(sa.func.min(model.created_at)).where(model.delivered_at.is_(None))
            )
        age = 0.0 if oldest is None else max((self._outbox.clock() - as_utc(oldest)).total_seconds(), 0.0)
        yield GaugeMetricFamily(
            "yidi_registry_outbox_oldest_seconds",
            "Age of the oldest registry change or suspension notice not yet delivered to a neighbouring node.",
            value=age,
        )


class Propagation:
    """Queues this node's registry changes for its neighbours and observes the lag of those it receives."""

    def __init__(
        self,
        settings: NodeSettings,
        database: Database,
        outbox: Outbox,
        registry: CollectorRegistry,
        clock: Clock,
    ) -> None:
        self._region = settings.region
        self.parent_region = settings.parent.region if settings.parent is not None else None
        self._children = tuple(child.region for child in settings.children)
        self._outbox = outbox
        self._clock = clock
        self._lag = Histogram(
            "yidi_registry_propagation_lag_seconds",
            "Time from an institution change or suspension notice at its origin node to its application here.",
            ("kind",),
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        registry.register(_OldestCollector(database, outbox))

    def institutions_changed(self, session: Session, changed: Sequence[Institution]) -> None:
        """Queue the records this node just stored for its parent (none without a parent)."""
        if self.parent_region is None:
            return
        for start in range(0, len(changed), BATCH_SIZE):
            request = api.SyncInstitutionsRequest(
                request_id=message_id(self._region),
                source_admdvs=self._region,
                institutions=[convert.institution(i) for i in changed[start : start + BATCH_SIZE]],
            )
            self._outbox.add(session, self.parent_region, SYNC_INSTITUTIONS, request)

    def notice_changed(
        self, session: Session, notice: Suspension, changed_at: datetime, came_from: str | None = None
    ) -> None:
        """Queue a notice published, revoked or received here for every neighbour but the one it came from."""
        request = api.SyncSuspensionRequest(
            request_id=f"{notice.suspension_id}:{'revoke' if notice.revoked else 'publish'}",
            source_admdvs=self._region,
            suspension=convert.suspension(notice),
            changed_at=timestamp_message(changed_at),
        )
        for neighbour in self._neighbours_for(notice.region):
            if neighbour != came_from:
                self._outbox.add(session, neighbour, SYNC_SUSPENSION, request)

    def _neighbours_for(self, region: str) -> list[str]:
        """The parent, and the children on the way down to ``region`` or lying in it."""
        children = [
            child
            for child in self._children
            if region_contains(child, region) or region_contains(region, child)
        ]
        return [self.parent_region, *children] if self.parent_region is not None else children

    def observe(self, kind: str, changed_at: datetime | None) -> None:
        """Record how long a change took from its origin to here (``institution`` or ``suspension``)."""
        if changed_at is not None:
            self._lag.labels(kind).observe(max((self._clock() - as_utc(changed_at)).total_seconds(), 0.0))

    def on_delivered(self, session: Session, delivered: list[tuple[QueuedMessage, bytes]]) -> None:
        """Record the versions the parent now holds, so ``yidi registry sync`` does not send them again."""
        sync = method_path(SYNC_INSTITUTIONS)
        for message, _ in delivered:
            if message.method != sync:
                continue
            request = api.SyncInstitutionsRequest.FromString(message.payload)
            store.acknowledge(
                session, message.destination, [(i.fixmedins_code, i.version) for i in request.institutions]
            )
