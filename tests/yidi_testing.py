"""Helpers shared by the service tests: node settings for a test, and a status's rich details."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from yidi_harness.federation import free_port
from yidi_runtime.config import SERVICE_NAMES, NodeSettings, Peer, TlsFiles, load_settings
from yidi_runtime.server import Node
from yidi_services.node import start_node

W = TypeVar("W")


def settings_for(
    tmp_path: Path,
    database_url: str | None = None,
    *,
    parent: Peer | None = None,
    children: Sequence[Peer] = (),
    tls: TlsFiles | None = None,
    **overrides: Any,
) -> NodeSettings:
    """A test node's settings: port 0, its own data folder; insecure unless ``tls`` files are given."""
    environ = {"YIDI_DATABASE_URL": database_url} if database_url else {}
    if tls is not None:
        environ |= {"YIDI_TLS_CERT": str(tls.cert), "YIDI_TLS_KEY": str(tls.key), "YIDI_TLS_CA": str(tls.ca)}
    if parent is not None:
        environ |= {"YIDI_PARENT_REGION": parent.region, "YIDI_PARENT_ADDRESS": parent.address}
    if children:
        environ["YIDI_CHILDREN"] = ",".join(f"{child.region}={child.address}" for child in children)
    return load_settings(
        environ=environ,
        overrides={
            "data_dir": str(tmp_path),
            "grpc_port": 0,
            "metrics_port": 0,
            "insecure": tls is None,
            **overrides,
        },
    )


class FakeClock:
    """A monotonic clock that moves only when a test sets or advances ``now``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def worker_of(node: Node, kind: type[W], service: str) -> W:
    """The background worker of ``kind`` that ``service`` runs on ``node``, for a test to drive by calling it."""
    [worker] = [
        worker
        for running in node.services
        if running.group.name == service
        for worker in running.workers
        if isinstance(worker, kind)
    ]
    return worker


def error_details(error: grpc.RpcError) -> dict[str, Any]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "the status carries no rich details"
    found: dict[str, Any] = {}
    for detail in status.details:
        for kind in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.BadRequest,
            error_details_pb2.LocalizedMessage,
            error_details_pb2.RetryInfo,
        ):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                found[kind.DESCRIPTOR.name] = message
    return found


def health_of(channel: grpc.Channel, service: str) -> int:
    """The ``grpc.health.v1`` status of one service (``""``: the whole node)."""
    response = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=5
    )
    return int(response.status)


@dataclass(frozen=True)
class NodeSpec:
    """One node of a test tree: its region, role, parent region and services."""

    region: str
    role: str
    parent: str | None = None
    services: tuple[str, ...] = SERVICE_NAMES


@contextmanager
def node_tree(
    tmp_path: Path,
    specs: Sequence[NodeSpec],
    database_factory: Callable[[], str | None],
    **overrides: Any,
) -> Iterator[dict[str, Node]]:
    """Start a region tree in process on loopback (parents and children wired), stop it afterwards.

    Each node has its own data folder and database; ``overrides`` apply to every node
    (e.g. ``settlement_hold_timeout_s``). Yields the nodes by region.
    """
    ports: dict[str, int] = {}
    for spec in specs:
        ports[spec.region] = free_port(avoid=set(ports.values()))

    def peer(region: str) -> Peer:
        return Peer(region, f"127.0.0.1:{ports[region]}")

    nodes: dict[str, Node] = {}
    try:
        for spec in specs:
            settings = settings_for(
                tmp_path / spec.region,
                database_factory(),
                parent=peer(spec.parent) if spec.parent else None,
                children=[peer(child.region) for child in specs if child.parent == spec.region],
                role=spec.role,
                region=spec.region,
                grpc_port=ports[spec.region],
                services=",".join(spec.services),
                auto_migrate=True,
                **overrides,
            )
            nodes[spec.region] = start_node(settings)
        yield nodes
    finally:
        for started in nodes.values():
            started.stop(0)
