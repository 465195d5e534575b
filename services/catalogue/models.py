"""Tables owned by the catalogue service (table names start with `catalogue_`)."""

from yidi_runtime.db import service_base

Base = service_base("catalogue")
