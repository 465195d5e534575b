"""The durable outbox end to end: a sending node and a receiving node on loopback, SQLite and PostgreSQL.

The sender is a province node running a test service whose only job is its outbox; the
receiver is the national node running a scripted FilingService whose CreateFiling applies
each message once through the request log, and can lose its answer or refuse on demand.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from prometheus_client import CollectorRegistry
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from yidi.filing.v1 import filing_service_pb2 as filing_api
from yidi.filing.v1 import filing_service_pb2_grpc as filing_grpc
from yidi_core.errors import DomainError
from yidi_harness.federation import free_port
from yidi_harness.polling import eventually
from yidi_runtime.config import NodeSettings, Peer
from yidi_runtime.db import Database, service_base
from yidi_runtime.idempotency import RequestLog
from yidi_runtime.outbox import Batching, Outbox, OutboxDeliverer, PassResult, outbox_model
from yidi_runtime.peers import message_id
from yidi_runtime.resilience import Backoff, RetryPolicy
from yidi_runtime.routing import Router
from yidi_runtime.server import Node, create_server
from yidi_runtime.service import ServiceContext, ServiceGroup
from yidi_services.filing.models import RequestRecord
from yidi_services.node import GROUPS
from yidi_testing import settings_for

SERVICE = "outboxtest"
Base = service_base(SERVICE)
OutboxRecord = outbox_model(Base)
VERSIONS = Path(__file__).with_name("outbox_migrations")
CREATE_FILING = filing_api.DESCRIPTOR.services_by_name["FilingService"].methods_by_name["CreateFiling"]
WAIT_S = 15.0


class Receiver(filing_grpc.FilingServiceServicer):
    """CreateFiling applied exactly once per request_id; answers can be lost or refused by script."""

    def __init__(self) -> None:
        self.database: Database | None = None
        self.calls: list[str] = []
        self.applied: list[str] = []
        self.lose_answer_for: set[str] = set()
        self.refusals: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def CreateFiling(
        self, request: filing_api.CreateFilingRequest, context: grpc.ServicerContext
    ) -> filing_api.CreateFilingResponse:
        rid = request.request_id
        with self._lock:
            self.calls.append(rid)
            refusal = self.refusals.get(rid, []).pop(0) if self.refusals.get(rid) else None
        if refusal is not None:
            raise DomainError(refusal, metadata={"request_id": rid})

        def effect(_session: Session) -> filing_api.CreateFilingResponse:
            with self._lock:
                self.applied.append(rid)
            return filing_api.CreateFilingResponse()

        assert self.database is not None
        answer = RequestLog(RequestRecord).run_once(
            self.database, rid, "CreateFiling", [request], filing_api.CreateFilingResponse, effect
        )
        with self._lock:
            lost = rid in self.lose_answer_for
            self.lose_answer_for.discard(rid)
        if lost:  # applied and committed, but the sender never hears so
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "answer lost on the way back")
        return answer

    def register(self, server: grpc.Server, context: ServiceContext) -> Sequence[str]:
        self.database = context.database
        filing_grpc.add_FilingServiceServicer_to_server(self, server)
        return ["yidi.filing.v1.FilingService"]


@dataclass
class Pair:
    """The sending province node (with its outbox) and the national node it delivers to."""

    receiver: Receiver
    receiver_settings: NodeSettings
    sender: Node
    parts: dict[str, Any]
    receiver_node: Node | None = None
    messages: list[str] = field(default_factory=list)

    @property
    def outbox(self) -> Outbox:
        return self.parts["outbox"]  # type: ignore[no-any-return]

    @property
    def database(self) -> Database:
        return self.sender.services[0].database

    def start_receiver(self) -> None:
        self.receiver_node = create_server(
            self.receiver_settings, [replace(GROUPS["filing"], register=self.receiver.register)]
        )

    def stop_receiver(self) -> None:
        assert self.receiver_node is not None
        self.receiver_node.stop(0)
        self.receiver_node = None

    def commit(self, count: int) -> list[str]:
        """Add ``count`` messages, each in its own committed transaction; their ids in order."""
        ids = []
        for _ in range(count):
            rid = message_id("330000")
            with self.database.unit_of_work(write=True) as uow:
                self.outbox.add(
                    uow.session, "000000", CREATE_FILING, filing_api.CreateFilingRequest(request_id=rid)
                )
                uow.commit()
            ids.append(rid)
        return ids

    def rows(self) -> list[Any]:
        with self.database.unit_of_work() as uow:
            rows = list(uow.session.scalars(select(OutboxRecord).order_by(OutboxRecord.id)))
            uow.session.expunge_all()  # keep them readable after the unit of work ends
            return rows

    def backlog_gauge(self) -> float | None:
        return self.sender.metrics.registry.get_sample_value(
            "yidi_outbox_backlog", {"service": SERVICE, "destination": "000000"}
        )


@pytest.fixture
def pair(tmp_path: Path, database_url: str | None) -> Iterator[Pair]:
    port = free_port()
    receiver_settings = settings_for(
        tmp_path / "national",
        database_url,
        auto_migrate=True,
        role="national",
        region="000000",
        services="filing",
        grpc_port=port,
        metrics_port="off",
    )
    sender_settings = replace(
        settings_for(
            tmp_path / "zhejiang",
            database_url,
            auto_migrate=True,
            role="province",
            region="330000",
            services="filing",
            metrics_port="off",
        ),
        parent=Peer("000000", f"127.0.0.1:{port}"),
    )
    parts: dict[str, Any] = {}

    def register(_server: grpc.Server, context: ServiceContext) -> Sequence[str]:
        outbox = Outbox(OutboxRecord)
        router = Router(
            context.settings,
            deadline_s=2.0,
            retry=RetryPolicy(2, Backoff(0.01, 0.02)),
            failure_threshold=3,
            cool_down_s=0.2,
        )
        deliverer = OutboxDeliverer(
            outbox,
            context.database,
            router,
            context.metrics_registry,
            deadline_s=2.0,
            backoff=Backoff(0.05, 0.2),
            poll_interval_s=0.05,
        )
        context.run_in_background(deliverer)
        parts.update(outbox=outbox, deliverer=deliverer, router=router)
        return []

    # The receiver first: the sender's parent probe (yidi_runtime.parent_watch) would otherwise find
    # the port closed, and gRPC's reconnect backoff on that address would delay the first deliveries.
    receiver = Receiver()
    receiver_node = create_server(receiver_settings, [replace(GROUPS["filing"], register=receiver.register)])
    sender = create_server(sender_settings, [ServiceGroup(SERVICE, Base.metadata, VERSIONS, register)])
    built = Pair(receiver, receiver_settings, sender, parts, receiver_node)
    yield built
    sender.stop(0)
    parts["router"].close()
    if built.receiver_node is not None:
        built.stop_receiver()


def test_the_migration_creates_the_table_the_model_maps(pair: Pair) -> None:
    with pair.database.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, _parent: kind != "table" or name == f"{SERVICE}_outbox",
            },
        )
        assert compare_metadata(context, Base.metadata) == []


def test_a_rolled_back_message_is_never_sent_and_a_committed_one_is_delivered_once(pair: Pair) -> None:
    with pair.database.unit_of_work(write=True) as uow:
        pair.outbox.add(
            uow.session, "000000", CREATE_FILING, filing_api.CreateFilingRequest(request_id="rolled-back-1")
        )
    with pytest.raises(DomainError), pair.database.unit_of_work(write=True) as uow:
        pair.outbox.add(
            uow.session, "000000", CREATE_FILING, filing_api.CreateFilingRequest(request_id="rolled-back-2")
        )
        raise DomainError("INVALID_ARGUMENT")  # the local effect was refused after the add
    [sent] = pair.commit(1)

    eventually(
        lambda: all(row.delivered_at for row in pair.rows()), within_s=WAIT_S, what="the message is delivered"
    )
    eventually(lambda: pair.backlog_gauge() == 0, within_s=WAIT_S, what="the backlog gauge reads 0")
    [row] = pair.rows()
    assert (row.message_id, row.attempts, row.last_error) == (sent, 1, None)
    assert row.method == "/yidi.filing.v1.FilingService/CreateFiling"
    assert pair.receiver.calls == pair.receiver.applied == [sent]
    with pair.database.unit_of_work(write=True) as uow:
        assert pair.outbox.purge(uow.session, delivered_before=row.created_at - timedelta(days=1)) == 0
        assert pair.outbox.purge(uow.session, delivered_before=row.created_at + timedelta(days=1)) == 1
        uow.commit()
    assert pair.rows() == []

    pair.sender.stop(0)  # the deliverer stops with its node
    assert not [thread for thread in threading.enumerate() if thread.name.startswith(f"outbox-{SERVICE}")]


def test_with_the_receiver_down_messages_wait_in_order_and_arrive_when_it_is_back(pair: Pair) -> None:
    pair.stop_receiver()
    ids = pair.commit(3)

    eventually(
        lambda: pair.rows()[0].attempts >= 2, within_s=WAIT_S, what="the first message has been tried twice"
    )
    first, *later = pair.rows()
    assert first.delivered_at is None and "NODE_UNREACHABLE" in (first.last_error or "")
    assert [row.attempts for row in later] == [0, 0]  # nothing overtakes an undelivered message
    eventually(
        lambda: pair.backlog_gauge() == 3,
        within_s=WAIT_S,
        what="the backlog gauge counts the waiting messages",
    )
    assert pair.receiver.calls == []

    pair.start_receiver()
    eventually(
        lambda: all(row.delivered_at for row in pair.rows()),
        within_s=WAIT_S,
        what="every message is delivered",
    )
    eventually(lambda: pair.backlog_gauge() == 0, within_s=WAIT_S, what="the backlog gauge reads 0")
    assert pair.receiver.applied == pair.receiver.calls == ids


def test_a_lost_answer_is_resent_and_answered_from_the_request_log_without_a_second_effect(
    pair: Pair,
) -> None:
    lost, after = message_id("330000"), message_id("330000")
    pair.receiver.lose_answer_for.add(lost)
    with pair.database.unit_of_work(write=True) as uow:
        for rid in (lost, after):
            pair.outbox.add(
                uow.session, "000000", CREATE_FILING, filing_api.CreateFilingRequest(request_id=rid)
            )
        uow.commit()

    eventually(
        lambda: all(row.delivered_at for row in pair.rows()),
        within_s=WAIT_S,
        what="both messages are delivered",
    )
    assert pair.receiver.calls == [lost, lost, after]
    assert pair.receiver.applied == [lost, after]
    first, second = pair.rows()
    assert (first.attempts, second.attempts) == (2, 1)
    assert "DEADLINE_EXCEEDED" in (first.last_error or "")
    assert pair.receiver.database is not None
    with pair.receiver.database.unit_of_work() as uow:
        logged = uow.session.scalars(select(RequestRecord.request_id)).all()
    assert sorted(logged) == sorted([lost, after])


def test_a_refusal_is_retried_in_place_and_an_already_held_message_counts_as_delivered(pair: Pair) -> None:
    refused, duplicate = message_id("330000"), message_id("330000")
    pair.receiver.refusals = {refused: ["INVALID_ARGUMENT"], duplicate: ["DUPLICATE_REQUEST"]}
    with pair.database.unit_of_work(write=True) as uow:
        for rid in (refused, duplicate):
            pair.outbox.add(
                uow.session, "000000", CREATE_FILING, filing_api.CreateFilingRequest(request_id=rid)
            )
        uow.commit()

    eventually(
        lambda: all(row.delivered_at for row in pair.rows()),
        within_s=WAIT_S,
        what="both messages are settled",
    )
    assert pair.receiver.calls == [refused, refused, duplicate]
    assert pair.receiver.applied == [refused]
    first, second = pair.rows()
    assert (first.attempts, second.attempts) == (2, 1)
    assert (second.last_error or "").startswith("DUPLICATE_REQUEST")


def test_add_checks_the_method_the_message_id_and_the_destination(pair: Pair) -> None:
    get_filing = filing_api.DESCRIPTOR.services_by_name["FilingService"].methods_by_name["GetFiling"]
    with pair.database.unit_of_work(write=True) as uow:
        with pytest.raises(TypeError, match="GetFilingRequest"):
            pair.outbox.add(uow.session, "000000", get_filing, filing_api.CreateFilingRequest(request_id="x"))
        with pytest.raises(ValueError, match="message id"):
            pair.outbox.add(uow.session, "000000", CREATE_FILING, filing_api.CreateFilingRequest())
        with pytest.raises(DomainError) as refused:
            pair.outbox.add(uow.session, "33", CREATE_FILING, filing_api.CreateFilingRequest(request_id="x"))
        assert [v.field for v in refused.value.violations] == ["destination"]


def test_a_pass_records_what_it_sent_in_one_transaction_per_batch_read(pair: Pair) -> None:
    deliverer: OutboxDeliverer = pair.parts["deliverer"]
    deliverer.stop()
    ids = pair.commit(250)  # more than one batch (100) of the queue
    commits: list[int] = []

    def count(_connection: object) -> None:
        commits.append(1)

    event.listen(pair.database.engine, "commit", count)
    result = deliverer.deliver_pending()
    event.remove(pair.database.engine, "commit", count)
    assert (result.delivered, result.failed) == (250, 0)
    assert pair.receiver.calls == pair.receiver.applied == ids
    assert all(row.delivered_at is not None and row.attempts == 1 for row in pair.rows())
    assert len(commits) <= 3  # not one per message
    assert pair.backlog_gauge() == 0


class ScriptedPeer:
    """A router with one peer, which answers every batch with the next list of outcomes of a script."""

    def __init__(
        self, settings: NodeSettings, script: list[list[DomainError | None]], *, knows_batches: bool = True
    ) -> None:
        self.settings = settings
        self.script = script
        self.knows_batches = knows_batches
        self.sent: list[tuple[str, int]] = []  # (method, messages in the call)

    def toward(self, _destination: str, _field: str) -> ScriptedPeer:
        return self

    def raw(self, method: str) -> Callable[[bytes], bytes]:
        def send(payload: bytes) -> bytes:
            batch = filing_api.ImportInsuredPersonsRequest.FromString(payload) if "Import" in method else None
            if batch is not None and not self.knows_batches:
                raise DomainError("NODE_UNREACHABLE", metadata={"grpc_code": "UNIMPLEMENTED"})
            self.sent.append((method, len(batch.persons) if batch else 1))
            return b""

        return send

    def call(self, method: Callable[[bytes], bytes], payload: bytes, *, deadline_s: float) -> bytes:
        return method(payload)


def batching_deliverer(pair: Pair, peer: ScriptedPeer, linger_s: float = 0.0) -> OutboxDeliverer:
    """A deliverer of the pair's outbox to ``peer`` that sends CreateFiling in (stand-in) batches."""
    pair.parts["deliverer"].stop()
    import_persons = filing_api.DESCRIPTOR.services_by_name["FilingService"].methods_by_name[
        "ImportInsuredPersons"
    ]

    def pack(payloads: list[bytes]) -> filing_api.ImportInsuredPersonsRequest:
        return filing_api.ImportInsuredPersonsRequest(persons=[{} for _ in payloads])

    batching = {CREATE_FILING: Batching(import_persons, pack, lambda _answer, _count: peer.script.pop(0))}
    return OutboxDeliverer(
        pair.outbox,
        pair.database,
        peer,  # type: ignore[arg-type]
        CollectorRegistry(),
        backoff=Backoff(0.05, 0.05),
        batching=batching,
        linger_s=linger_s,
    )


def test_a_batched_method_leaves_in_one_call_and_only_its_refused_messages_are_sent_again(pair: Pair) -> None:
    """CreateFiling batched as one (stand-in) call: four messages, the second refused in the batch."""
    peer = ScriptedPeer(pair.sender.settings, [[None, DomainError("NOT_FOUND"), None, None]])
    deliverer = batching_deliverer(pair, peer)
    ids = pair.commit(4)

    first = deliverer.deliver_pending()
    assert (first.delivered, first.failed) == (3, 1)
    assert peer.sent == [("/yidi.filing.v1.FilingService/ImportInsuredPersons", 4)]
    rows = pair.rows()
    assert [row.message_id for row in rows] == ids
    assert [row.delivered_at is not None for row in rows] == [True, False, True, True]
    assert (rows[1].attempts, (rows[1].last_error or "").split(":")[0]) == (1, "NOT_FOUND")

    def again() -> PassResult | None:
        result = deliverer.deliver_pending()
        return result if result.delivered or result.failed else None

    second = eventually(again, within_s=WAIT_S, what="the refused one's pause passes and it goes again")
    assert (second.delivered, second.failed) == (1, 0)
    assert peer.sent[1:] == [("/yidi.filing.v1.FilingService/CreateFiling", 1)]
    assert all(row.delivered_at is not None for row in pair.rows())


def test_a_batch_a_node_on_the_way_does_not_know_goes_one_message_a_call(pair: Pair) -> None:
    peer = ScriptedPeer(pair.sender.settings, [], knows_batches=False)
    deliverer = batching_deliverer(pair, peer)
    pair.commit(3)

    result = deliverer.deliver_pending()

    assert (result.delivered, result.failed) == (3, 0)
    assert peer.sent == [("/yidi.filing.v1.FilingService/CreateFiling", 1)] * 3
    assert all(row.delivered_at is not None and row.attempts == 1 for row in pair.rows())


def test_messages_committed_while_the_deliverer_lingers_leave_in_one_batch(pair: Pair) -> None:
    peer = ScriptedPeer(pair.sender.settings, [[None] * 4])
    deliverer = batching_deliverer(pair, peer, linger_s=1.0)
    deliverer.start()
    try:
        pair.commit(4)  # the first commit wakes the deliverer; the others arrive while it lingers
        eventually(
            lambda: all(row.delivered_at is not None for row in pair.rows()),
            within_s=WAIT_S,
            what="all four are delivered",
        )
    finally:
        deliverer.stop()
    assert peer.sent == [("/yidi.filing.v1.FilingService/ImportInsuredPersons", 4)]


def test_replicas_on_one_postgresql_outbox_never_send_a_message_twice(pair: Pair) -> None:
    if pair.database.dialect != "postgresql":
        pytest.skip("replicas share a PostgreSQL outbox; an embedded node is one process")
    pair.parts["deliverer"].stop()
    replicas = [
        OutboxDeliverer(pair.outbox, pair.database, pair.parts["router"], CollectorRegistry())
        for _ in range(3)
    ]
    ids = pair.commit(30)
    start = threading.Barrier(len(replicas))

    def deliver(replica: OutboxDeliverer) -> None:
        start.wait()
        for _ in range(20):  # bounded: each pass sends what it claims
            replica.deliver_pending()

    with ThreadPoolExecutor(len(replicas)) as pool:
        list(pool.map(deliver, replicas))
    assert all(row.delivered_at is not None for row in pair.rows())
    assert pair.receiver.calls == pair.receiver.applied == ids  # each sent once, in order
