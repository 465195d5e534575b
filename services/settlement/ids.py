"""Message ids of the hops a settlement makes, derived from the HIS's own ``request_id``.

A retry of ``Settle`` carries the same ``request_id``, so every downstream message it
causes carries the same derived id and finds the effect already made (DESIGN.md
principle 4). The suffix keeps the ids of different steps apart in one request log (a
province node can be both the treatment and the insured node of a settlement).
"""

from __future__ import annotations


def derived_id(request_id: str, step: str) -> str:
    """The id of ``step`` (e.g. ``"apply"``, ``"confirm"``, ``"journal"``) caused by ``request_id``."""
    return f"{request_id}:{step}"


def origin_id(message_id: str, step: str) -> str | None:
    """The request id whose ``step`` ``message_id`` is (the inverse of :func:`derived_id`); None for another id."""
    suffix = f":{step}"
    return message_id.removesuffix(suffix) if message_id.endswith(suffix) else None
