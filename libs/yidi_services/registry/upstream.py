"""Reads about institutions outside this node's region, answered by the parent and cached.

A province (or city) registry holds only its own subtree; the national node holds the
master copy. So Get/Check/List for a region this node does not contain are relayed to the
parent (:mod:`yidi_runtime.relay`), which answers from its table or asks its own parent in
turn. A node with no parent (the national node, or a standalone province) answers
everything from its own table.

The node asks as itself (its own vouch), since what the parent answers is kept for every
caller; and it asks once, without the router's retries, as the registry always has (a failed
read is not cached, so the next read asks again).

Answers and the parent's refusals (NOT_FOUND, INSTITUTION_NOT_NETWORKED, …) are kept for
:data:`TTL_S` seconds in a bounded in-process cache, so a busy window does not ask the
national node for the same hospital on every visit; a change at the owner is seen here at
most that much later. ``NODE_UNREACHABLE`` is never cached: the next call asks again.
"""

from __future__ import annotations

from dataclasses import replace

import grpc
from google.protobuf.message import Message

from yidi.registry.v1 import institution_registry_service_pb2_grpc as api_grpc
from yidi_core.codes import NATIONAL_REGION, check_region
from yidi_core.codes import institution_region as region_in_code
from yidi_core.errors import DomainError
from yidi_runtime.config import region_contains
from yidi_runtime.peers import PeerClient
from yidi_runtime.relay import Relay, Up, Vouching
from yidi_runtime.resilience import NO_RETRY
from yidi_runtime.routing import Router
from yidi_runtime.ttl_cache import TtlCache

TTL_S = 60.0
MAX_ENTRIES = 10_000


def institution_region(code: str) -> str | None:
    """The region an institution code names; None when malformed (this node refuses it itself)."""
    try:
        return region_in_code(code)
    except DomainError:
        return None


def listed_region(admdvs: str) -> str | None:
    """The region a list covers (no filter: the whole country); None when malformed."""
    if not admdvs:
        return NATIONAL_REGION
    try:
        return check_region(admdvs)
    except DomainError:
        return None


def parent_relay(router: Router) -> Relay:
    """The registry's relay to its parent: as the node itself, asking once."""
    return Relay(router, api_grpc.InstitutionRegistryServiceStub, vouching=Vouching.NODE, retry=NO_RETRY)


class ParentLookups:
    """Decides which reads go to the parent, and relays them through the cache."""

    def __init__(self, relay: Relay, node_region: str, cache: TtlCache[Message | DomainError]) -> None:
        self._relay = relay
        self._node_region = node_region
        self._parent: PeerClient | None = relay.next_hop(Up.PARENT)
        self._cache = cache

    def answers_locally(self, region: str | None) -> bool:
        """Whether this node's own table answers for ``region`` (None: malformed, refused here)."""
        return region is None or self._parent is None or region_contains(self._node_region, region)

    def ask(self, method: str, request: Message, context: grpc.ServicerContext) -> Message:
        """The parent's (possibly cached) answer to ``request``; its refusal raised as-is."""
        assert self._parent is not None
        key = (method, request.SerializeToString(deterministic=True))
        cached = self._cache.get(key)
        if isinstance(cached, DomainError):
            raise replace(cached)
        if cached is not None:
            return cached
        try:
            answer: Message = self._relay.pass_on(self._parent, method, request, context)
        except DomainError as refusal:
            if refusal.reason_code != "NODE_UNREACHABLE":
                self._cache.put(key, refusal)
            raise
        self._cache.put(key, answer)
        return answer
