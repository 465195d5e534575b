"""SettlementService: the HIS-facing treatment-place half of a settlement (placeholder, being built)."""

from __future__ import annotations

from yidi.settlement.v1 import settlement_service_pb2_grpc as api_grpc
from yidi_runtime.outbox import Outbox
from yidi_runtime.routing import Router
from yidi_runtime.service import ServiceContext
from yidi_runtime.wire import Clock


class SettlementServicer(api_grpc.SettlementServiceServicer):
    """Visits, fee lines and settlements at the treatment-place node."""

    def __init__(self, context: ServiceContext, router: Router, outbox: Outbox, clock: Clock) -> None:
        self._context = context
        self._router = router
        self._outbox = outbox
        self._clock = clock
