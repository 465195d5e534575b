"""Confirmations leave the treatment node's outbox in batches (``ConfirmSettlements``).

Under load, many settlements for one insured region wait in the outbox at once; sent
together, one call crosses the relaying nodes instead of one per settlement. Each
confirmation keeps its own message id and its own outcome at the insured node.
"""

from __future__ import annotations

from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi_core.errors import REASONS, DomainError
from yidi_runtime.outbox import Batching, Outcome

_SERVICE = insured_api.DESCRIPTOR.services_by_name["InsuredSettlementService"]
CONFIRM_SETTLEMENT = _SERVICE.methods_by_name["ConfirmSettlement"]
CONFIRM_SETTLEMENTS = _SERVICE.methods_by_name["ConfirmSettlements"]


def pack(payloads: list[bytes]) -> insured_api.ConfirmSettlementsRequest:
    """One batch of queued confirmations, named and routed as its first."""
    confirmations = [insured_api.ConfirmSettlementRequest.FromString(payload) for payload in payloads]
    first = confirmations[0]
    return insured_api.ConfirmSettlementsRequest(
        request_id=first.request_id, route=first.route, confirmations=confirmations
    )


def unpack(answer: bytes) -> list[Outcome]:
    """Each confirmation's outcome: None when confirmed, else its refusal."""
    return [
        _refusal(outcome.refusal) if outcome.HasField("refusal") else None
        for outcome in insured_api.ConfirmSettlementsResponse.FromString(answer).outcomes
    ]


def _refusal(refusal: insured_api.ConfirmRefusal) -> DomainError:
    reason = refusal.reason if refusal.reason in REASONS else "INTERNAL"
    return DomainError(reason, refusal.message or f"refused: {refusal.reason}")


BATCHING = {
    CONFIRM_SETTLEMENT: Batching(CONFIRM_SETTLEMENTS, pack, unpack, limit=200),
}
"""The outbox deliverer's batching for the treatment side of settlement."""
