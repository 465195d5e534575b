"""The relay (yidi_runtime.relay) through the public surface: a Zhejiang city node, its province, and above
them a stand-in for the national node that records what each relayed call carried.

Relaying holds no data, so this runs on SQLite only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from yidi.clearing.v1 import clearing_service_pb2 as clearing_api
from yidi.clearing.v1 import clearing_service_pb2_grpc as clearing_grpc
from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as insured_grpc
from yidi.settlement.v1 import settlement_pb2
from yidi.type.v1.vouch_pb2 import Vouch
from yidi_core.errors import DomainError, FieldViolation
from yidi_runtime.config import Peer
from yidi_runtime.identity import DEVELOPER
from yidi_runtime.peers import DEFAULT_DEADLINE_S
from yidi_runtime.relay import MAX_HOPS
from yidi_runtime.server import create_server
from yidi_runtime.service import ServiceContext, ServiceGroup
from yidi_runtime.status import to_status
from yidi_runtime.vouches import VOUCH_HEADER
from yidi_services.node import GROUPS, start_node
from yidi_testing import error_details, settings_for

CITY, PROVINCE = "330400", "330000"
HEALTH = "grpc.health.v1.Health"


@dataclass(frozen=True)
class Seen:
    """One call as the stand-in received it."""

    method: str
    request: bytes
    remaining_s: float | None
    vouch: Vouch | None


@dataclass
class NextNode(grpc.GenericRpcHandler):
    """Stands in for the national node: records every call, answers an empty message or ``refusal``."""

    refusal: DomainError | None = None
    calls: list[Seen] = field(default_factory=list)

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = details.method  # type: ignore[attr-defined]
        if method.startswith(f"/{HEALTH}/"):
            return None  # the province's probe of its parent (yidi_runtime.parent_watch): not a relayed call

        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            vouch = dict(context.invocation_metadata()).get(VOUCH_HEADER)
            self.calls.append(
                Seen(method, request, context.time_remaining(), Vouch.FromString(vouch) if vouch else None)
            )
            if self.refusal is not None:
                context.abort_with_status(to_status(self.refusal))
            return b""  # any response message, empty

        return grpc.unary_unary_rpc_method_handler(handle)


@dataclass
class Tree:
    city: grpc.Channel
    above: NextNode


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Tree]:
    above = NextNode()
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((above,))
    national = Peer("000000", f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}")
    server.start()
    services = {"services": "clearing,settlement"}
    province = start_node(
        settings_for(tmp_path / PROVINCE, role="province", region=PROVINCE, parent=national, **services)
    )
    city = start_node(
        settings_for(
            tmp_path / CITY, role="city", region=CITY, parent=Peer(PROVINCE, province.address), **services
        )
    )
    try:
        with grpc.insecure_channel(city.address) as channel:
            yield Tree(channel, above)
    finally:
        city.stop(0)
        province.stop(0)
        server.stop(0).wait()


def calendar(tree: Tree, timeout: float | None = None) -> None:
    """GetClearingCalendar at the city node: relayed up to the national node."""
    clearing_grpc.ClearingServiceStub(tree.city).GetClearingCalendar(
        clearing_api.GetClearingCalendarRequest(), timeout=timeout
    )


def accumulators(tree: Tree, hops: Sequence[str] = ()) -> None:
    """GetAccumulators for a Qinghai person at the city node: relayed toward Qinghai, via the national node."""
    request = insured_api.GetAccumulatorsRequest(
        route=settlement_pb2.Route(origin_admdvs=CITY, destination_admdvs="630100", hops=hops),
        psn_no="63010000000000000001",
        year=2026,
    )
    insured_grpc.InsuredSettlementServiceStub(tree.city).GetAccumulators(request, timeout=10)


def test_a_relayed_call_gets_what_is_left_of_its_callers_deadline(tree: Tree) -> None:
    calendar(tree, timeout=2.0)
    calendar(tree)
    shortened, unbounded = (seen.remaining_s for seen in tree.above.calls)
    # Each hop re-encodes the deadline as a timeout (gRPC rounds it up a little): never the default's.
    assert shortened is not None and 0 < shortened < 2.5
    assert unbounded is not None and 2.5 < unbounded < DEFAULT_DEADLINE_S + 0.5  # the router's default


def test_the_deciding_nodes_refusal_comes_back_through_every_relay_unchanged(tree: Tree) -> None:
    tree.above.refusal = DomainError(
        "NOT_FOUND",
        "no statement 'S-2026-01-330000'",
        (FieldViolation("statement_id", "is not a statement of this node"),),
        {"key": "S-2026-01-330000"},
    )
    with pytest.raises(grpc.RpcError) as refused:
        clearing_grpc.ClearingServiceStub(tree.city).GetStatement(
            clearing_api.GetStatementRequest(statement_id="S-2026-01-330000"), timeout=10
        )
    details = error_details(refused.value)
    assert (refused.value.code(), refused.value.details()) == (
        grpc.StatusCode.NOT_FOUND,
        "no statement 'S-2026-01-330000'",
    )
    assert (details["ErrorInfo"].reason, dict(details["ErrorInfo"].metadata)) == (
        "NOT_FOUND",
        {"key": "S-2026-01-330000"},
    )
    assert [(v.field, v.description) for v in details["BadRequest"].field_violations] == [
        ("statement_id", "is not a statement of this node")
    ]


def test_a_routed_request_names_each_node_it_passed_and_carries_its_callers_vouch(tree: Tree) -> None:
    accumulators(tree)
    (seen,) = tree.above.calls
    assert seen.method == "/yidi.settlement.v1.InsuredSettlementService/GetAccumulators"
    assert list(insured_api.GetAccumulatorsRequest.FromString(seen.request).route.hops) == [CITY, PROVINCE]
    assert seen.vouch is not None and seen.vouch.subject == DEVELOPER.subject  # the city's caller, not a node


def test_a_service_that_asks_as_its_node_carries_the_relaying_nodes_own_vouch(tree: Tree) -> None:
    calendar(tree)
    (seen,) = tree.above.calls
    assert seen.vouch is not None and seen.vouch.subject == f"node/{PROVINCE}"


def test_a_request_past_the_hop_bound_is_refused_where_it_would_exceed_it(tree: Tree) -> None:
    passed = [f"{n}10000" for n in range(1, MAX_HOPS)]  # the city makes it MAX_HOPS, the province refuses
    with pytest.raises(grpc.RpcError) as refused:
        accumulators(tree, passed)
    details = error_details(refused.value)
    assert details["ErrorInfo"].reason == "INVALID_ARGUMENT"
    assert [v.field for v in details["BadRequest"].field_violations] == ["route.hops"]
    assert tree.above.calls == []


def test_every_service_of_a_node_shares_the_one_router(tmp_path: Path) -> None:
    seen: list[ServiceContext] = []

    def register(_server: grpc.Server, context: ServiceContext) -> Sequence[str]:
        seen.append(context)
        return []

    groups = [
        ServiceGroup(name, GROUPS[name].metadata, GROUPS[name].versions, register)
        for name in ("clearing", "registry")
    ]
    node = create_server(settings_for(tmp_path), groups)
    node.stop(0)
    first, second = seen
    assert first.database is not second.database and first.router is second.router is node.router
