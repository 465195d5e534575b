"""What leaves the treatment node's outbox in batches: confirmations and journal entries.

The outbox sends one destination's messages one call at a time, in order. Under load many
settlements' confirmations (for one insured region) and journal entries (for the national
node) wait at once; sent together, one call crosses the relaying nodes instead of one per
settlement — and over wide-area links, where a four-hop call takes a round trip of every
link, one queue could otherwise carry only a handful of messages a second.

* Confirmations go as ``ConfirmSettlements``: each keeps its message id and gets its own
  outcome, so only a refused one is sent again.
* Journal entries go as one ``AppendJournalEntries`` of all their entries. The national
  journal records each entry once by its msgid, and the batch's own message id is derived
  from its members' ids, so a retry of the same batch is answered from the request log and
  a batch composed differently still records every entry once.
"""

from __future__ import annotations

import hashlib

from yidi.clearing.v1 import clearing_service_pb2 as clearing_api
from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi_core.errors import REASONS, DomainError
from yidi_runtime.outbox import Batching, Outcome

_SERVICE = insured_api.DESCRIPTOR.services_by_name["InsuredSettlementService"]
CONFIRM_SETTLEMENT = _SERVICE.methods_by_name["ConfirmSettlement"]
CONFIRM_SETTLEMENTS = _SERVICE.methods_by_name["ConfirmSettlements"]
APPEND_JOURNAL = clearing_api.DESCRIPTOR.services_by_name["ClearingService"].methods_by_name[
    "AppendJournalEntries"
]


def pack_confirmations(payloads: list[bytes]) -> insured_api.ConfirmSettlementsRequest:
    """One batch of queued confirmations, named and routed as its first."""
    confirmations = [insured_api.ConfirmSettlementRequest.FromString(payload) for payload in payloads]
    first = confirmations[0]
    return insured_api.ConfirmSettlementsRequest(
        request_id=first.request_id, route=first.route, confirmations=confirmations
    )


def unpack_confirmations(answer: bytes, _count: int) -> list[Outcome]:
    """Each confirmation's outcome: its own answer (with its receipt) when confirmed, else its refusal."""
    return [
        _refusal(outcome.refusal)
        if outcome.HasField("refusal")
        else outcome.answer.SerializeToString(deterministic=True)
        for outcome in insured_api.ConfirmSettlementsResponse.FromString(answer).outcomes
    ]


def _refusal(refusal: insured_api.ConfirmRefusal) -> DomainError:
    reason = refusal.reason if refusal.reason in REASONS else "INTERNAL"
    return DomainError(reason, refusal.message or f"refused: {refusal.reason}")


def pack_journal(payloads: list[bytes]) -> clearing_api.AppendJournalEntriesRequest:
    """One delivery of the queued journal messages' entries, in queue order, named after its members."""
    requests = [clearing_api.AppendJournalEntriesRequest.FromString(payload) for payload in payloads]
    members = hashlib.sha256("\n".join(request.request_id for request in requests).encode()).hexdigest()
    source = requests[0].source_admdvs
    return clearing_api.AppendJournalEntriesRequest(
        request_id=f"{source}:journal-batch:{members[:32]}",
        source_admdvs=source,
        entries=[entry for request in requests for entry in request.entries],
    )


def unpack_journal(_answer: bytes, count: int) -> list[Outcome]:
    """Answered OK, the journal holds every entry of the batch (newly or already): all delivered."""
    return [b""] * count


BATCHING = {
    CONFIRM_SETTLEMENT: Batching(CONFIRM_SETTLEMENTS, pack_confirmations, unpack_confirmations, limit=200),
    APPEND_JOURNAL: Batching(APPEND_JOURNAL, pack_journal, unpack_journal, limit=200),
}
"""The outbox deliverer's batching for the treatment side of settlement."""
