"""Where a filing request is answered: the node hosting its insured region, from whichever node it reached.

A person's filings live only at their insured place's node, so an application, a read, a
cancellation or an eligibility question is relayed along the region tree to that node
(:mod:`yidi_runtime.relay`) with the vouch of the original principal: the node that answers
authorizes, logs (request log: idempotency) and audits the call as the one made by the app,
the window or the hospital, and the nodes on the way apply and log nothing. Where a request
goes is read from it (:func:`destination`):

- ``insuplc_admdvs`` (CreateFiling, CheckEligibility, GetFilingRules, and ListFilings when it
  names a region; ListFilings without one is answered where it arrives);
- ``filing_id`` for the methods naming a filing by id: every filing id begins with its
  insured region's six digits (:func:`~yidi_services.filing.filings.new_filing_id`, as every
  id ever issued did), so the id alone routes.

A national node without any province node below it is a single-node installation (a
development node, the filing tests): it answers for every region itself, as one node
hosting all would.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from yidi.filing.v1 import filing_service_pb2_grpc as api_grpc
from yidi_core.codes import NATIONAL_REGION
from yidi_core.errors import invalid
from yidi_runtime.relay import Region, Relay, Vouching
from yidi_runtime.routing import Router
from yidi_services.filing import access

UNREACHABLE = "INSURED_REGION_UNREACHABLE"
_BY_REGION = {
    "CreateFilingRequest",
    "CheckEligibilityRequest",
    "GetFilingRulesRequest",
    "ListFilingsRequest",
    "ListFilingRechecksRequest",
}
_BY_FILING_ID = {
    "GetFilingRequest",
    "ChangeFilingRequest",
    "CancelFilingRequest",
    "CompleteMaterialsRequest",
    "DecideFilingRecheckRequest",
}

Handler = TypeVar("Handler", bound=Callable[..., Any])


def destination(request: Message) -> Region | None:
    """The insured region ``request`` is answered at, naming the field it came from; None: here."""
    kind = request.DESCRIPTOR.name
    if kind in _BY_REGION:
        code = request.insuplc_admdvs.strip()  # type: ignore[attr-defined]
        if not code and kind == "ListFilingsRequest":
            return None
        return Region(code, "insuplc_admdvs", UNREACHABLE)
    if kind in _BY_FILING_ID:
        filing_id = request.filing_id.strip()  # type: ignore[attr-defined]
        if not filing_id:
            raise invalid("INVALID_ARGUMENT", "filing_id", "is required")
        return Region(filing_id[:6], "filing_id", UNREACHABLE)
    raise TypeError(f"{kind} is not a request answered at the insured place")


class FilingRelay:
    """One node's way of getting a filing request answered at its insured place's node."""

    def __init__(self, router: Router) -> None:
        settings = router.settings
        self._relay = Relay(router, api_grpc.FilingServiceStub, vouching=Vouching.CALLER)
        self._hosts_all = settings.region == NATIONAL_REGION and not settings.children

    def answer(
        self, method: str, request: Message, context: grpc.ServicerContext, here: Callable[[], Any]
    ) -> Any:
        """``here()`` at the insured place's node, for an operator of that region; elsewhere the next node's answer."""
        toward = destination(request)
        if toward is None:
            return here()

        def answered_here() -> Any:
            access.ensure_operator_of(toward.code)
            return here()

        if self._hosts_all:
            return answered_here()
        return self._relay.answer(method, request, context, toward, answered_here)


def routed(handler: Handler) -> Handler:
    """Run ``handler`` only at the insured place's node; elsewhere relay the request one hop on."""

    @functools.wraps(handler)
    def wrapper(self: Any, request: Message, context: grpc.ServicerContext) -> Message:
        answer: Message = self.relay.answer(
            handler.__name__, request, context, lambda: handler(self, request, context)
        )
        return answer

    return wrapper  # type: ignore[return-value]
