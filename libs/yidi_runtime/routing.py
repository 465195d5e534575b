"""Tree routing on region codes (DESIGN.md principle 3): where a request for a region goes next.

Every node knows only its parent and its children. A request for a region is handled
here when the region lies in this node's subtree and no configured child owns it more
specifically; it goes down to the child whose region contains it (the most specific one),
or up to the parent when the region lies outside the subtree. The national node owns no
region itself: it sends a request down to the province owning the code's first two
digits. No route at all (the national node without that province, a node without a
parent asked about another province) is ``NODE_UNREACHABLE``, the same stable reason as a
peer that does not answer, since the caller's remedy is the same.

:func:`route` is the pure decision; :class:`Router` holds one persistent
:class:`~yidi_runtime.peers.PeerClient` per peer, each with its own retry policy and
circuit breaker, and answers "which client carries a request for this region".

A node builds one router when it starts (:func:`~yidi_runtime.server.create_server`) and
hands it to every service in its context; a request passed on along the tree goes through
:mod:`yidi_runtime.relay`, a call a service makes itself straight through the router::

    router = context.router
    client = router.next_hop(insured, "insuplc_admdvs", "INSURED_REGION_UNREACHABLE")  # None: here
    if client is not None:
        stub = client.stub(api_grpc.InsuredSettlementServiceStub)
        answer = client.call(stub.ApplySettlement, request, unreachable="INSURED_REGION_UNREACHABLE")
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from yidi_core.codes import NATIONAL_REGION, check_region, province_of
from yidi_core.errors import DomainError
from yidi_runtime import local_calls
from yidi_runtime.config import NodeSettings, Peer, region_contains
from yidi_runtime.integrity import NodeIntegrity
from yidi_runtime.peers import DEFAULT_DEADLINE_S, PeerClient
from yidi_runtime.regions import region_prefix
from yidi_runtime.resilience import Backoff, CircuitBreaker, Monotonic, RetryPolicy
from yidi_runtime.vouches import Vouches

_REMEMBERED_ROUTES = 4096
"""Route decisions a router keeps at most: more than the regions a federation has, few enough to bound
what requests naming made-up regions can fill."""

PEER_RETRY = RetryPolicy(attempts=3, backoff=Backoff(base_s=0.05, max_s=1.0))
"""Node-to-node calls: up to three tries, pausing 25–50 ms, then 50–100 ms."""


class Hop(StrEnum):
    """Which way a request goes from this node."""

    HERE = "here"
    DOWN = "down"
    UP = "up"


@dataclass(frozen=True)
class Route:
    """The decision for one target region: the hop, and the peer it goes to (None when here)."""

    target: str
    hop: Hop
    peer: Peer | None = None


def _no_route(node: NodeSettings, target: str, why: str, reason: str) -> DomainError:
    return DomainError(
        reason,
        f"node {node.region} has no route to region {target}: {why}",
        metadata={"admdvs": target, "node_region": node.region},
    )


def route(
    node: NodeSettings, target: str, field: str = "admdvs", unreachable: str = "NODE_UNREACHABLE"
) -> Route:
    """Where a request for region ``target`` goes from ``node`` (role, region, parent, children).

    A malformed ``target`` is ``INVALID_CODE`` naming ``field``; no route is ``unreachable``.
    """
    target = check_region(target, field)
    if target == node.region:
        return Route(target, Hop.HERE)
    owners = [child for child in node.children if region_contains(child.region, target)]
    if owners:
        owner = max(owners, key=lambda child: len(region_prefix(child.region)))
        return Route(target, Hop.DOWN, owner)
    if node.region == NATIONAL_REGION:
        raise _no_route(
            node, target, f"no node is configured for province {province_of(target, field)}", unreachable
        )
    if region_contains(node.region, target):
        return Route(target, Hop.HERE)
    if node.parent is None:
        raise _no_route(
            node, target, "it lies outside this node's region and the node has no parent", unreachable
        )
    return Route(target, Hop.UP, node.parent)


class Router:
    """One node's view of its neighbours: route decisions and a persistent client per peer.

    Each peer's client retries UNAVAILABLE per ``retry`` within ``deadline_s`` and has its own
    breaker (open after ``failure_threshold`` consecutive transport failures, a trial after
    ``cool_down_s``). ``clock``, ``sleep`` and ``jitter`` are injectable for tests.
    """

    def __init__(
        self,
        settings: NodeSettings,
        *,
        deadline_s: float = DEFAULT_DEADLINE_S,
        retry: RetryPolicy = PEER_RETRY,
        failure_threshold: int = 5,
        cool_down_s: float = 10.0,
        clock: Monotonic = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.vouches = Vouches(settings, NodeIntegrity(settings))
        """Every call to a peer carries this node's vouch, unless the caller passes one it relays."""
        self._deadline_s = deadline_s
        self._retry = retry
        self._failure_threshold = failure_threshold
        self._cool_down_s = cool_down_s
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._clients: dict[Peer, PeerClient] = {}
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()

    def route(self, target: str, field: str = "admdvs", unreachable: str = "NODE_UNREACHABLE") -> Route:
        """The decision of :func:`route` for this node, remembered for each region it found a way to.

        It depends on the target alone (the field and the reason only name a refusal, which is
        decided afresh each time): a relay asks it on every call it passes on.
        """
        decided = self._routes.get(target)
        if decided is None:
            decided = route(self.settings, target, field, unreachable)
            if len(self._routes) < _REMEMBERED_ROUTES:
                self._routes[target] = decided
        return decided

    def client(self, peer: Peer) -> PeerClient:
        """The one client (channel, breaker) this node keeps for ``peer``.

        Its calls carry this node's vouch, except those to the node's own services in process
        (:mod:`yidi_runtime.local_calls`): they run as the node itself, whatever vouch they
        carried, so none is signed for them.
        """
        with self._lock:
            client = self._clients.get(peer)
            if client is None:
                local = peer.address.startswith(local_calls.SCHEME)
                client = PeerClient(
                    peer,
                    self.settings.tls,
                    self._deadline_s,
                    retry=self._retry,
                    breaker=CircuitBreaker(self._failure_threshold, self._cool_down_s, self._clock),
                    clock=self._clock,
                    sleep=self._sleep,
                    jitter=self._jitter,
                    voucher=None if local else self.vouches.own,
                )
                self._clients[peer] = client
            return client

    def next_hop(
        self, target: str, field: str = "admdvs", unreachable: str = "NODE_UNREACHABLE"
    ) -> PeerClient | None:
        """The client carrying a request for ``target`` one hop on; None when this node handles it."""
        decided = self.route(target, field, unreachable)
        return None if decided.peer is None else self.client(decided.peer)

    def toward(self, target: str, field: str = "admdvs") -> PeerClient:
        """Like :meth:`next_hop`, but a request handled here goes to this node's own gRPC port.

        The outbox delivers every message through RPCs, so one for this node's own region
        reaches the local servicer the same way as one for a peer.
        """
        decided = self.route(target, field)
        if decided.peer is not None:
            return self.client(decided.peer)
        return self.client(Peer(self.settings.region, self.settings.self_address))

    def close(self) -> None:
        """Close every channel (at node shutdown)."""
        with self._lock:
            clients = list(self._clients.values())
        for client in clients:
            client.close()
