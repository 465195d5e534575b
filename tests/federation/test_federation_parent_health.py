"""Health tells the truth about the tree: a child whose parent is gone reports its cross-node services NOT_SERVING.

Zhejiang (330000, no parent here) and Jiaxing (330400) below it, probing every 0.1 s and
giving up on the parent after 0.5 s. Read through the public surface: grpc.health.v1 and
/metrics.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import grpc
from federation_support import DatabaseFactory, restart, topology
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from yidi_harness.federation import start_federation
from yidi_harness.polling import eventually
from yidi_runtime.server import Node

SETTLEMENT = "yidi.settlement.v1.SettlementService"
FILING = "yidi.filing.v1.FilingService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health(node: Node, service: str) -> int:
    """The node's health status for ``service`` as grpc.health.v1 answers."""
    with grpc.insecure_channel(node.address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    return int(answer.status)


def parent_gauges(node: Node) -> dict[str, dict[str, float]]:
    """``yidi_parent_*`` samples by parent region, as the node's /metrics endpoint shows them now."""
    assert node.metrics_endpoint is not None
    url = f"http://{node.settings.host}:{node.metrics_endpoint.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode("utf-8")
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("yidi_parent_"):
            for sample in family.samples:
                found.setdefault(sample.labels["parent_region"], {})[sample.name] = sample.value
    return found


def test_a_child_follows_its_parents_reachability_and_a_node_without_parent_is_unaffected(
    tmp_path: Path, database_factory: DatabaseFactory
) -> None:
    with start_federation(
        topology("330000", "330400"),
        tmp_path,
        database_factory,
        metrics_port=0,
        parent_probe_interval_s=0.1,
        parent_unreachable_after_s=0.5,
    ) as federation:
        province, city = federation.nodes["330000"], federation.nodes["330400"]
        assert parent_gauges(province) == {}
        assert eventually(
            lambda: parent_gauges(city).get("330000", {}).get("yidi_parent_reachable") == 1,
            within_s=5,
            what="the city's first probe of its parent",
        )
        assert (health(city, SETTLEMENT), health(city, FILING), health(city, "")) == (SERVING,) * 3

        province.stop(0)
        eventually(
            lambda: health(city, SETTLEMENT) == NOT_SERVING,
            within_s=10,
            what="settlement at the city NOT_SERVING once its parent is gone",
        )
        assert (health(city, FILING), health(city, "")) == (SERVING, SERVING)
        gauges = parent_gauges(city)["330000"]
        assert gauges["yidi_parent_reachable"] == 0
        assert gauges["yidi_parent_unreachable_seconds"] >= 0.5

        restart(federation, "330000")
        eventually(
            lambda: health(city, SETTLEMENT) == SERVING,
            within_s=15,
            what="settlement at the city SERVING again once its parent answers",
        )
        assert parent_gauges(city)["330000"] == {
            "yidi_parent_reachable": 1,
            "yidi_parent_unreachable_seconds": 0,
        }
        assert health(federation.nodes["330000"], SETTLEMENT) == SERVING
