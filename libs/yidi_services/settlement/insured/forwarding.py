"""Carrying an insured-side request along the region tree to the node hosting the insured region.

Every method of InsuredSettlementService is handled only by the destination node; a node on
the way forwards the request unchanged (its seal too) but for its own region appended to ``route.hops``,
within what is left of its caller's deadline, and returns the next node's answer (or its
refusal, with the same reason) as is. The forwarded call carries the vouch it arrived with,
or at its first hop this node's vouch for whoever it authenticated (:mod:`yidi_runtime.vouches`),
so the destination authorizes the original principal, not the relay. A forwarding node
applies nothing and logs no request, so a retry simply travels again to the one node that
remembers it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as api_grpc
from yidi_core.errors import invalid
from yidi_runtime.integrity import Sealed
from yidi_runtime.routing import Router

MAX_HOPS = 6
"""The deepest path the tree allows (treatment city, province, national, province, city, and spare)."""
_NO_DEADLINE_S = 3600.0
"""gRPC reports a call without deadline as one far in the future: the router's default applies then."""
UNREACHABLE = "INSURED_REGION_UNREACHABLE"
ROUTED = Sealed(transient=("route.hops",))
"""A sealed request of this service: its seal covers everything but the hops each forwarding node appends."""
_FALLBACK_DESTINATION = {"CreditAccountRequest": "insuplc_admdvs", "GetAccumulatorsRequest": "psn_no"}

Handler = TypeVar("Handler", bound=Callable[..., Any])


def destination(request: Any) -> tuple[str, str]:
    """The insured region a request is for, and the field that names it.

    ``route`` is optional on CreditAccount (its ``insuplc_admdvs`` says) and GetAccumulators
    (a person number starts with its insured region's code).
    """
    if request.route.destination_admdvs:
        return request.route.destination_admdvs, "route.destination_admdvs"
    field = _FALLBACK_DESTINATION.get(request.DESCRIPTOR.name)
    if field is None:
        return "", "route.destination_admdvs"
    return getattr(request, field)[:6], field


class Forwarder:
    """Decides whether this node handles a request, and forwards it one hop when it does not."""

    def __init__(self, router: Router) -> None:
        self._router = router
        self._region = router.settings.region

    def forward(self, method: str, request: Message, context: grpc.ServicerContext) -> Message | None:
        """The next node's answer, or None when this node hosts the destination and must answer."""
        target, field = destination(request)
        client = self._router.next_hop(target, field, UNREACHABLE)
        if client is None:
            return None
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
        forwarded.route.destination_admdvs = target  # type: ignore[attr-defined]
        forwarded.route.hops.append(self._region)  # type: ignore[attr-defined]
        remaining = context.time_remaining()
        stub = client.stub(api_grpc.InsuredSettlementServiceStub)
        answer: Message = client.call(
            getattr(stub, method),
            forwarded,
            deadline_s=None if remaining is None or remaining > _NO_DEADLINE_S else max(remaining, 0.001),
            unreachable=UNREACHABLE,
            vouch=self._router.vouches.for_relay(forwarded),
        )
        return answer


def routed(handler: Handler) -> Handler:
    """Run ``handler`` only at the destination node; elsewhere forward the request one hop on."""

    @functools.wraps(handler)
    def wrapper(self: Any, request: Message, context: grpc.ServicerContext) -> Message:
        answer = self.forwarder.forward(handler.__name__, request, context)
        return answer if answer is not None else handler(self, request, context)

    return wrapper  # type: ignore[return-value]
