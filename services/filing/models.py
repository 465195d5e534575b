"""Tables owned by the filing service (table names start with `filing_`)."""

from yidi_runtime.db import service_base

Base = service_base("filing")
