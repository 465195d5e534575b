"""What a service contributes to a node, and what the node hands each service.

The runtime knows nothing of filing or settlement; each service package describes itself
with a :class:`ServiceGroup` and the composition root (``yidi_services.node``) picks the
ones a node's configuration names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import grpc
from prometheus_client import CollectorRegistry
from sqlalchemy import MetaData

from yidi_runtime.authz import Access
from yidi_runtime.config import NodeSettings
from yidi_runtime.db import Database
from yidi_runtime.routing import Router


class BackgroundWorker(Protocol):
    """Work a service does for as long as its node runs (e.g. delivering its outbox)."""

    def start(self) -> None:
        """Begin (in a thread of its own); called once the node serves calls."""

    def stop(self, timeout_s: float) -> None:
        """Finish within ``timeout_s``; called after the node drained its calls, before its databases close."""


@dataclass(frozen=True)
class ServiceContext:
    """The node's settings, the service's own database, the node's router and metrics registry.

    ``settings.grpc_port`` is the port the node actually bound (never 0), so a service can
    call another service of its own node through its RPCs. ``router`` is the node's one
    router: every service reaches its neighbours (and relays calls, :mod:`yidi_runtime.relay`)
    over the same channels, breakers and retry policy; the node closes it when it stops.

    A service registers its own business metrics on ``metrics_registry`` so they are served
    on the node's ``/metrics`` next to the gRPC families, and hands the node any
    :class:`BackgroundWorker` with :meth:`run_in_background` so they start and stop with it.
    """

    settings: NodeSettings
    database: Database
    router: Router
    metrics_registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    workers: list[BackgroundWorker] = field(default_factory=list, compare=False)
    health_checks: list[Callable[[], bool]] = field(default_factory=list, compare=False)
    parent_dependent: set[str] = field(default_factory=set, compare=False)

    def run_in_background(self, worker: BackgroundWorker) -> None:
        """Have the node start ``worker`` once it serves, and stop it at shutdown."""
        self.workers.append(worker)

    def report_health(self, check: Callable[[], bool]) -> None:
        """Make the service's health also depend on ``check`` (e.g. an invariant of its data).

        The node calls it with every health check; False, or an exception, is NOT_SERVING.
        """
        self.health_checks.append(check)

    def needs_parent(self, *grpc_names: str) -> None:
        """Declare gRPC services of this group whose work goes through the node's parent.

        They report NOT_SERVING while the parent has been unreachable for longer than
        ``[node] parent_unreachable_after_s`` (:mod:`yidi_runtime.parent_watch`).
        """
        self.parent_dependent.update(grpc_names)


@dataclass(frozen=True)
class ServiceGroup:
    """One deployable service: its tables, migrations and gRPC services.

    ``register`` adds the servicers to the server and returns the fully qualified gRPC
    service names it added (used for health and reflection); ``access`` says who may call
    each of their methods.
    """

    name: str
    metadata: MetaData
    versions: Path
    register: Callable[[grpc.Server, ServiceContext], Sequence[str]]
    access: Mapping[str, Access] = field(default_factory=dict)
    """Who may call each method (:mod:`yidi_runtime.authz`); a method without a rule is refused."""
