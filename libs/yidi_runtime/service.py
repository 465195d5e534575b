"""What a service contributes to a node, and what the node hands each service.

The runtime knows nothing of filing or settlement; each service package describes itself
with a :class:`ServiceGroup` and the composition root (``yidi_services.node``) picks the
ones a node's configuration names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from prometheus_client import CollectorRegistry
from sqlalchemy import MetaData

from yidi_runtime.config import NodeSettings
from yidi_runtime.db import Database


@dataclass(frozen=True)
class ServiceContext:
    """The node's settings, the service's own database and the node's metrics registry.

    A service registers its own business metrics on ``metrics_registry`` so they are served
    on the node's ``/metrics`` next to the gRPC families.
    """

    settings: NodeSettings
    database: Database
    metrics_registry: CollectorRegistry = field(default_factory=CollectorRegistry)


@dataclass(frozen=True)
class ServiceGroup:
    """One deployable service: its tables, migrations and gRPC services.

    ``register`` adds the servicers to the server and returns the fully qualified gRPC
    service names it added (used for health and reflection).
    """

    name: str
    metadata: MetaData
    versions: Path
    register: Callable[[grpc.Server, ServiceContext], Sequence[str]]
