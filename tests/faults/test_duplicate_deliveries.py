"""Duplicate deliveries, over mutual TLS: every message sent twice takes effect once.

The federation runs mutual TLS, so each repeat is presented with the sender's own node
certificate, straight to the receiving node, and carries the originating node's seal:

- the HIS sends one Settle again after its answer, and another from four threads at once;
- the confirmations and journal entries Hebei's outbox delivered are delivered again, byte
  for byte, by the node that delivers them (the national node to Guangdong; Hebei to the
  national node), each answered as the first time (a journal entry that first went in a
  batch, as a duplicate); the journal entries once more in a batch of another id, answered
  as duplicates;
- an ApplySettlement sealed by Hebei arrives twice at Guangdong from the national node —
  an application no Settle stands behind: applied once, and when its hold times out
  Guangdong asks Hebei, which fences the Settle it never recorded, and voids it; the
  reconciliation then finds nothing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from faults_support import (
    GUANGDONG,
    HEBEI,
    POLL_S,
    SHENZHEN,
    SHIJIAZHUANG_HOSPITAL,
    Visit,
    accumulators,
    audit,
    changes_of,
    deliver_again,
    enrol_and_file,
    fault_federation,
    insured_records,
    ledger_balances,
    open_visits,
    reconcile_and_repair,
    seal_as,
    sent_by,
    settle_as_his,
    stage_of,
    wait_drained,
)

from yidi.clearing.v1 import clearing_service_pb2 as clearing_api
from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi.settlement.v1 import settlement_pb2
from yidi_core.codes import NATIONAL_REGION
from yidi_harness.polling import eventually
from yidi_runtime.peers import message_id
from yidi_services.settlement.treatment.settle import APPEND_JOURNAL, CONFIRM_SETTLEMENT

APPLY_SETTLEMENT = CONFIRM_SETTLEMENT.containing_service.methods_by_name["ApplySettlement"]


def application_without_settle(visit: Visit) -> insured_api.ApplySettlementRequest:
    """An application for the visit's bill under a msgid no Settle used, as Hebei would route it."""
    msgid = message_id(SHIJIAZHUANG_HOSPITAL)
    totals = insured_api.ClassifiedTotals()
    for line in visit.uploaded.results:
        totals.medfee_sumamt_fen += line.det_item_fee_sumamt_fen
        totals.fulamt_ownpay_amt_fen += line.fulamt_ownpay_amt_fen
        totals.overlmt_selfpay_fen += line.overlmt_amt_fen
        totals.preselfpay_amt_fen += line.preselfpay_amt_fen
        totals.inscp_scp_amt_fen += line.inscp_scp_amt_fen
    return insured_api.ApplySettlementRequest(
        request_id=f"{SHIJIAZHUANG_HOSPITAL}/{msgid}:apply",
        route=settlement_pb2.Route(
            origin_admdvs=HEBEI, destination_admdvs=SHENZHEN, hops=[HEBEI, NATIONAL_REGION]
        ),
        psn_no=visit.psn_no,
        insutype="310",
        facts=visit.stay.facts,
        items=visit.uploaded.results,
        totals=totals,
        setl_id=f"{HEBEI}{msgid[-24:]}",
        catalogue_version=visit.uploaded.catalogue_version,
    )


@pytest.mark.timeout(180)
def test_every_message_delivered_twice_takes_effect_once(tmp_path: Path) -> None:
    with fault_federation(tmp_path, mtls=True) as federation:
        stage = stage_of(federation)
        again, racing, unsettled = open_visits(stage, enrol_and_file(stage, 3))
        window = stage.window(SHIJIAZHUANG_HOSPITAL)

        first = settle_as_his(window, again, within_s=30)
        assert first.settlement is not None, first
        assert window.settle(again.request) == first.settlement
        with ThreadPoolExecutor(max_workers=4) as pool:
            raced = list(pool.map(lambda _: settle_as_his(window, racing, within_s=30), range(4)))
        assert raced[0].settlement is not None, raced[0]
        assert all(outcome.settlement == raced[0].settlement for outcome in raced), raced
        wait_drained(federation)

        confirmations = sent_by(federation, HEBEI, CONFIRM_SETTLEMENT)
        journalled = sent_by(federation, HEBEI, APPEND_JOURNAL)
        assert len(confirmations) == len(journalled) == 2
        for _, payload in confirmations:
            for _ in range(2):
                answer = insured_api.ConfirmSettlementResponse.FromString(
                    deliver_again(federation, NATIONAL_REGION, GUANGDONG, CONFIRM_SETTLEMENT, payload)
                )
                assert (answer.state, answer.reapplied) == (insured_api.HOLD_STATE_CONFIRMED, False)
        for destination, payload in journalled:
            assert destination == NATIONAL_REGION
            [answer] = {
                deliver_again(federation, HEBEI, NATIONAL_REGION, APPEND_JOURNAL, payload) for _ in "12"
            }
            # Sent alone, the message is replayed (1 appended); sent in a batch with the other
            # settlement's, its entry is already recorded (1 duplicate): either way, once.
            counts = clearing_api.AppendJournalEntriesResponse.FromString(answer)
            assert (counts.appended_count, counts.duplicate_count) in {(1, 0), (0, 1)}
            rebatched = clearing_api.AppendJournalEntriesRequest.FromString(payload)
            rebatched.request_id = message_id(HEBEI)  # the same entries in another batch
            appended = clearing_api.AppendJournalEntriesResponse.FromString(
                deliver_again(
                    federation, HEBEI, NATIONAL_REGION, APPEND_JOURNAL, rebatched.SerializeToString()
                )
            )
            assert (appended.appended_count, appended.duplicate_count) == (0, 1)

        apply = application_without_settle(unsettled)
        seal_as(federation, HEBEI, apply)
        assert apply.HasField("payload_signature")
        applied = [
            deliver_again(federation, NATIONAL_REGION, GUANGDONG, APPLY_SETTLEMENT, apply.SerializeToString())
            for _ in range(2)
        ]
        assert applied[0] == applied[1]
        result = insured_api.ApplySettlementResponse.FromString(applied[0]).result
        year = unsettled.stay.service_date.year
        moved = changes_of(settlement_pb2.Settlement(result=result))
        assert moved and accumulators(federation, unsettled.psn_no, year) == moved

        # No Settle follows: when the hold times out, Guangdong asks Hebei, which fences the Settle
        # it never recorded, and the hold is voided — by Hebei's answer, not by a guess.
        msgid = apply.request_id.removesuffix(":apply").partition("/")[2]
        eventually(
            lambda: any(
                record.msgid == msgid and record.hold_state == insured_api.HOLD_STATE_VOIDED
                for record in insured_records(federation)
            ),
            within_s=60,
            interval_s=POLL_S,
            what="Guangdong voiding the hold Hebei never recorded",
        )
        assert accumulators(federation, unsettled.psn_no, year) == {}
        assert reconcile_and_repair(federation, stage.today) == []
        audit(federation, [first, raced[0]])
        ledger_balances(federation)
