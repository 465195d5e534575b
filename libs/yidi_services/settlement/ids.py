"""Message ids of the hops a settlement makes, derived from the HIS's own ``request_id``.

A msgid is unique per sender, not across senders (codes.md: it starts with the sender's
code, but nothing stops an institution from sending another's), so across nodes an
institution's request is named by its *key*: the institution's code and its msgid
(:func:`settlement_key`). A retry of ``Settle`` carries the same ``request_id``, so every
downstream message it causes carries the same derived id and finds the effect already made
(DESIGN.md principle 4). The suffix keeps the ids of different steps apart in one request
log (a province node can be both the treatment and the insured node of a settlement).
"""

from __future__ import annotations

KEY_SEPARATOR = "/"


def settlement_key(fixmedins_code: str, msgid: str) -> str:
    """``H33040100011/<msgid>``: an institution's request, named so no other institution's can collide with it."""
    return f"{fixmedins_code}{KEY_SEPARATOR}{msgid}"


def split_key(key: str) -> tuple[str, str]:
    """The institution and the msgid of a :func:`settlement_key` (no institution for any other id)."""
    code, separator, msgid = key.partition(KEY_SEPARATOR)
    return (code, msgid) if separator else ("", key)


def derived_id(request_id: str, step: str) -> str:
    """The id of ``step`` (e.g. ``"apply"``, ``"confirm"``, ``"journal"``) caused by ``request_id``."""
    return f"{request_id}:{step}"


def origin_id(message_id: str, step: str) -> str | None:
    """The request id whose ``step`` ``message_id`` is (the inverse of :func:`derived_id`); None for another id."""
    suffix = f":{step}"
    return message_id.removesuffix(suffix) if message_id.endswith(suffix) else None
