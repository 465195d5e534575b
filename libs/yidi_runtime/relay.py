"""Passing a call on along the region tree: the one way every service forwards a request.

A node answers a request itself only when it is the node the request must reach; anywhere
else it passes the request on, one hop, to the next node toward it (DESIGN.md principle 3),
through the node's one :class:`~yidi_runtime.routing.Router`. Where a request must go is a
:class:`Region` (tree routing), or :attr:`Up.PARENT` / :attr:`Up.NATIONAL`. A relayed call

- carries a vouch (:mod:`yidi_runtime.vouches`): by default the one it arrived with, or at
  its first hop this node's vouch for whoever it authenticated, so the node that answers
  authorizes the original principal; a service whose node asks on its own behalf
  (:attr:`Vouching.NODE`) sends this node's own vouch instead;
- gets what is left of its caller's deadline (the router's default when the caller set none);
- if the request has a ``route``, names its destination there and has this node's region
  appended to ``route.hops``, refused as a loop when the node is already on it or beyond
  :data:`MAX_HOPS` nodes (the vouch's digest leaves the hops out, so it still holds);
- returns the next node's answer, or its refusal with the same gRPC code, reason, message
  and metadata (:func:`~yidi_runtime.peers.peer_refusal`): the caller reads what the node
  that decided said. A peer that does not answer is ``NODE_UNREACHABLE``, or the reason a
  :class:`Region` names for it.

The relay applies and logs nothing, so a retry simply travels again to the one node that
remembers the request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from yidi_core.codes import NATIONAL_REGION
from yidi_core.errors import DomainError, invalid
from yidi_runtime.peers import PeerClient
from yidi_runtime.resilience import RetryPolicy
from yidi_runtime.routing import Router

MAX_HOPS = 6
"""The deepest path the tree allows (treatment city, province, national, province, city, and spare)."""
NO_DEADLINE_S = 3600.0
"""gRPC reports a call without deadline as one far in the future: the router's default applies then."""

Request = TypeVar("Request", bound=Message)
Answer = TypeVar("Answer")


@dataclass(frozen=True)
class Region:
    """Toward the node of region ``code`` by tree routing.

    A malformed code is ``INVALID_CODE`` naming ``field``; a region no node can reach, or a
    peer on the way that does not answer, is ``unreachable``.
    """

    code: str
    field: str = "admdvs"
    unreachable: str = "NODE_UNREACHABLE"


class Up(Enum):
    """Toward the root of the tree."""

    PARENT = "parent"
    """The parent; answered here at a node without one (it holds everything it knows)."""
    NATIONAL = "national"
    """The national node; a node without a parent cannot reach it and refuses."""


Destination = Region | Up


class Vouching(Enum):
    """On whose behalf a relayed call goes."""

    CALLER = "caller"
    """The original principal's: the next node authorizes whoever made the call."""
    NODE = "node"
    """This node's own: the service asks as the node (its rules are written for nodes, or
    it keeps the answer for every caller)."""


def remaining_s(context: grpc.ServicerContext) -> float | None:
    """What is left of the running call's deadline; None when it has none (the router's default then)."""
    remaining = context.time_remaining()
    return None if remaining is None or remaining > NO_DEADLINE_S else max(remaining, 0.001)


class Relay:
    """One service's way of passing calls on, over the node's router.

    ``stub`` is the service's generated stub type, ``vouching`` on whose behalf its calls go
    on, and ``retry`` (optional) replaces the router's retry policy for them.
    """

    def __init__(
        self,
        router: Router,
        stub: Callable[[grpc.Channel], Any],
        *,
        vouching: Vouching = Vouching.CALLER,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._router = router
        self._stub = stub
        self._vouching = vouching
        self._retry = retry
        self._region = router.settings.region

    def next_hop(self, toward: Destination) -> PeerClient | None:
        """The client of the next node toward ``toward``; None when this node answers."""
        settings = self._router.settings
        if isinstance(toward, Region):
            return self._router.next_hop(toward.code, toward.field, toward.unreachable)
        if toward is Up.NATIONAL and settings.region == NATIONAL_REGION:
            return None
        if settings.parent is None:
            if toward is Up.PARENT:
                return None
            raise DomainError(
                "PERMISSION_DENIED_REGION",
                f"this call is answered at the national node {NATIONAL_REGION}; "
                f"node {settings.region} has no parent to pass it to",
                metadata={"node_region": settings.region},
            )
        return self._router.client(settings.parent)

    def answer(
        self,
        method: str,
        request: Request,
        context: grpc.ServicerContext,
        toward: Destination,
        here: Callable[[], Answer],
    ) -> Answer:
        """``here()`` when this node is where ``request`` must go; else the next node's answer to ``method``."""
        client = self.next_hop(toward)
        if client is None:
            return here()
        answer: Answer = self.pass_on(client, method, request, context, toward)
        return answer

    def pass_on(
        self,
        client: PeerClient,
        method: str,
        request: Request,
        context: grpc.ServicerContext,
        toward: Destination | None = None,
    ) -> Any:
        """``client``'s answer to ``method(request)``, relayed as the module says; its refusal raised unchanged.

        ``toward`` is where the request is going, when the caller resolved ``client`` from it.
        """
        forwarded = self._routed(request, toward)
        vouches = self._router.vouches
        vouch = vouches.for_relay(forwarded) if self._vouching is Vouching.CALLER else vouches.own(forwarded)
        return client.call(
            getattr(client.stub(self._stub), method),
            forwarded,
            deadline_s=remaining_s(context),
            unreachable=toward.unreachable if isinstance(toward, Region) else "NODE_UNREACHABLE",
            vouch=vouch,
            retry=self._retry,
        )

    def _routed(self, request: Request, toward: Destination | None) -> Request:
        """``request`` as the next node gets it: a routed one with its destination and this node among its hops."""
        if "route" not in request.DESCRIPTOR.fields_by_name:
            return request
        hops = list(request.route.hops)  # type: ignore[attr-defined]
        if self._region in hops:
            raise invalid(
                "INVALID_ARGUMENT",
                "route.hops",
                f"the request already passed node {self._region} ({' → '.join(hops)}): a routing loop",
            )
        if len(hops) >= MAX_HOPS:
            raise invalid("INVALID_ARGUMENT", "route.hops", f"the request passed more than {MAX_HOPS} nodes")
        forwarded = type(request)()
        forwarded.CopyFrom(request)
        if isinstance(toward, Region):
            forwarded.route.destination_admdvs = toward.code  # type: ignore[attr-defined]
        forwarded.route.hops.append(self._region)  # type: ignore[attr-defined]
        return forwarded
