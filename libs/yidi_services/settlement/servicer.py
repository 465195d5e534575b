"""The settlement service on a node: the HIS-facing treatment side, the insured side and the large-bill audit.

Both halves share the node's router (one persistent client per neighbouring node) and the
service's request-log table. The treatment side queues confirmations and journal entries in
the service's outbox, whose deliverer runs for as long as the node does; the insured side
only answers.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from yidi.settlement.v1 import audit_case_service_pb2 as audit_api
from yidi.settlement.v1 import audit_case_service_pb2_grpc as audit_grpc
from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as insured_grpc
from yidi.settlement.v1 import settlement_service_pb2 as treatment_api
from yidi.settlement.v1 import settlement_service_pb2_grpc as treatment_grpc
from yidi_runtime.outbox import Outbox, OutboxDeliverer
from yidi_runtime.service import ServiceContext
from yidi_runtime.wire import Clock, wall_clock
from yidi_services.settlement.audit_servicer import AuditCaseServicer
from yidi_services.settlement.insured.servicer import InsuredSettlementServicer
from yidi_services.settlement.models import OutboxMessage
from yidi_services.settlement.outbox_batches import BATCHING
from yidi_services.settlement.treatment.servicer import SettlementServicer

OUTBOX_LINGER_S = 0.1
"""How long confirmations and journal entries wait for company: a busy window's settlements then
leave as one batched call, at the price of 100 ms more in a hold that lasts minutes."""


def register(server: grpc.Server, context: ServiceContext, clock: Clock = wall_clock) -> Sequence[str]:
    """Add both settlement services to a node's server; returns the gRPC service names."""
    router = context.router
    outbox = Outbox(OutboxMessage, clock)
    insured = InsuredSettlementServicer(context, router, clock)
    treatment = SettlementServicer(context, router, outbox, clock)
    for worker in (
        OutboxDeliverer(
            outbox,
            context.database,
            router,
            context.metrics_registry,
            batching=BATCHING,
            linger_s=OUTBOX_LINGER_S,
            on_delivered=treatment.receipts.on_delivered,
        ),
        *insured.workers(),
    ):
        context.run_in_background(worker)
    insured_grpc.add_InsuredSettlementServiceServicer_to_server(insured, server)
    treatment_grpc.add_SettlementServiceServicer_to_server(treatment, server)
    audit_grpc.add_AuditCaseServiceServicer_to_server(
        AuditCaseServicer(context, router, outbox, clock), server
    )
    names = [
        treatment_api.DESCRIPTOR.services_by_name["SettlementService"].full_name,
        insured_api.DESCRIPTOR.services_by_name["InsuredSettlementService"].full_name,
        audit_api.DESCRIPTOR.services_by_name["AuditCaseService"].full_name,
    ]
    # A settlement between two places, its receipts and its journal travel through the parent.
    context.needs_parent(*names)
    return names
