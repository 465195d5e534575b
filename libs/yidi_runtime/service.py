"""What a service contributes to a node, and what the node hands each service.

The runtime knows nothing of filing or settlement; each service package describes itself
with a :class:`ServiceGroup` and the composition root (``yidi_services.node``) picks the
ones a node's configuration names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from sqlalchemy import MetaData

from yidi_runtime.config import NodeSettings
from yidi_runtime.db import Database


@dataclass(frozen=True)
class ServiceContext:
    """The node's settings and the service's own database, given to its servicers."""

    settings: NodeSettings
    database: Database


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
