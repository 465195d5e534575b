"""What a fuzzed call may answer, and how to tell that a refusal wrote nothing.

A node under fuzzing is one in-process node with every service, reached through a plain
channel as the insecure development caller. Each call is checked against the contract of
every RPC: no INTERNAL, UNKNOWN or UNIMPLEMENTED; every refusal names a ``yidi`` reason
with ``ErrorInfo`` (and input refusals name their fields); a request holding a control
character in any string is refused INVALID_ARGUMENT naming such strings; a refused mutating
call leaves every table of the node's databases as it found it.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_status import rpc_status
from sqlalchemy import Engine, inspect, text

import yidi
from yidi_core.errors import REASONS
from yidi_runtime.server import Node
from yidi_testing import error_details

CALL_TIMEOUT_S = 60.0
GRPC_MESSAGE_LIMIT = 4 * 1024 * 1024
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNIMPLEMENTED}
NOT_IMPLEMENTED_METHODS: frozenset[str] = frozenset()
"""Methods documented as not implemented yet (they may answer UNIMPLEMENTED): none today."""
GROWS_ON_REFUSAL = frozenset({"audit_records"})
"""Tables a refusal legitimately writes to: the audit trail records refused calls too.

The request logs (``<service>_requests``) are not here: :mod:`yidi_runtime.idempotency`
commits nothing when the effect raises, so a refusal leaves no row there either."""
RECORDED_ON_REFUSAL = {"/yidi.settlement.v1.SettlementService/Correct": frozenset({"settlement_outcomes"})}
"""Rows a refusal leaves on purpose, by method. A correction (冲正) commits its bar on the
original request before it asks the insured node, so a Settle racing it can never record;
when that node is unreachable the bar stays and a retried correction finds it
(services/settlement/treatment_corrections.py)."""
FIELD_REASONS = {"INVALID_ARGUMENT", "INVALID_CODE"}


def full_name(method: MethodDescriptor) -> str:
    """``/package.Service/Method``, as gRPC names a call."""
    return f"/{method.containing_service.full_name}/{method.name}"


def proto_methods() -> list[MethodDescriptor]:
    """Every RPC the generated stubs under ``yidi`` declare, whatever a node serves."""
    methods = []
    for module in pkgutil.walk_packages(yidi.__path__, "yidi."):
        if module.name.endswith("_pb2"):
            services = importlib.import_module(module.name).DESCRIPTOR.services_by_name.values()
            methods += [method for service in services for method in service.methods]
    return sorted(methods, key=full_name)


def served_methods(node: Node) -> list[MethodDescriptor]:
    """The RPCs a node serves, enumerated from the node itself."""
    pool = descriptor_pool.Default()
    return [method for name in node.service_names for method in pool.FindServiceByName(name).methods]


def is_mutating(method: MethodDescriptor) -> bool:
    """A mutating call carries a ``request_id`` (in the request, or in a stream's header)."""
    fields = method.input_type.fields
    return any(
        field.name == "request_id"
        or (field.message_type is not None and "request_id" in field.message_type.fields_by_name)
        for field in fields
    )


@dataclass
class RowCounts:
    """Counts every table of a node's databases in one statement per database."""

    engines: list[Engine]
    tables: dict[int, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for index, engine in enumerate(self.engines):
            names = sorted(set(inspect(engine).get_table_names()) - GROWS_ON_REFUSAL)
            self.tables[index] = names

    @classmethod
    def of(cls, node: Node) -> RowCounts:
        """Every distinct database of ``node`` (on PostgreSQL the services share one)."""
        distinct: dict[str, Engine] = {}
        for service in node.services:
            engine = service.database.engine
            distinct.setdefault(str(engine.url), engine)
        return cls(list(distinct.values()))

    def snapshot(self) -> dict[str, int]:
        """Table name → row count, across the node's databases (each service's tables have their own names)."""
        counts: dict[str, int] = {}
        for index, engine in enumerate(self.engines):
            names = self.tables[index]
            if not names:
                continue
            selects = ", ".join(f'(SELECT count(*) FROM "{name}")' for name in names)
            with engine.connect() as connection:
                row = connection.execute(text(f"SELECT {selects}")).one()
            counts |= {name: int(value) for name, value in zip(names, row, strict=True)}
        return counts


@dataclass
class Target:
    """A started node under fuzzing, its channel and its databases."""

    node: Node
    channel: grpc.Channel
    counts: RowCounts
    label: str

    def call(self, method: MethodDescriptor, messages: Sequence[Message]) -> Any:
        """Send ``messages`` (one, or a client stream) to ``method``; the answer, or raise RpcError."""
        response = GetMessageClass(method.output_type)
        serialize, deserialize = (lambda m: m.SerializeToString()), response.FromString
        name = full_name(method)
        if method.client_streaming:
            factory = self.channel.stream_stream if method.server_streaming else self.channel.stream_unary
            answer = factory(name, serialize, deserialize)(iter(messages), timeout=CALL_TIMEOUT_S)
        else:
            factory = self.channel.unary_stream if method.server_streaming else self.channel.unary_unary
            answer = factory(name, serialize, deserialize)(messages[0], timeout=CALL_TIMEOUT_S)
        return list(answer) if method.server_streaming else answer

    def call_raw(self, method: MethodDescriptor, payload: bytes) -> Any:
        """Send ``payload`` as the request's bytes (the one message of a client stream); the answer, or raise."""
        name, identity = full_name(method), (lambda data: data)
        if method.client_streaming:
            factory = self.channel.stream_stream if method.server_streaming else self.channel.stream_unary
            answer = factory(name, identity, identity)(iter([payload]), timeout=CALL_TIMEOUT_S)
        else:
            factory = self.channel.unary_stream if method.server_streaming else self.channel.unary_unary
            answer = factory(name, identity, identity)(payload, timeout=CALL_TIMEOUT_S)
        return list(answer) if method.server_streaming else answer


def check_refusal(method: MethodDescriptor, error: grpc.RpcError) -> str:
    """Assert a refusal keeps the error contract; its reason."""
    code = error.code()
    allowed = NEVER - (
        {grpc.StatusCode.UNIMPLEMENTED} if full_name(method) in NOT_IMPLEMENTED_METHODS else set()
    )
    assert code not in allowed, f"{full_name(method)} answered {code.name}: {error.details()}"
    assert rpc_status.from_call(error) is not None, (  # type: ignore[arg-type]
        f"{full_name(method)} refused with {code.name} and no rich status: {error.details()}"
    )
    details = error_details(error)
    info = details.get("ErrorInfo")
    assert info is not None, (
        f"{full_name(method)} refused with {code.name} but no ErrorInfo: {error.details()}"
    )
    assert info.domain == "yidi", f"ErrorInfo domain {info.domain!r}"
    assert info.reason in REASONS, f"reason {info.reason!r} is not a stable reason"
    assert REASONS[info.reason].grpc_code == code.name, f"{info.reason} answered as {code.name}"
    if info.reason in FIELD_REASONS:
        bad_request = details.get("BadRequest")
        assert bad_request is not None and bad_request.field_violations, (
            f"{full_name(method)} refused {info.reason} without naming a field: {error.details()}"
        )
    return str(info.reason)


CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""The characters every string of a request is refused for (docs/integration.md)."""


def controlled_strings(message: Message, prefix: str = "") -> Iterator[str]:
    """The paths of the strings in ``message`` (at any depth, map keys and values too) holding a control character."""
    for descriptor, value in message.ListFields():
        name = f"{prefix}{descriptor.name}"
        if descriptor.message_type is not None and descriptor.message_type.GetOptions().map_entry:
            for key, item in value.items():
                texts = [text for text in (key, item) if isinstance(text, str)]
                if any(CONTROLS.search(text) for text in texts):
                    yield f"{name}[{key!r}]"
                if isinstance(item, Message):
                    yield from controlled_strings(item, f"{name}[{key!r}].")
        elif descriptor.type == FieldDescriptor.TYPE_STRING:
            texts = list(value) if descriptor.is_repeated else [value]
            for index, text in enumerate(texts):
                if CONTROLS.search(text):
                    yield f"{name}[{index}]" if descriptor.is_repeated else name
        elif descriptor.type == FieldDescriptor.TYPE_MESSAGE:
            items = list(value) if descriptor.is_repeated else [value]
            for index, item in enumerate(items):
                yield from controlled_strings(
                    item, f"{name}[{index}]." if descriptor.is_repeated else f"{name}."
                )


def check_controls_refused(method: MethodDescriptor, message: Message, error: grpc.RpcError | None) -> None:
    """A request with a control character in a string was refused INVALID_ARGUMENT naming (some of) them."""
    expected = set(controlled_strings(message))
    if not expected:
        return
    assert error is not None, f"{full_name(method)} accepted control characters in {sorted(expected)[:5]}"
    details = error_details(error)
    fields = [violation.field for violation in details["BadRequest"].field_violations]
    assert (error.code(), details["ErrorInfo"].reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert fields and set(fields) <= expected, (
        f"{full_name(method)} named {fields[:5]}, not {sorted(expected)[:5]}"
    )


def check_call(target: Target, method: MethodDescriptor, messages: Sequence[Message]) -> str:
    """Call once and check the contract; ``"OK"`` or the refusal's reason.

    The first message of a request is checked for control characters (a stream's later
    messages may be refused for their order before they are read).
    """
    mutating = is_mutating(method)
    before = target.counts.snapshot() if mutating else {}
    try:
        target.call(method, messages)
    except grpc.RpcError as error:
        reason = check_refusal(method, error)
        if messages:
            check_controls_refused(method, messages[0], error)
    else:
        if messages:
            check_controls_refused(method, messages[0], None)
        return "OK"
    if mutating:
        after = target.counts.snapshot()
        allowed = RECORDED_ON_REFUSAL.get(full_name(method), frozenset())
        changed = {
            name: (count, after[name])
            for name, count in before.items()
            if count != after[name] and name not in allowed
        }
        assert not changed, f"{full_name(method)} refused {reason} but wrote rows (before, after): {changed}"
    return reason


def fits(messages: Iterable[Message]) -> bool:
    """Each message is within gRPC's default 4 MiB receive limit (with room for framing)."""
    return all(message.ByteSize() < GRPC_MESSAGE_LIMIT - 64 * 1024 for message in messages)
