"""A province node and the national node on loopback: pushing changes up, lookups through the parent.

Between the two sits a relay that forwards every call and can lose the answers, so a push
whose answer never came back is seen from the province exactly as on a real network.
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


def test_push_reaches_the_national_node_and_a_lost_answer_is_resent_without_doubling(tree: Tree) -> None:
    with tree.channel(tree.province) as province, tree.channel(tree.national) as national:
        register(stub(province), hospital(JIAXING, service(INPATIENT)), hospital(JIAXING_PHARMACY))
        tree.relay.losing_answers = True
        with pytest.raises(grpc.RpcError) as lost:
            push(province)
        reason, metadata, _ = refusal(lost.value)
        assert (reason, metadata["peer_region"]) == ("NODE_UNREACHABLE", "000000")
        assert held(national, JIAXING) == (f"sample hospital {JIAXING}", 1)

        tree.relay.losing_answers = False
        changed = hospital(JIAXING, service(INPATIENT), fixmedins_name="Jiaxing second hospital")
        stub(province).UpdateInstitution(
            api.UpdateInstitutionRequest(request_id=request_id(), institution=changed)
        )
        rid = request_id()
        again = push(province, rid)
        assert (again.parent_admdvs, again.sent_count, again.applied_count, again.stale_count) == (
            "000000",
            2,
            1,
            1,
        )
        assert held(national, JIAXING) == ("Jiaxing second hospital", 2)
        assert held(national, JIAXING_PHARMACY) == (f"sample hospital {JIAXING_PHARMACY}", 1)
        listed = stub(national).ListInstitutions(api.ListInstitutionsRequest(admdvs="330000"))
        assert [i.fixmedins_code for i in listed.institutions] == [JIAXING, JIAXING_PHARMACY]

        syncs = tree.relay.calls["SyncInstitutions"]
        assert push(province, rid) == again
        nothing = push(province)
        assert (nothing.sent_count, nothing.batch_count) == (0, 0)
        assert tree.relay.calls["SyncInstitutions"] == syncs


def test_a_large_registry_is_pushed_in_batches_in_one_pass(tree: Tree) -> None:
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
        pushed = push(province)
        assert (pushed.sent_count, pushed.applied_count, pushed.batch_count) == (1100, 1100, 3)
        page = stub(national).ListInstitutions(api.ListInstitutionsRequest(admdvs="330402", page_size=1000))
        assert len(page.institutions) == 1000 and page.next_page_token
        assert push(province).sent_count == 0


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
    done = sync(tree.province)
    assert done.returncode == 0, done.stderr
    assert "pushed 1 institutions to 000000 in 1 batches: 1 applied, 0 already held" in done.stdout
    assert "no parent" in sync(tree.national).stdout
    with tree.channel(tree.province) as province:
        register(stub(province), hospital(JIAXING_PHARMACY))
    tree.national.stop(0)
    refused = sync(tree.province)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert "NODE_UNREACHABLE" in refused.stderr
