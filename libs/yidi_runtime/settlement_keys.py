"""The settlement key and derived message ids: a contract between nodes, not a detail of one service.

The scheme, exactly (docs/integration.md §6, "Ids across nodes"):

- **Settlement key** ``<fixmedins_code>/<msgid>``: an institution's request across nodes. A
  msgid (the HIS's ``request_id``) is unique per sender, not across senders (codes.md: it
  starts with the sender's code, but nothing stops an institution from sending another's),
  so the institution's code comes first, separated by ``/`` (:data:`KEY_SEPARATOR`). The
  code holds no ``/``, so :func:`split_key` splits at the first one; an id without ``/``
  has no institution.
- **Derived id** ``<id>:<step>``: the message that ``step`` of a request sends, where
  ``<id>`` is usually a settlement key. The steps are ``apply`` (ApplySettlement, whose id
  also names the hold at the insured node), ``confirm`` (ConfirmSettlement), ``journal``
  (AppendJournalEntries), ``revert`` (RevertSettlement, from the key of the reversing or
  correcting request) and ``fence`` (FenceSettlement, from the key of the held application);
  reconciliation's repair resolves a hold as ``<discrepancy_id>:resolve``, and a
  pre-settlement's dry run is ``<mdtrt_id>:presettle-<12 hex digits>``. :func:`origin_id`
  recovers ``<id>`` by removing the ``:<step>`` suffix.

A retry of ``Settle`` carries the same ``request_id``, so every downstream message it
causes carries the same derived id and finds the effect already made (DESIGN.md principle
4). The suffix keeps the ids of different steps apart in one request log (a province node
can be both the treatment and the insured node of a settlement). Treatment, insured and
clearing sides all read and write these ids, so they live here, in the runtime they share.
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
