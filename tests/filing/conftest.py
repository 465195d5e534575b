"""A filing-only node whose clock the test sets, on SQLite and on PostgreSQL.

The node is national (region 000000), so every demo insured region is local to it; a
province node is started where routing to another province's insured data matters.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from filing_builders import Clock

from yidi.filing.v1 import filing_service_pb2_grpc as api_grpc
from yidi_runtime.config import Peer
from yidi_runtime.server import Node, create_server
from yidi_services.filing.servicer import register
from yidi_services.node import GROUPS
from yidi_testing import settings_for


@pytest.fixture
def clock() -> Clock:
    """Monday 2 March 2026, 09:00 in China, until the test moves it."""
    return Clock()


@pytest.fixture
def start_filing_node(
    tmp_path: Path, database_url: str | None, clock: Clock
) -> Iterator[Callable[..., Node]]:
    """Start filing nodes on the test's clock (``role``/``region``/``parent`` overridable); all stopped at the end."""
    started: list[Node] = []
    group = GROUPS["filing"]
    timed = dataclasses.replace(group, register=functools.partial(register, clock=clock))

    def start(role: str = "national", region: str = "000000", parent: Peer | None = None) -> Node:
        folder = tmp_path / f"{role}-{region}"
        settings = settings_for(
            folder,
            database_url,
            parent=parent,
            auto_migrate=True,
            role=role,
            region=region,
            services="filing",
        )
        node = create_server(settings, [timed])
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop(0)


@pytest.fixture
def filing_node(start_filing_node: Callable[..., Node]) -> Node:
    return start_filing_node()


@pytest.fixture
def stub(filing_node: Node) -> Iterator[api_grpc.FilingServiceStub]:
    with grpc.insecure_channel(filing_node.address) as channel:
        yield api_grpc.FilingServiceStub(channel)
