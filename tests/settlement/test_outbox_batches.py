"""How the treatment node's outbox packs confirmations and journal entries into batches, and reads the answers."""

from __future__ import annotations

from yidi.clearing.v1 import clearing_service_pb2 as clearing_api
from yidi.clearing.v1 import journal_pb2
from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi.settlement.v1 import settlement_pb2
from yidi_core.errors import DomainError
from yidi_runtime.idempotency import MAX_REQUEST_ID
from yidi_services.settlement.outbox_batches import (
    pack_confirmations,
    pack_journal,
    unpack_confirmations,
    unpack_journal,
)


def journal_message(msgid: str) -> bytes:
    return clearing_api.AppendJournalEntriesRequest(
        request_id=f"{msgid}:journal", source_admdvs="110000", entries=[journal_pb2.JournalEntry(msgid=msgid)]
    ).SerializeToString()


def test_a_journal_batch_carries_its_members_entries_in_order_under_an_id_of_its_members() -> None:
    first, second, third = (journal_message(f"H1101050000120261126000000{n}") for n in range(3))
    batch = pack_journal([first, second])
    assert [entry.msgid for entry in batch.entries] == [
        "H11010500001202611260000000",
        "H11010500001202611260000001",
    ]
    assert batch.source_admdvs == "110000" and len(batch.request_id) <= MAX_REQUEST_ID
    assert pack_journal([first, second]).request_id == batch.request_id  # the same batch again: a replay
    assert pack_journal([first, second, third]).request_id != batch.request_id  # another batch
    assert pack_journal([second]).request_id != batch.request_id
    assert unpack_journal(
        clearing_api.AppendJournalEntriesResponse(appended_count=1).SerializeToString(), 2
    ) == [b"", b""]


def test_confirmations_travel_under_their_first_ones_route_and_come_back_one_outcome_each() -> None:
    route = settlement_pb2.Route(origin_admdvs="110000", destination_admdvs="131000", hops=["110000"])
    confirmations = [
        insured_api.ConfirmSettlementRequest(request_id=f"c{n}", route=route, original_request_id=f"a{n}")
        for n in range(2)
    ]
    batch = pack_confirmations([confirmation.SerializeToString() for confirmation in confirmations])
    assert (batch.request_id, batch.route) == ("c0", route)
    assert list(batch.confirmations) == confirmations

    confirmed = insured_api.ConfirmSettlementResponse(state=insured_api.HOLD_STATE_CONFIRMED)
    answer = insured_api.ConfirmSettlementsResponse(
        outcomes=[
            insured_api.ConfirmOutcome(request_id="c0", answer=confirmed),
            insured_api.ConfirmOutcome(
                request_id="c1", refusal=insured_api.ConfirmRefusal(reason="CORRECTED")
            ),
            insured_api.ConfirmOutcome(request_id="c2", refusal=insured_api.ConfirmRefusal(reason="NO_SUCH")),
        ]
    ).SerializeToString()
    done, corrected, unknown = unpack_confirmations(answer, 3)
    assert isinstance(done, bytes) and insured_api.ConfirmSettlementResponse.FromString(done) == confirmed
    assert isinstance(corrected, DomainError) and corrected.reason_code == "CORRECTED"
    assert (
        isinstance(unknown, DomainError)
        and unknown.reason_code == "INTERNAL"
        and "NO_SUCH" in unknown.message
    )
