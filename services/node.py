"""The composition root: the services a node can run and how each is assembled.

Services whose issue has not landed yet are registered with their generated base
servicer, so every method answers UNIMPLEMENTED (with reason ``NOT_IMPLEMENTED``) and
nothing pretends to work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import grpc

from yidi.clearing.v1 import clearing_service_pb2, clearing_service_pb2_grpc
from yidi_runtime.config import NodeSettings
from yidi_runtime.server import Node, create_server
from yidi_runtime.service import ServiceContext, ServiceGroup
from yidi_services.catalogue import models as catalogue_models
from yidi_services.catalogue import servicers as catalogue_servicers
from yidi_services.clearing import models as clearing_models
from yidi_services.filing import models as filing_models
from yidi_services.filing import servicer as filing_servicer
from yidi_services.registry import models as registry_models
from yidi_services.registry import servicer as registry_servicer
from yidi_services.settlement import models as settlement_models
from yidi_services.settlement import servicer as settlement_servicer

_HERE = Path(__file__).parent
Stub = tuple[ModuleType, ModuleType, str]


def _awaiting_implementation(*stubs: Stub) -> Callable[[grpc.Server, ServiceContext], Sequence[str]]:
    """Register the generated base servicers, whose every method answers UNIMPLEMENTED."""

    def register(server: grpc.Server, _context: ServiceContext) -> Sequence[str]:
        names = []
        for messages, services, name in stubs:
            servicer = getattr(services, f"{name}Servicer")()
            getattr(services, f"add_{name}Servicer_to_server")(servicer, server)
            names.append(messages.DESCRIPTOR.services_by_name[name].full_name)
        return names

    return register


def _group(name: str, metadata_owner: ModuleType, *stubs: Stub) -> ServiceGroup:
    return ServiceGroup(
        name=name,
        metadata=metadata_owner.Base.metadata,
        versions=_HERE / name / "migrations" / "versions",
        register=_awaiting_implementation(*stubs),
    )


GROUPS: dict[str, ServiceGroup] = {
    group.name: group
    for group in (
        ServiceGroup(
            name="filing",
            metadata=filing_models.Base.metadata,
            versions=_HERE / "filing" / "migrations" / "versions",
            register=filing_servicer.register,
        ),
        ServiceGroup(
            name="registry",
            metadata=registry_models.Base.metadata,
            versions=_HERE / "registry" / "migrations" / "versions",
            register=registry_servicer.register,
        ),
        ServiceGroup(
            name="catalogue",
            metadata=catalogue_models.Base.metadata,
            versions=_HERE / "catalogue" / "migrations" / "versions",
            register=catalogue_servicers.register,
        ),
        ServiceGroup(
            name="settlement",
            metadata=settlement_models.Base.metadata,
            versions=_HERE / "settlement" / "migrations" / "versions",
            register=settlement_servicer.register,
        ),
        _group(
            "clearing", clearing_models, (clearing_service_pb2, clearing_service_pb2_grpc, "ClearingService")
        ),
    )
}


def groups_for(settings: NodeSettings) -> list[ServiceGroup]:
    """The service groups this node's configuration names, in a stable order."""
    return [GROUPS[name] for name in settings.services]


def start_node(settings: NodeSettings) -> Node:
    """Start a node running the configured services (used by `yidi serve`, the demo and tests)."""
    return create_server(settings, groups_for(settings))
