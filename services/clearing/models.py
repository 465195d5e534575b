"""Tables owned by the clearing service (table names start with `clearing_`)."""

from yidi_runtime.db import service_base

Base = service_base("clearing")
