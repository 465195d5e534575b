"""Tables owned by the settlement service (table names start with `settlement_`)."""

from yidi_runtime.db import service_base

Base = service_base("settlement")
