"""Carrying an insured-side request along the region tree to the node hosting the insured region.

Every method of InsuredSettlementService is handled only by the destination node; a node on
the way relays the request (:mod:`yidi_runtime.relay`): unchanged (its seal too) but for its
own region appended to ``route.hops``, within what is left of its caller's deadline, with the
vouch of the original principal, returning the next node's answer or refusal as is. What is
this service's own is where a request goes (:func:`destination`) and the reason an
unreachable insured region is refused with.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from yidi_runtime.integrity import Sealed
from yidi_runtime.relay import Region

UNREACHABLE = "INSURED_REGION_UNREACHABLE"
ROUTED = Sealed(transient=("route.hops",))
"""A sealed request of this service: its seal covers everything but the hops each forwarding node appends."""
_FALLBACK_DESTINATION = {
    "CreditAccountRequest": "insuplc_admdvs",
    "GetAccumulatorsRequest": "psn_no",
    "ReimburseSelfPayBillRequest": "insuplc_admdvs",
}

Handler = TypeVar("Handler", bound=Callable[..., Any])


def destination(request: Any) -> Region:
    """The insured region a request is for, naming the field it came from.

    ``route`` is optional on CreditAccount and ReimburseSelfPayBill (their ``insuplc_admdvs``
    says) and GetAccumulators (a person number starts with its insured region's code).
    """
    if request.route.destination_admdvs:
        return Region(request.route.destination_admdvs, "route.destination_admdvs", UNREACHABLE)
    field = _FALLBACK_DESTINATION.get(request.DESCRIPTOR.name)
    if field is None:
        return Region("", "route.destination_admdvs", UNREACHABLE)
    return Region(getattr(request, field)[:6], field, UNREACHABLE)


def routed(handler: Handler) -> Handler:
    """Run ``handler`` only at the destination node; elsewhere relay the request one hop on."""

    @functools.wraps(handler)
    def wrapper(self: Any, request: Message, context: grpc.ServicerContext) -> Message:
        answer: Message = self.relay.answer(
            handler.__name__, request, context, destination(request), lambda: handler(self, request, context)
        )
        return answer

    return wrapper  # type: ignore[return-value]
