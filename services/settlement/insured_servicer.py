"""InsuredSettlementService: the insured-place half of a settlement (placeholder, being built)."""

from __future__ import annotations

from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as api_grpc
from yidi_runtime.routing import Router
from yidi_runtime.service import BackgroundWorker, ServiceContext
from yidi_runtime.wire import Clock


class InsuredSettlementServicer(api_grpc.InsuredSettlementServiceServicer):
    """Resolves persons and applies classified bills under the insured policy."""

    def __init__(self, context: ServiceContext, router: Router, clock: Clock) -> None:
        self._context = context
        self._router = router
        self._clock = clock

    def workers(self) -> list[BackgroundWorker]:
        """Background work the node runs for this half (voiding expired holds)."""
        return []
