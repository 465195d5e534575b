"""Tables owned by the registry service (table names start with `registry_`)."""

from yidi_runtime.db import service_base

Base = service_base("registry")
