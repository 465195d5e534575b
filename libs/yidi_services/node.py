"""The composition root: the services a node can run and how each is assembled.

A method whose issue has not landed yet is left to the generated base servicer, so it
answers UNIMPLEMENTED (with reason ``NOT_IMPLEMENTED``) and nothing pretends to work.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from yidi_runtime.config import NodeSettings
from yidi_runtime.server import Node, create_server
from yidi_runtime.service import ServiceGroup
from yidi_services.catalogue import access as catalogue_access
from yidi_services.catalogue import models as catalogue_models
from yidi_services.catalogue import servicers as catalogue_servicers
from yidi_services.clearing import access as clearing_access
from yidi_services.clearing import models as clearing_models
from yidi_services.clearing import servicer as clearing_servicer
from yidi_services.collaboration import access as collaboration_access
from yidi_services.collaboration import models as collaboration_models
from yidi_services.collaboration import servicer as collaboration_servicer
from yidi_services.filing import access as filing_access
from yidi_services.filing import models as filing_models
from yidi_services.filing import servicer as filing_servicer
from yidi_services.registry import access as registry_access
from yidi_services.registry import models as registry_models
from yidi_services.registry import servicer as registry_servicer
from yidi_services.settlement import access as settlement_access
from yidi_services.settlement import models as settlement_models
from yidi_services.settlement import servicer as settlement_servicer

_HERE = Path(__file__).parent


def _group(name: str, models: ModuleType, servicer: ModuleType, access: ModuleType) -> ServiceGroup:
    """A service as its package lays it out: ``models.Base``, ``migrations/versions``, ``register``, ``ACCESS``."""
    return ServiceGroup(
        name=name,
        metadata=models.Base.metadata,
        versions=_HERE / name / "migrations" / "versions",
        register=servicer.register,
        access=access.ACCESS,
    )


GROUPS: dict[str, ServiceGroup] = {
    group.name: group
    for group in (
        _group("filing", filing_models, filing_servicer, filing_access),
        _group("registry", registry_models, registry_servicer, registry_access),
        _group("catalogue", catalogue_models, catalogue_servicers, catalogue_access),
        _group("settlement", settlement_models, settlement_servicer, settlement_access),
        _group("clearing", clearing_models, clearing_servicer, clearing_access),
        _group("collaboration", collaboration_models, collaboration_servicer, collaboration_access),
    )
}


def groups_for(settings: NodeSettings) -> list[ServiceGroup]:
    """The service groups this node's configuration names, in a stable order."""
    return [GROUPS[name] for name in settings.services]


def start_node(settings: NodeSettings) -> Node:
    """Start a node running the configured services (used by `yidi serve`, the demo and tests)."""
    return create_server(settings, groups_for(settings))
