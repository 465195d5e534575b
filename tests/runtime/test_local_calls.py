"""Calls between a node's own services run in process, and read exactly like calls over a socket."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog

from yidi.filing.v1 import filing_service_pb2, filing_service_pb2_grpc, insured_person_pb2
from yidi_core.errors import DomainError, invalid
from yidi_runtime import identity
from yidi_runtime.config import Peer
from yidi_runtime.identity import Via
from yidi_runtime.local_calls import SCHEME
from yidi_runtime.peers import PeerClient
from yidi_runtime.server import Node, create_server
from yidi_runtime.service import ServiceContext
from yidi_services.node import GROUPS
from yidi_testing import error_details, settings_for


class _Filing(filing_service_pb2_grpc.FilingServiceServicer):
    """Answers with what it saw, so a test can tell what crossed the in-process call."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def GetInsuredPerson(self, request: Any, context: grpc.ServicerContext) -> Any:
        psn_no = request.person.psn_no
        if psn_no == "refuse":
            raise invalid(
                "INVALID_CODE", "person.psn_no", "must be 12 digits", metadata={"value_length": "6"}
            )
        if psn_no == "slow":
            time.sleep(0.3)
        principal = identity.current.get()
        self.seen.append(
            {
                "via": principal.via if principal else None,
                "log": dict(structlog.contextvars.get_contextvars()),
                "peer": context.peer(),
            }
        )
        request.person.psn_no = "changed by the handler"
        return filing_service_pb2.GetInsuredPersonResponse(
            person=insured_person_pb2.InsuredPerson(psn_no=psn_no)
        )


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Node, _Filing]]:
    servicer = _Filing()
    group = GROUPS["filing"]

    def register(server: grpc.Server, _context: ServiceContext) -> Sequence[str]:
        filing_service_pb2_grpc.add_FilingServiceServicer_to_server(servicer, server)
        return ["yidi.filing.v1.FilingService"]

    started = create_server(settings_for(tmp_path, services="filing"), [replace(group, register=register)])
    yield started, servicer
    started.stop(0)
    structlog.contextvars.clear_contextvars()


def _own(node: Node) -> PeerClient:
    address = node.settings.self_address
    assert address.startswith(SCHEME)
    return PeerClient(Peer(node.settings.region, address), None)


def _lookup(psn_no: str) -> filing_service_pb2.GetInsuredPersonRequest:
    return filing_service_pb2.GetInsuredPersonRequest(person=insured_person_pb2.PersonLookup(psn_no=psn_no))


def test_a_service_calls_its_own_node_in_process_as_the_node_itself(node: tuple[Node, _Filing]) -> None:
    started, servicer = node
    client = _own(started)
    stub = client.stub(filing_service_pb2_grpc.FilingServiceStub)
    request = _lookup("131000000001")
    structlog.contextvars.bind_contextvars(request_id="outer")
    identity.current.set(None)

    answer = client.call(stub.GetInsuredPerson, request)

    assert answer.person.psn_no == "131000000001"
    assert request.person.psn_no == "131000000001"  # the handler changed its own copy
    [seen] = servicer.seen
    assert seen["via"] == Via.LOCAL and seen["peer"] == "local"
    assert seen["log"]["grpc_method"] == "GetInsuredPerson" and "request_id" not in seen["log"]
    # The caller's own log fields and principal are as they were.
    assert structlog.contextvars.get_contextvars() == {"request_id": "outer"}
    assert identity.current.get() is None


def test_a_refusal_arrives_with_its_reason_violations_and_metadata(node: tuple[Node, _Filing]) -> None:
    started, _ = node
    client = _own(started)
    stub = client.stub(filing_service_pb2_grpc.FilingServiceStub)
    with pytest.raises(grpc.RpcError) as raw:
        stub.GetInsuredPerson(_lookup("refuse"), timeout=5)
    assert raw.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(raw.value)["ErrorInfo"].reason == "INVALID_CODE"

    with pytest.raises(DomainError) as refused:
        client.call(stub.GetInsuredPerson, _lookup("refuse"))
    assert refused.value.reason_code == "INVALID_CODE"
    assert [(v.field, v.description) for v in refused.value.violations] == [
        ("person.psn_no", "must be 12 digits")
    ]
    assert refused.value.metadata == {"value_length": "6"}


def test_a_method_no_service_here_serves_is_unimplemented(node: tuple[Node, _Filing]) -> None:
    started, _ = node
    method = _own(started).raw("/yidi.clearing.v1.ClearingService/GetClearingRun")
    with pytest.raises(grpc.RpcError) as caught:
        method(b"", timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_an_answer_after_the_deadline_is_deadline_exceeded(node: tuple[Node, _Filing]) -> None:
    started, _ = node
    stub = _own(started).stub(filing_service_pb2_grpc.FilingServiceStub)
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetInsuredPerson(_lookup("slow"), timeout=0.05)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_after_the_node_stops_its_own_address_is_unreachable(tmp_path: Path) -> None:
    group = GROUPS["filing"]
    started = create_server(settings_for(tmp_path, services="filing"), [group])
    client = _own(started)
    stub = client.stub(filing_service_pb2_grpc.FilingServiceStub)
    started.stop(0)
    with pytest.raises(DomainError) as refused:
        client.call(stub.GetInsuredPerson, _lookup("131000000001"))
    assert refused.value.reason_code == "NODE_UNREACHABLE"
    assert refused.value.metadata["grpc_code"] == "UNAVAILABLE"
