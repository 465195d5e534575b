"""What the collaboration tests share: a clock the test moves, nodes started on it, and ticket requests."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from datetime import time as clock_time
from functools import partial
from typing import Any, TypeVar

import grpc
import pytest
from google.type import date_pb2

from yidi.collaboration.v1 import collaboration_service_pb2 as api
from yidi.collaboration.v1 import collaboration_service_pb2_grpc as api_grpc
from yidi.collaboration.v1 import ticket_pb2 as pb
from yidi_harness.federation import Federation, NodeSpec, Topology, institution, region_operator
from yidi_runtime.config import NodeSettings, Role
from yidi_runtime.identity import Principal
from yidi_runtime.server import Node, create_server
from yidi_runtime.wire import CHINA_STANDARD_TIME
from yidi_services.collaboration.servicer import register
from yidi_services.node import groups_for
from yidi_testing import error_details

T = TypeVar("T")
_ids = itertools.count(1)

JIAXING, LANGFANG = "330400", "131000"
HOSPITAL = institution("H33040200001")
JIAXING_OPS, LANGFANG_OPS = region_operator(JIAXING), region_operator(LANGFANG)
DENIED = (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED_REGION")
TREE = Topology(
    (
        NodeSpec("000000", Role.NATIONAL, "national"),
        NodeSpec("330000", Role.PROVINCE, "zhejiang", "000000"),
        NodeSpec(JIAXING, Role.CITY, "jiaxing", "330000"),
        NodeSpec("130000", Role.PROVINCE, "hebei", "000000"),
        NodeSpec(LANGFANG, Role.CITY, "langfang", "130000"),
    )
)
"""Jiaxing and Langfang under their provinces and the national node: the smallest tree a ticket crosses."""


def stub(federation: Federation, node: str, who: Principal) -> api_grpc.CollaborationServiceStub:
    """A client of ``node`` calling as ``who``."""
    return api_grpc.CollaborationServiceStub(federation.channel(node, who))


def held(federation: Federation, node: str, who: Principal, ticket_id: str) -> Callable[[], pb.Ticket]:
    """Reads the ticket as ``node`` holds it (NOT_FOUND before it arrived reads as an empty ticket)."""

    def read() -> pb.Ticket:
        try:
            return stub(federation, node, who).GetTicket(api.GetTicketRequest(ticket_id=ticket_id)).ticket
        except grpc.RpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                return pb.Ticket()
            raise

    return read


@dataclass
class Clock:
    """The nodes' clock in a test: 09:00 in China on the day the test says (Thursday 5 March 2026 at first)."""

    now: datetime = field(default_factory=lambda: datetime(2026, 3, 5, 1, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def set(self, day: str) -> None:
        """Move to ``day`` (yyyy-mm-dd) at 09:00 China time."""
        self.now = datetime.combine(date.fromisoformat(day), clock_time(9), CHINA_STANDARD_TIME).astimezone(
            UTC
        )


def start_on(clock: Clock) -> Callable[[NodeSettings], Node]:
    """Start a node whose collaboration service reads ``clock`` (its other services the wall clock)."""

    def start(settings: NodeSettings) -> Node:
        groups = [
            replace(group, register=partial(register, clock=clock))
            if group.name == "collaboration"
            else group
            for group in groups_for(settings)
        ]
        return create_server(settings, groups)

    return start


def request_id() -> str:
    """A fresh message id."""
    return f"{datetime.now(UTC):%Y%m%d%H%M%S}{next(_ids):06d}"


def iso(value: date_pb2.Date) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def opening(treatment: str, insured: str, **fields: Any) -> api.OpenTicketRequest:
    """An OpenTicket about a settlement's disputed amount, ``fields`` replacing any part."""
    values: dict[str, Any] = {
        "request_id": request_id(),
        "subject_kind": pb.TICKET_SUBJECT_KIND_SETTLEMENT,
        "subject_id": f"{treatment}000000000000000000000001",
        "category": pb.TICKET_CATEGORY_DISPUTED_AMOUNT,
        "treatment_admdvs": treatment,
        "insured_admdvs": insured,
        "text": "The insured place paid 120.00 yuan less than the settlement says.",
    } | fields
    return api.OpenTicketRequest(**values)


def refusal(call: Callable[[], object]) -> tuple[grpc.StatusCode, str, list[str]]:
    """The status code, reason and violated fields of a refused call."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    details = error_details(raised.value)
    fields = [v.field for v in details["BadRequest"].field_violations] if "BadRequest" in details else []
    return raised.value.code(), details["ErrorInfo"].reason, fields


def eventually(read: Callable[[], T], holds: Callable[[T], bool], timeout_s: float = 15.0) -> T:
    """``read()`` once ``holds`` of it (the outbox delivers in the background); fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if holds(value) or time.monotonic() > deadline:
            assert holds(value), value
            return value
        time.sleep(0.05)
