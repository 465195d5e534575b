"""Where the settlement journal lives: at the national node; any other node passes a journal call one hop up.

A treatment node's outbox sends each entry one hop toward the national node, so a
province node between a city node and the national node passes it on unchanged (the
peer's answer or refusal comes back as it was); only the national node checks and records
it. A node with no parent cannot reach the journal and refuses with
PERMISSION_DENIED_REGION, recording nothing.
"""

from __future__ import annotations

from yidi_core.codes import NATIONAL_REGION
from yidi_core.errors import DomainError
from yidi_runtime.peers import PeerClient
from yidi_runtime.routing import Router


class JournalHome:
    """The way to the journal from this node: here at the national node, else through the parent."""

    def __init__(self, router: Router) -> None:
        self._router = router

    def parent(self) -> PeerClient | None:
        """None at the national node (the journal is here); else the parent that passes calls on."""
        settings = self._router.settings
        if settings.region == NATIONAL_REGION:
            return None
        if settings.parent is None:
            raise DomainError(
                "PERMISSION_DENIED_REGION",
                f"the settlement journal is kept at the national node {NATIONAL_REGION}; "
                f"node {settings.region} has no parent to pass the call to",
                metadata={"node_region": settings.region},
            )
        return self._router.client(settings.parent)
