"""Tables owned by the settlement service (table names start with `settlement_`).

The request log and the outbox are shared by both halves of the service; the treatment
side's tables live in :mod:`~yidi_services.settlement.treatment.models` and the insured
side's in :mod:`~yidi_services.settlement.insured.models`.
"""

from yidi_runtime.db import service_base
from yidi_runtime.idempotency import request_model
from yidi_runtime.outbox import outbox_model

Base = service_base("settlement")
RequestRecord = request_model(Base)
OutboxMessage = outbox_model(Base)
