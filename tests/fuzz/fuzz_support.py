"""What a fuzzed call may answer, and how to tell that a refusal wrote nothing.

A node under fuzzing is one in-process node with every service, reached through a plain
channel as the insecure development caller. Each call is checked against the contract of
every RPC: no INTERNAL, UNKNOWN or UNIMPLEMENTED; every refusal names a ``yidi`` reason
with ``ErrorInfo`` (and input refusals name their fields); a request holding a control
character in any string is refused INVALID_ARGUMENT naming such strings; a refused mutating
call leaves every row of every table of the node's databases as it found it (a digest of
their contents), and the audit trail only gains rows; an answered mutating call sent again is
answered the same and changes nothing more.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
import re
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_status import rpc_status
from hypothesis import HealthCheck, assume, given, seed, settings
from hypothesis import strategies as st
from proto_strategies import request_strategy, stream_strategy
from sqlalchemy import Engine, inspect, text

import yidi
from yidi_core.errors import REASONS
from yidi_harness.polling import eventually
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
(libs/yidi_services/settlement/treatment/corrections.py)."""
FIELD_REASONS = {"INVALID_ARGUMENT", "INVALID_CODE"}
STARTS_A_JOB = frozenset(
    {"/yidi.clearing.v1.ClearingService/Reconcile", "/yidi.clearing.v1.ClearingService/RunClearing"}
)
"""Methods whose answer starts background work that goes on writing (a run's progress): no repeat is
compared, and the next call waits until that work is done."""


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


VOLATILE = frozenset(
    {"settlement_outbox", "registry_outbox", "filing_outbox", "catalogue_outbox", "clearing_outbox"}
)
"""Tables background workers rewrite on their own (delivery attempts): compared by row count only."""


@dataclass
class TableDigests:
    """A digest of every row of every table of a node's databases (the audit trail apart: see :class:`AuditTail`)."""

    engines: list[Engine]
    tables: dict[int, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for index, engine in enumerate(self.engines):
            names = sorted(set(inspect(engine).get_table_names()) - GROWS_ON_REFUSAL)
            self.tables[index] = [name for name in names if not name.startswith("alembic")]

    @classmethod
    def of(cls, node: Node) -> TableDigests:
        """Every distinct database of ``node`` (on PostgreSQL the services share one)."""
        distinct: dict[str, Engine] = {}
        for service in node.services:
            engine = service.database.engine
            distinct.setdefault(str(engine.url), engine)
        return cls(list(distinct.values()))

    def settled(self, within_s: float = 30.0, quiet_s: float = 1.0) -> None:
        """Wait (bounded) until background work a call started stops writing: no change for ``quiet_s``.

        A job on a loaded machine may pause between two writes, so one equal pair of snapshots is not enough.
        """
        last, quiet_since = self.snapshot(), time.monotonic()

        def quiet() -> bool:
            nonlocal last, quiet_since
            now = self.snapshot()
            if now != last:
                last, quiet_since = now, time.monotonic()
            return time.monotonic() - quiet_since >= quiet_s

        eventually(quiet, within_s=within_s, interval_s=0.1, what=f"the node stops writing for {quiet_s:g} s")

    def snapshot(self) -> dict[str, str]:
        """Table name → a digest of its rows' contents (of its row count, for a :data:`VOLATILE` table)."""
        digests: dict[str, str] = {}
        for index, engine in enumerate(self.engines):
            names = self.tables[index]
            if not names:
                continue
            with engine.connect() as connection:
                if engine.dialect.name == "postgresql":
                    selects = ", ".join(
                        f'(SELECT count(*)::text FROM "{name}")'
                        if name in VOLATILE
                        else f"(SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM \"{name}\" t)"
                        for name in names
                    )
                    row = connection.execute(text(f"SELECT {selects}")).one()
                    digests |= dict(zip(names, map(str, row), strict=True))
                    continue
                for name in names:
                    rows = connection.execute(text(f'SELECT * FROM "{name}"')).all()
                    content = str(len(rows)) if name in VOLATILE else "|".join(sorted(map(repr, rows)))
                    digests[name] = hashlib.sha256(content.encode()).hexdigest()
        return digests


@dataclass
class AuditTail:
    """The audit trail is append-only: what a call may do to it is add rows describing itself."""

    node: Node

    def _database(self) -> Any:
        return next(service for service in self.node.services if service.group.name == "audit")

    def mark(self) -> tuple[int, str]:
        """The last row's id now, and a digest of every row up to it."""
        service = self._database()
        for worker in service.workers:
            worker.flush()  # type: ignore[attr-defined]
        with service.database.engine.connect() as connection:
            rows = connection.execute(text("SELECT * FROM audit_records ORDER BY id")).all()
        return (rows[-1].id if rows else 0), hashlib.sha256(repr(rows).encode()).hexdigest()

    def added_since(self, mark: tuple[int, str]) -> list[Any]:
        """The rows added since ``mark``; the rows before it must be as they were."""
        last, digest = mark
        service = self._database()
        for worker in service.workers:
            worker.flush()  # type: ignore[attr-defined]
        with service.database.engine.connect() as connection:
            rows = connection.execute(text("SELECT * FROM audit_records ORDER BY id")).all()
        before = [row for row in rows if row.id <= last]
        assert hashlib.sha256(repr(before).encode()).hexdigest() == digest, "the audit trail was rewritten"
        return [row for row in rows if row.id > last]


@dataclass
class Target:
    """A started node under fuzzing, its channel and its databases."""

    node: Node
    channel: grpc.Channel
    tables: TableDigests
    label: str
    metadata: tuple[tuple[str, str], ...] = ()
    """Sent with every call: e.g. the development header naming the caller (default: the developer)."""
    audit: AuditTail | None = None
    """When given, each call's audit rows are checked: only added, each the caller's or the node's own."""

    def call(self, method: MethodDescriptor, messages: Sequence[Message]) -> Any:
        """Send ``messages`` (one, or a client stream) to ``method``; the answer, or raise RpcError."""
        response = GetMessageClass(method.output_type)
        serialize, deserialize = (lambda m: m.SerializeToString()), response.FromString
        name = full_name(method)
        if method.client_streaming:
            factory = self.channel.stream_stream if method.server_streaming else self.channel.stream_unary
            answer = factory(name, serialize, deserialize)(
                iter(messages), timeout=CALL_TIMEOUT_S, metadata=self.metadata
            )
        else:
            factory = self.channel.unary_stream if method.server_streaming else self.channel.unary_unary
            answer = factory(name, serialize, deserialize)(
                messages[0], timeout=CALL_TIMEOUT_S, metadata=self.metadata
            )
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
    if method.client_streaming and error.code() is grpc.StatusCode.PERMISSION_DENIED:
        return  # a caller who may not call it at all is refused before its stream is read
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
    messages may be refused for their order before they are read). A refused mutating call
    must leave every row of every table as it was; an answered one, sent again, must be
    answered the same and change nothing more.
    """
    mutating = is_mutating(method)
    before = target.tables.snapshot() if mutating else {}
    mark = target.audit.mark() if target.audit is not None else None
    try:
        reason = _checked_call(target, method, messages, mutating, before)
    finally:
        if target.audit is not None and mark is not None:
            _check_audit_rows(target, method, target.audit.added_since(mark))
    return reason


def _check_audit_rows(target: Target, method: MethodDescriptor, added: list[Any]) -> None:
    """The rows a call added to the audit trail are the caller's own calls, or the node's in-process ones."""
    callers = {value for key, value in target.metadata if key == "x-yidi-principal"}
    callers.add(f"node/{target.node.settings.region}")
    strangers = [(row.caller, row.method) for row in added if row.caller not in callers]
    assert not strangers, f"{full_name(method)} left audit rows of other callers: {strangers[:3]}"


def _checked_call(
    target: Target,
    method: MethodDescriptor,
    messages: Sequence[Message],
    mutating: bool,
    before: dict[str, str],
) -> str:
    try:
        answer = target.call(method, messages)
    except grpc.RpcError as error:
        reason = check_refusal(method, error)
        if messages:
            check_controls_refused(method, messages[0], error)
    else:
        if messages:
            check_controls_refused(method, messages[0], None)
        if full_name(method) in STARTS_A_JOB:
            target.tables.settled()
        elif mutating and not method.client_streaming:
            changed = target.tables.snapshot()
            assert target.call(method, messages) == answer, f"{full_name(method)} answered a repeat otherwise"
            again = target.tables.snapshot()
            assert again == changed, f"{full_name(method)} changed {_changed(changed, again)} on a repeat"
        return "OK"
    if mutating:
        after = target.tables.snapshot()
        allowed = RECORDED_ON_REFUSAL.get(full_name(method), frozenset())
        changed_tables = {name for name in _changed(before, after) if name not in allowed}
        assert not changed_tables, (
            f"{full_name(method)} refused {reason} but changed {sorted(changed_tables)}"
        )
    return reason


def _changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def fits(messages: Iterable[Message]) -> bool:
    """Each message is within gRPC's default 4 MiB receive limit (with room for framing)."""
    return all(message.ByteSize() < GRPC_MESSAGE_LIMIT - 64 * 1024 for message in messages)


def requests_for(method: MethodDescriptor) -> st.SearchStrategy[list[Message]]:
    """Generated requests for ``method``: one message, or a client stream."""
    if method.client_streaming:
        return stream_strategy(method.input_type)
    return request_strategy(method.input_type).map(lambda request: [request])


def fuzz_method(target: Target, method: MethodDescriptor, examples: int) -> Counter[str]:
    """Send ``method`` ``examples`` generated requests (reproducibly: a seed per target and method),
    checking each answer with :func:`check_call`; how often each answer came."""
    answers: Counter[str] = Counter()

    @seed(zlib.crc32(f"{target.label}{full_name(method)}".encode()))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(requests_for(method))
    def fuzz(messages: list[Message]) -> None:
        assume(fits(messages))
        answers[check_call(target, method, messages)] += 1

    fuzz()
    return answers
