"""The institution registry as the filing service reaches it: GetInstitution, over gRPC.

The registry owns institutions (DESIGN.md principle 2), so the filing service asks it like
any other client: on its own node when the node runs the registry too, else on the parent
node, which answers for (or forwards to) the whole tree.
"""

from __future__ import annotations

from collections.abc import Iterable

from yidi.registry.v1 import institution_registry_service_pb2 as registry_api
from yidi.registry.v1 import institution_registry_service_pb2_grpc as registry_grpc
from yidi_core.errors import DomainError
from yidi_runtime.config import NodeSettings, Peer
from yidi_runtime.peers import PeerClient
from yidi_services.filing.designation_levels import RegistryAnswers

_UNKNOWN = frozenset({"NOT_FOUND", "INVALID_CODE"})


def registry_peer(settings: NodeSettings) -> Peer | None:
    """Where the registry is: this node (at the port it bound) when it runs it, else the parent."""
    if "registry" in settings.services:
        return Peer(settings.region, settings.self_address)
    return settings.parent


class RegistryClient:
    """Institution levels from the registry; one channel, opened on first use."""

    def __init__(self, settings: NodeSettings) -> None:
        peer = registry_peer(settings)
        self._region = settings.region
        self._client = PeerClient(peer, settings.tls) if peer is not None else None

    def _level(self, client: PeerClient, code: str) -> str | None:
        stub = client.stub(registry_grpc.InstitutionRegistryServiceStub)
        try:
            answer = client.call(stub.GetInstitution, registry_api.GetInstitutionRequest(fixmedins_code=code))
        except DomainError as refusal:
            if refusal.reason_code in _UNKNOWN:
                return None
            raise
        return answer.institution.level

    def levels(self, codes: Iterable[str]) -> RegistryAnswers:
        """Each institution's level (None: not registered); an unreachable registry as data.

        The refusal is kept rather than raised so that a repeated request still gets its
        original answer from the request log, and a new one is refused only if it needs it.
        """
        if self._client is None:
            return RegistryAnswers(
                failure=DomainError(
                    "NODE_UNREACHABLE",
                    f"node {self._region} runs no institution registry and has no parent to ask; "
                    "nothing was applied",
                    metadata={"node_region": self._region},
                )
            )
        try:
            return RegistryAnswers({code: self._level(self._client, code) for code in dict.fromkeys(codes)})
        except DomainError as refusal:
            return RegistryAnswers(failure=refusal)
