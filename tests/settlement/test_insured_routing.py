"""Forwarding along the region tree: national → Hebei → Langfang, the insured node answering.

Routing holds no data, so this runs on SQLite only. The Langfang node hosts the sample
persons and policy of 131000; a request entering at the national node travels down two
hops, each appending itself to ``route.hops``, and comes back unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from insured_builders import DATA, Line, apply_request, facts, load_region, message_id, refusal, route

from yidi.settlement.v1 import insured_settlement_service_pb2 as api
from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as api_grpc
from yidi.type.v1 import fee_item_pb2
from yidi_runtime.server import Node
from yidi_testing import NodeSpec, error_details, node_tree

LANGFANG, RETIREE_CERTNO = "131000", "131000195402270170"
TREE = [
    NodeSpec("000000", "national"),
    NodeSpec("130000", "province", "000000"),
    NodeSpec(LANGFANG, "city", "130000"),
]


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[dict[str, Node], str]]:
    with node_tree(tmp_path, TREE, lambda: None) as nodes:
        with grpc.insecure_channel(nodes[LANGFANG].address) as channel:
            policy = (DATA / "policies" / "131000-310-langfang.toml").read_bytes()
            persons = load_region(channel, LANGFANG, {"310": policy})
        yield nodes, persons[RETIREE_CERTNO]


def worked_example(psn_no: str) -> api.ApplySettlementRequest:
    """settlement-rules.md's example: two diabetes drugs, class A and class B (10% first self-pay)."""
    request = apply_request(
        psn_no,
        (Line("1", 3252),),
        route=route(LANGFANG),
        facts=facts("14", "131002", chronic_disease="M01600", diagnoses=["E11.900"]),
    )
    request.items.append(
        fee_item_pb2.ItemResult(
            feedetl_sn="2",
            med_list_codg="XA10BXR023A001010100002",
            det_item_fee_sumamt_fen=3177,
            chrgitm_lv="02",
            selfpay_prop="0.1",
            preselfpay_amt_fen=318,
            inscp_scp_amt_fen=2859,
            self_pay_reasons=[fee_item_pb2.SELF_PAY_REASON_FIRST_SELF_PAY],
        )
    )
    request.totals.medfee_sumamt_fen += 3177
    request.totals.preselfpay_amt_fen += 318
    request.totals.inscp_scp_amt_fen += 2859
    return request


def test_a_request_entering_at_the_national_node_is_answered_by_the_insured_node(
    tree: tuple[dict[str, Node], str],
) -> None:
    nodes, retiree = tree
    with (
        grpc.insecure_channel(nodes["000000"].address) as national_channel,
        grpc.insecure_channel(nodes[LANGFANG].address) as langfang_channel,
    ):
        national = api_grpc.InsuredSettlementServiceStub(national_channel)
        langfang = api_grpc.InsuredSettlementServiceStub(langfang_channel)
        request = worked_example(retiree)
        applied = national.ApplySettlement(request, timeout=10)
        assert (applied.result.amounts.hifp_pay_fen, applied.result.amounts.psn_part_amt_fen) == (4889, 1540)
        assert (
            langfang.ApplySettlement(request, timeout=10).SerializeToString() == applied.SerializeToString()
        )
        by_psn_no = national.GetAccumulators(
            api.GetAccumulatorsRequest(psn_no=retiree, year=2026), timeout=10
        )
        assert [(value.key, value.value_fen) for value in by_psn_no.accumulators] == [
            ("chronic:M01600", 4889),
            ("chronic", 6111),
        ]
        remote = apply_request(retiree, route=route(LANGFANG), facts=facts("21", "330402"))
        assert refusal(lambda: national.ApplySettlement(remote, timeout=10))[1] == "NOT_FILED"

        def hops(*passed: str) -> api.GetAccumulatorsRequest:
            return api.GetAccumulatorsRequest(route=route(LANGFANG, passed), psn_no=retiree, year=2026)

        assert national.GetAccumulators(hops("1", "2", "3", "4"), timeout=10) == by_psn_no
        assert refusal(lambda: national.GetAccumulators(hops("1", "2", "3", "4", "5"), timeout=10))[1:] == (
            "INVALID_ARGUMENT",
            ["route.hops"],
        )
        with pytest.raises(grpc.RpcError) as loop:
            national.GetAccumulators(hops("130000"), timeout=10)
        assert error_details(loop.value)["ErrorInfo"].reason == "INVALID_ARGUMENT"
        assert "130000 → 000000" in (loop.value.details() or "")

        nodes[LANGFANG].stop(0)
        down = apply_request(retiree, route=route(LANGFANG), request_id=message_id())
        code, reason, _ = refusal(lambda: national.ApplySettlement(down, timeout=10))
        assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "INSURED_REGION_UNREACHABLE")
