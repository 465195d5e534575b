"""Per-caller rate limits through the public surface: a node with small quotas and a clock the test moves.

The node runs insecure, so ``x-yidi-principal`` names each caller (as in
test_authorization.py); certificates and tokens name the same principals.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from yidi.settlement.v1 import settlement_pb2, settlement_service_pb2, settlement_service_pb2_grpc
from yidi_core.errors import REASONS
from yidi_runtime.auth import PRINCIPAL_HEADER
from yidi_runtime.config import Peer
from yidi_runtime.local_calls import LocalChannel
from yidi_runtime.server import Node, create_server
from yidi_services.node import groups_for
from yidi_testing import FakeClock, error_details, settings_for

BEIJING = "110000"
GET_SETTLEMENT = "/yidi.settlement.v1.SettlementService/GetSettlement"
SETTLEMENT_SERVICE = "yidi.settlement.v1.SettlementService"
BURSTS = {
    "institution/H11010500001": 2,
    "institution/H11010500002": 2,
    "institution/H11010500009": 5,  # its own limit, above its role's
    "operator/110000/ops": 3,
    "node/000000": 4,
}


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory, clock: FakeClock) -> Iterator[Node]:
    """Beijing, insecure, with quotas of one call a second and bursts of 2 to 5 (:data:`BURSTS`)."""
    settings = settings_for(
        tmp_path_factory.mktemp("beijing"),
        parent=Peer("000000", "127.0.0.1:9"),
        region=BEIJING,
        auto_migrate=True,
        metrics_port="off",
        quota_institution_rate=1,
        quota_institution_burst=2,
        quota_operator_rate=1,
        quota_operator_burst=3,
        quota_node_rate=1,
        quota_node_burst=4,
        quota_callers="institution/H11010500009=1:5",
    )
    node = create_server(settings, groups_for(settings), quota_clock=clock)
    yield node
    node.stop(0)


@pytest.fixture
def beijing(started: Node, clock: FakeClock) -> Node:
    """The node an hour later: every caller's quota is whole again."""
    clock.now += 3600
    return started


@pytest.fixture(scope="module")
def channel(started: Node) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(started.address) as opened:
        yield opened


def get_settlement(channel: grpc.Channel, subject: str | None) -> grpc.RpcError:
    """GetSettlement of a settlement that does not exist, as ``subject`` (None: the developer)."""
    code = subject.rpartition("/")[2] if subject and subject.startswith("institution/") else "H11010500001"
    request = settlement_service_pb2.GetSettlementRequest(
        envelope=settlement_pb2.Envelope(fixmedins_code=code, mdtrtarea_admvs="110105"),
        setl_id="11000020260101000000000000000",
    )
    metadata = [(PRINCIPAL_HEADER, subject)] if subject else []
    with pytest.raises(grpc.RpcError) as failed:
        settlement_service_pb2_grpc.SettlementServiceStub(channel).GetSettlement(
            request, metadata=metadata, timeout=10
        )
    return failed.value


def reason(error: grpc.RpcError) -> str:
    return str(error_details(error)["ErrorInfo"].reason)


def metric(node: Node, name: str, **labels: str) -> float:
    return node.metrics.registry.get_sample_value(name, labels) or 0.0


def test_an_institution_beyond_its_burst_is_refused_with_retry_info_while_another_is_served(
    beijing: Node, channel: grpc.Channel, clock: FakeClock
) -> None:
    refusals = {
        "yidi_rate_limited_total": {"caller_role": "institution"},
        "yidi_refusals_total": {
            "grpc_service": SETTLEMENT_SERVICE,
            "grpc_method": "GetSettlement",
            "reason": "RATE_LIMITED",
        },
    }
    before = {name: metric(beijing, name, **labels) for name, labels in refusals.items()}
    for _ in range(2):
        assert get_settlement(channel, "institution/H11010500001").code() is grpc.StatusCode.NOT_FOUND

    refused = get_settlement(channel, "institution/H11010500001")
    assert refused.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    details: dict[str, Any] = error_details(refused)
    info = details["ErrorInfo"]
    assert (info.reason, info.domain) == ("RATE_LIMITED", "yidi")
    assert dict(info.metadata) == {
        "caller": "institution/H11010500001",
        "node_region": BEIJING,
        "rate_per_s": "1",
        "burst": "2",
    }
    assert details["RetryInfo"].retry_delay.ToMilliseconds() == 1000
    assert details["LocalizedMessage"].message == REASONS["RATE_LIMITED"].message_zh
    assert "institution/H11010500001 exceeded its quota at node 110000" in refused.details()

    assert get_settlement(channel, "institution/H11010500002").code() is grpc.StatusCode.NOT_FOUND
    clock.now += 1.0  # the retry delay
    assert get_settlement(channel, "institution/H11010500001").code() is grpc.StatusCode.NOT_FOUND
    assert reason(get_settlement(channel, "institution/H11010500001")) == "RATE_LIMITED"

    for name, labels in refusals.items():
        assert metric(beijing, name, **labels) == before[name] + 2, name
    assert metric(beijing, "yidi_rate_limit_callers") >= 2


@pytest.mark.parametrize(("subject", "burst"), sorted(BURSTS.items()))
def test_each_role_has_its_limit_a_named_caller_its_own_and_the_quota_comes_before_authorization(
    beijing: Node, channel: grpc.Channel, subject: str, burst: int
) -> None:
    # Operators and nodes may not read a HIS's settlement: within their quota they hear so,
    # beyond it they are refused for their rate before anyone looks at what they asked.
    within = [get_settlement(channel, subject) for _ in range(burst)]
    assert all(error.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED for error in within)
    assert reason(get_settlement(channel, subject)) == "RATE_LIMITED"


def test_health_checks_reflection_and_the_developer_are_never_limited(
    beijing: Node, channel: grpc.Channel
) -> None:
    limited = "institution/H11010500002"
    assert [reason(get_settlement(channel, limited)) for _ in range(3)][-1] == "RATE_LIMITED"
    named = [(PRINCIPAL_HEADER, limited)]
    health = health_pb2_grpc.HealthStub(channel)
    for _ in range(5):
        answer = health.Check(health_pb2.HealthCheckRequest(service=""), metadata=named, timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    listing = reflection_pb2.ServerReflectionRequest(list_services="")
    for _ in range(5):
        responses = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([listing]), metadata=named, timeout=10
        )
        assert any(response.list_services_response.service for response in responses)
    for _ in range(5):
        assert get_settlement(channel, None).code() is grpc.StatusCode.NOT_FOUND


def test_calls_between_the_nodes_own_services_are_never_limited(beijing: Node) -> None:
    """In process the caller is the node itself, a node whose quota here is 4 calls at once."""
    assert beijing.settings.internal_address is not None
    own = settlement_service_pb2_grpc.SettlementServiceStub(LocalChannel(beijing.settings.internal_address))
    request = settlement_service_pb2.GetSettlementRequest(
        envelope=settlement_pb2.Envelope(fixmedins_code="H11010500001", mdtrtarea_admvs="110105"),
        setl_id="11000020260101000000000000000",
    )
    for _ in range(10):
        with pytest.raises(grpc.RpcError) as failed:
            own.GetSettlement(request, timeout=10)
        assert failed.value.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED
