"""Every record has an owner: two Beijing hospitals, one trying what the other owns.

A msgid is unique per sender, not across senders (codes.md), so the Beijing node keeps each
institution's request ids apart: a hospital that sends another's next msgid takes nothing from
it, and one that corrects (冲正) another's msgid corrects only its own request of that id. An
institution reads only its own visits, settlements and bills — whether or not it sends an
envelope — and lists only its own records, whatever filter it sends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from loading import BEIJING, LANGFANG, beijing_tree, load_insured
from treatment_his import (
    DRUGS_FEN,
    HOSPITAL,
    NEIGHBOUR,
    correct_request,
    diabetes_visit,
    envelope,
    msgid,
    open_visit,
    refusal,
    settle_request,
    upload,
)

from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as insured_grpc
from yidi.settlement.v1 import settlement_pb2
from yidi.settlement.v1 import settlement_service_pb2 as api
from yidi.settlement.v1 import settlement_service_pb2_grpc as api_grpc
from yidi_runtime.auth import PRINCIPAL_HEADER
from yidi_runtime.server import Node
from yidi_testing import error_details

AS_HOSPITAL = ((PRINCIPAL_HEADER, f"institution/{HOSPITAL}"),)
AS_NEIGHBOUR = ((PRINCIPAL_HEADER, f"institution/{NEIGHBOUR}"),)
NEIGHBOURS_ENVELOPE = envelope(NEIGHBOUR, "110105")


def denied_field(call: Callable[[], object]) -> str:
    """The field a PERMISSION_DENIED refusal names ("" for a record of another owner)."""
    try:
        call()
    except grpc.RpcError as error:
        assert error.code() is grpc.StatusCode.PERMISSION_DENIED, error
        return str(error_details(error)["ErrorInfo"].metadata.get("field", ""))
    raise AssertionError("answered")


@dataclass(frozen=True)
class Beijing:
    """The Beijing tree with the Langfang retiree filed: a channel to the Beijing node, the retiree's psn_no."""

    nodes: dict[str, Node]
    channel: grpc.Channel
    psn_no: str


@pytest.fixture
def beijing(tmp_path: Path, database_factory: Callable[[], str | None]) -> Iterator[Beijing]:
    with (
        beijing_tree(tmp_path, database_factory) as nodes,
        grpc.insecure_channel(nodes[BEIJING].address) as channel,
    ):
        yield Beijing(nodes, channel, load_insured(nodes))


def test_request_ids_and_records_are_the_institutions_own(beijing: Beijing) -> None:
    nodes, psn_no = beijing.nodes, beijing.psn_no
    stub = api_grpc.SettlementServiceStub(beijing.channel)
    taken = msgid(NEIGHBOUR)  # the neighbour's next msgid, sent first by the hospital
    mine = stub.RegisterVisit(diabetes_visit(psn_no, taken), metadata=AS_HOSPITAL, timeout=20).visit
    theirs = stub.RegisterVisit(
        diabetes_visit(psn_no, taken, envelope=NEIGHBOURS_ENVELOPE), metadata=AS_NEIGHBOUR, timeout=20
    ).visit
    assert mine.mdtrt_id != theirs.mdtrt_id and theirs.facts.fixmedins_code == NEIGHBOUR

    upload(stub, mine.mdtrt_id)
    settle_id = msgid()
    settled = stub.Settle(settle_request(mine.mdtrt_id, settle_id), metadata=AS_HOSPITAL, timeout=30)
    settlement = settled.settlement

    # The neighbour corrects the hospital's msgid: its own request of that id, which never was.
    correction = correct_request(
        settle_id, api.CORRECTED_OPERATION_SETTLE, envelope=NEIGHBOURS_ENVELOPE, psn_no=psn_no
    )
    answer = stub.Correct(correction, metadata=AS_NEIGHBOUR, timeout=30)
    assert answer.outcome == api.CORRECTION_OUTCOME_NOTHING_TO_UNDO
    found = stub.GetSettlement(
        api.GetSettlementRequest(envelope=envelope(), setl_id=settlement.setl_id), metadata=AS_HOSPITAL
    ).settlement
    assert not found.reversed and found == settlement
    with grpc.insecure_channel(nodes[LANGFANG].address) as insured:
        held = insured_grpc.InsuredSettlementServiceStub(insured).GetAccumulators(
            insured_api.GetAccumulatorsRequest(psn_no=psn_no, year=2022), timeout=10
        )
    assert sum(value.value_fen for value in held.accumulators) > 0  # still applied

    # The neighbour reads nothing of the hospital's: not by id, not without an envelope, not by listing.
    by_id = api.GetSettlementRequest(envelope=NEIGHBOURS_ENVELOPE, setl_id=settlement.setl_id)
    assert refusal(lambda: stub.GetSettlement(by_id, metadata=AS_NEIGHBOUR))[1] == "PERMISSION_DENIED_REGION"
    bare = api.GetSettlementRequest(setl_id=settlement.setl_id)
    assert denied_field(lambda: stub.GetSettlement(bare, metadata=AS_NEIGHBOUR)) == "envelope.fixmedins_code"
    by_msgid = api.GetSettlementRequest(envelope=NEIGHBOURS_ENVELOPE, medins_setl_id=settle_id)
    assert refusal(lambda: stub.GetSettlement(by_msgid, metadata=AS_NEIGHBOUR))[1] == "NOT_FOUND"
    listed = stub.ListSettlements(
        api.ListSettlementsRequest(envelope=NEIGHBOURS_ENVELOPE), metadata=AS_NEIGHBOUR
    )
    assert list(listed.settlements) == []
    filtered = api.ListSettlementsRequest(envelope=NEIGHBOURS_ENVELOPE, fixmedins_code=HOSPITAL)
    assert refusal(lambda: stub.ListSettlements(filtered, metadata=AS_NEIGHBOUR))[1] == (
        "PERMISSION_DENIED_REGION"
    )
    others_visit = api.CancelVisitRequest(
        request_id=msgid(NEIGHBOUR), envelope=NEIGHBOURS_ENVELOPE, mdtrt_id=mine.mdtrt_id
    )
    assert refusal(lambda: stub.CancelVisit(others_visit, metadata=AS_NEIGHBOUR))[1] == (
        "PERMISSION_DENIED_REGION"
    )
    # The hospital's own Settle of that msgid still answers as the first time.
    again = stub.Settle(settle_request(mine.mdtrt_id, settle_id), metadata=AS_HOSPITAL, timeout=30)
    assert again.settlement == settlement
    assert settlement.result.amounts.medfee_sumamt_fen == DRUGS_FEN


def test_only_the_insured_node_of_a_visit_can_fence_its_settlement(beijing: Beijing) -> None:
    """A fence from a node that does not insure the visit's person binds nothing; the insurer's does."""
    psn_no = beijing.psn_no
    stub = api_grpc.SettlementServiceStub(beijing.channel)
    insured = insured_grpc.InsuredSettlementServiceStub(beijing.channel)

    def fence(settle_id: str, by: str) -> int:
        return insured.FenceSettlement(
            insured_api.FenceSettlementRequest(
                request_id=msgid(),
                route=settlement_pb2.Route(origin_admdvs=by, destination_admdvs=BEIJING),
                application_request_id=f"{HOSPITAL}/{settle_id}:apply",
            ),
            timeout=20,
        ).outcome

    stranger, insurer = msgid(), msgid()
    assert fence(stranger, "630000") == insured_api.SETTLEMENT_OUTCOME_NOT_RECORDED
    assert fence(insurer, LANGFANG) == insured_api.SETTLEMENT_OUTCOME_NOT_RECORDED
    settled = stub.Settle(settle_request(open_visit(stub, psn_no), stranger), timeout=30).settlement
    assert settled.medins_setl_id == stranger
    assert fence(stranger, LANGFANG) == insured_api.SETTLEMENT_OUTCOME_RECORDED
    second = open_visit(stub, psn_no)
    assert refusal(lambda: stub.Settle(settle_request(second, insurer), timeout=30))[1] == "HOLD_VOIDED"
