"""A province node and the national node on loopback: changes sent up, lookups through the parent.

Between the two sits a relay that forwards every call and can lose the answers, so a
message whose answer never came back is seen from the province exactly as on a real network.
The registry outbox sends every change up by itself; PushInstitutions (``yidi registry
sync``) is the operator's catch-up of what the parent has not acknowledged.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import pytest
from registry_builders import INPATIENT, day, hospital, refusal, register, request_id, service, stub
from sqlalchemy import create_engine, text

from yidi.registry.v1 import institution_registry_service_pb2 as api
from yidi_harness.polling import eventually
from yidi_runtime.config import Peer
from yidi_runtime.server import Node, create_server
from yidi_services.node import GROUPS, start_node
from yidi_services.registry.servicer import registrar
from yidi_services.registry.upstream import TTL_S
from yidi_testing import settings_for

BEIJING = "H11010100001"
JIAXING = "H33040200001"
JIAXING_PHARMACY = "P33040200001"
YIDI = Path(sys.executable).with_name("yidi")
CSV_HEADER = (
    "fixmedins_code,fixmedins_name,type,level,admdvs,address,status,"
    "accepts_cross_province,accepts_in_province,services\n"
)


class Relay(grpc.GenericRpcHandler):
    """A hop in front of a node: forwards raw calls, counts them, and loses answers on demand."""

    def __init__(self, target: str) -> None:
        self.calls: Counter[str] = Counter()
        self.losing_answers = False
        self._upstream = grpc.insecure_channel(target)
        self._server = grpc.server(ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers((self,))
        self.address = f"127.0.0.1:{self._server.add_insecure_port('127.0.0.1:0')}"
        self._server.start()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = details.method  # type: ignore[attr-defined]

        def forward(request: bytes, context: grpc.ServicerContext) -> bytes:
            self.calls[method.rsplit("/", 1)[-1]] += 1
            try:
                answer = self._upstream.unary_unary(method)(request, timeout=10)
            except grpc.RpcError as error:
                context.set_trailing_metadata(error.trailing_metadata())  # type: ignore[attr-defined]
                context.abort(error.code(), error.details())  # type: ignore[attr-defined]
            if self.losing_answers:
                context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset before the answer arrived")
            return answer

        return grpc.unary_unary_rpc_method_handler(forward)

    def stop(self) -> None:
        self._server.stop(0).wait()
        self._upstream.close()


@dataclass
class Tree:
    """The national node, the relay in front of it, and a Zhejiang province node behind the relay."""

    national: Node
    relay: Relay
    province: Node
    now: list[float]

    def channel(self, node: Node) -> grpc.Channel:
        return grpc.insecure_channel(node.address)


@pytest.fixture
def second_database_url(request: pytest.FixtureRequest, database_url: str | None) -> Iterator[str | None]:
    """Another empty database on the same server (each node owns its own)."""
    if database_url is None:
        yield None
        return
    base, name = database_url.rsplit("/", 1)[0], f"yidi_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def tree(tmp_path: Path, database_url: str | None, second_database_url: str | None) -> Iterator[Tree]:
    national = start_node(
        settings_for(
            tmp_path / "national",
            database_url,
            auto_migrate=True,
            role="national",
            region="000000",
            services="registry",
        )
    )
    relay = Relay(national.address)
    now = [0.0]
    settings = settings_for(
        tmp_path / "zhejiang",
        second_database_url,
        auto_migrate=True,
        role="province",
        region="330000",
        services="registry",
    )
    province = create_server(
        replace(settings, parent=Peer("000000", relay.address)),
        [replace(GROUPS["registry"], register=registrar(cache_clock=lambda: now[0]))],
    )
    yield Tree(national, relay, province, now)
    province.stop(0)
    relay.stop()
    national.stop(0)


def push(channel: grpc.Channel, rid: str = "") -> api.PushInstitutionsResponse:
    return stub(channel).PushInstitutions(api.PushInstitutionsRequest(request_id=rid or request_id()))


def held(channel: grpc.Channel, code: str) -> tuple[str, int]:
    found = stub(channel).GetInstitution(api.GetInstitutionRequest(fixmedins_code=code)).institution
    return found.fixmedins_name, found.version


def acknowledged(province: grpc.Channel) -> bool:
    """The parent acknowledged every record: a catch-up push has nothing to send."""
    return push(province).sent_count == 0


def test_changes_reach_the_national_node_by_themselves_and_a_lost_answer_is_resent_without_doubling(
    tree: Tree,
) -> None:
    with tree.channel(tree.province) as province, tree.channel(tree.national) as national:
        tree.relay.losing_answers = True
        register(stub(province), hospital(JIAXING, service(INPATIENT)), hospital(JIAXING_PHARMACY))
        eventually(
            lambda: tree.relay.calls["SyncInstitutions"] >= 2, within_s=10, what="a delivery sent again"
        )
        tree.relay.losing_answers = False
        assert held(national, JIAXING) == (f"sample hospital {JIAXING}", 1)

        changed = hospital(JIAXING, service(INPATIENT), fixmedins_name="Jiaxing second hospital")
        stub(province).UpdateInstitution(
            api.UpdateInstitutionRequest(request_id=request_id(), institution=changed)
        )
        eventually(
            lambda: held(national, JIAXING) == ("Jiaxing second hospital", 2),
            within_s=15,
            what="the update at the national node",
        )
        assert held(national, JIAXING_PHARMACY) == (f"sample hospital {JIAXING_PHARMACY}", 1)
        listed = stub(national).ListInstitutions(api.ListInstitutionsRequest(admdvs="330000"))
        assert [i.fixmedins_code for i in listed.institutions] == [JIAXING, JIAXING_PHARMACY]
        eventually(lambda: acknowledged(province), within_s=10, what="the deliveries acknowledged")
        syncs = tree.relay.calls["SyncInstitutions"]
        assert (push(province).batch_count, tree.relay.calls["SyncInstitutions"]) == (0, syncs)


def test_a_large_import_reaches_the_national_node_in_messages_of_500(tree: Tree) -> None:
    rows = "".join(
        f"H330402{n:05d},sample {n},medical,2,330402,sample,active,true,true,inpatient@2024-01-01\n"
        for n in range(1, 1101)
    )
    header = api.ImportInstitutionsHeader(request_id=request_id(), admdvs="330000")
    with tree.channel(tree.province) as province, tree.channel(tree.national) as national:
        stub(province).ImportInstitutions(
            iter(
                [
                    api.ImportInstitutionsRequest(header=header),
                    api.ImportInstitutionsRequest(csv_chunk=(CSV_HEADER + rows).encode()),
                ]
            )
        )

        def listed_at_national() -> int:
            listing = api.ListInstitutionsRequest(admdvs="330402", page_size=1000)
            first = stub(national).ListInstitutions(listing)
            listing.page_token = first.next_page_token
            rest = stub(national).ListInstitutions(listing).institutions if first.next_page_token else []
            return len(first.institutions) + len(rest)

        eventually(lambda: listed_at_national() == 1100, within_s=20, what="the import at the national node")
        assert tree.relay.calls["SyncInstitutions"] == 3
        eventually(lambda: acknowledged(province), within_s=10, what="the deliveries acknowledged")


def test_a_node_without_a_parent_has_nothing_to_push(tree: Tree) -> None:
    with tree.channel(tree.national) as national:
        register(stub(national), hospital(BEIJING, service(INPATIENT)))
        answer = push(national)
    assert (answer.parent_admdvs, answer.sent_count) == ("", 0)


def test_lookups_outside_the_province_are_answered_by_the_national_node_and_cached(tree: Tree) -> None:
    with tree.channel(tree.province) as province, tree.channel(tree.national) as national:
        register(stub(national), hospital(BEIJING, service(INPATIENT)))
        register(stub(province), hospital(JIAXING, service(INPATIENT)))

        assert held(province, BEIJING) == (f"sample hospital {BEIJING}", 1)
        assert tree.relay.calls["GetInstitution"] == 1
        renamed = hospital(BEIJING, service(INPATIENT), fixmedins_name="Beijing hospital, renamed")
        stub(national).UpdateInstitution(
            api.UpdateInstitutionRequest(request_id=request_id(), institution=renamed)
        )
        tree.now[0] += TTL_S - 1
        assert held(province, BEIJING) == (f"sample hospital {BEIJING}", 1)
        assert tree.relay.calls["GetInstitution"] == 1
        tree.now[0] += 2
        assert held(province, BEIJING) == ("Beijing hospital, renamed", 2)
        assert tree.relay.calls["GetInstitution"] == 2

        assert held(province, JIAXING)[1] == 1
        with pytest.raises(grpc.RpcError) as malformed:
            held(province, "H1101")
        assert refusal(malformed.value)[0] == "INVALID_CODE"
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as unknown:
                held(province, "H11010100099")
            assert (unknown.value.code(), refusal(unknown.value)[0]) == (
                grpc.StatusCode.NOT_FOUND,
                "NOT_FOUND",
            )
        assert tree.relay.calls["GetInstitution"] == 3

        check = api.CheckInstitutionRequest(
            fixmedins_code=BEIJING, med_type="11", service_date=day("2026-06-01"), insuplc_admdvs="330402"
        )
        with pytest.raises(grpc.RpcError) as outpatient:
            stub(province).CheckInstitution(check)
        assert refusal(outpatient.value)[0] == "SERVICE_NOT_ENABLED"
        check.med_type = "21"
        assert stub(province).CheckInstitution(check).service.kind == INPATIENT

        beijing = stub(province).ListInstitutions(api.ListInstitutionsRequest(admdvs="110000"))
        assert [i.fixmedins_code for i in beijing.institutions] == [BEIJING]
        own = stub(province).ListInstitutions(api.ListInstitutionsRequest(admdvs="330000"))
        assert [i.fixmedins_code for i in own.institutions] == [JIAXING]
        assert tree.relay.calls["ListInstitutions"] == 1


def test_an_unreachable_parent_is_a_stable_reason_and_is_not_cached(tree: Tree) -> None:
    with tree.channel(tree.province) as province:
        register(stub(province), hospital(JIAXING, service(INPATIENT)))
        tree.national.stop(0)
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as down:
                held(province, BEIJING)
            reason, metadata, _ = refusal(down.value)
            assert (down.value.code(), reason) == (grpc.StatusCode.UNAVAILABLE, "NODE_UNREACHABLE")
            assert metadata["peer_address"] == tree.relay.address
        assert tree.relay.calls["GetInstitution"] == 2
        register(stub(province), hospital(JIAXING_PHARMACY))
        with pytest.raises(grpc.RpcError) as unpushed:
            push(province)
        assert refusal(unpushed.value)[0] == "NODE_UNREACHABLE"
        assert held(province, JIAXING)[1] == 1


def test_yidi_registry_sync_asks_the_province_node_to_push(tree: Tree) -> None:
    def sync(node: Node) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(YIDI), "registry", "sync", "--address", node.address, "--insecure"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    with tree.channel(tree.province) as province:
        register(stub(province), hospital(JIAXING, service(INPATIENT)))
        eventually(lambda: acknowledged(province), within_s=10, what="the registration delivered")
    done = sync(tree.province)
    assert done.returncode == 0, done.stderr
    assert "pushed 0 institutions to 000000 in 0 batches: 0 applied, 0 already held" in done.stdout
    assert "no parent" in sync(tree.national).stdout
    tree.national.stop(0)
    with tree.channel(tree.province) as province:
        register(stub(province), hospital(JIAXING_PHARMACY))
    refused = sync(tree.province)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert "NODE_UNREACHABLE" in refused.stderr
