"""The in-process federation: the tree is wired as configured and the samples land where they belong."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.type.date_pb2 import Date

from yidi.catalogue.v1 import policy_service_pb2, policy_service_pb2_grpc
from yidi.filing.v1 import filing_service_pb2, filing_service_pb2_grpc
from yidi.registry.v1 import institution_registry_service_pb2 as registry_api
from yidi.registry.v1 import institution_registry_service_pb2_grpc as registry_grpc
from yidi_harness.federation import (
    DEMO_TOPOLOGY,
    Federation,
    NodeSpec,
    Topology,
    free_base_port,
    load_sample_data,
    start_federation,
)
from yidi_runtime.config import Peer, Role
from yidi_testing import error_details


@pytest.fixture
def federation(tmp_path: Path, database_factory: Callable[[], str | None]) -> Iterator[Federation]:
    with start_federation(DEMO_TOPOLOGY, tmp_path, database_factory) as started:
        load_sample_data(started)
        yield started


def _registry(federation: Federation, region: str) -> registry_grpc.InstitutionRegistryServiceStub:
    return registry_grpc.InstitutionRegistryServiceStub(federation.channel(region))


def _codes(federation: Federation, region: str, admdvs: str = "") -> set[str]:
    listed = _registry(federation, region).ListInstitutions(
        registry_api.ListInstitutionsRequest(admdvs=admdvs, page_size=1000), timeout=10
    )
    return {institution.fixmedins_code for institution in listed.institutions}


def test_each_node_knows_its_parent_and_children(federation: Federation) -> None:
    settings = {region: node.settings for region, node in federation.nodes.items()}
    assert settings["000000"].role is Role.NATIONAL and settings["000000"].parent is None
    assert set(settings["000000"].children) == {
        Peer(region, federation.address(region))
        for region in ("110000", "120000", "130000", "140000", "330000", "440000", "630000")
    }
    assert settings["330400"].parent == Peer("330000", federation.address("330000"))
    assert settings["330000"].children == (Peer("330400", federation.address("330400")),)
    assert settings["131000"].role is Role.CITY and settings["131000"].parent == Peer(
        "130000", federation.address("130000")
    )
    assert all(node.address.startswith("127.0.0.1:") for node in federation.nodes.values())


def test_institutions_live_at_their_deepest_node_and_the_national_master_copy(federation: Federation) -> None:
    assert _codes(federation, "330400", "330400") == {"H33040200001", "P33040200001"}
    assert _codes(federation, "330000", "330000") == {"H33040200001", "P33040200001"}
    national = _codes(federation, "000000")
    assert len(national) == 11, "every institution of a province with a node, pushed up"
    assert not any(code.startswith(("H41", "H52")) for code in national), "no node for Henan or Guizhou"
    # a city node answers for another province's institution through its parents
    found = _registry(federation, "131000").GetInstitution(
        registry_api.GetInstitutionRequest(fixmedins_code="H11010100001"), timeout=10
    )
    assert found.institution.level == "3"


def test_policies_persons_and_rules_live_at_the_node_hosting_the_insured_region(
    federation: Federation,
) -> None:
    def policy(node: str, region: str, insutype: str) -> policy_service_pb2.GetPolicyResponse:
        return policy_service_pb2_grpc.PolicyServiceStub(federation.channel(node)).GetPolicy(
            policy_service_pb2.GetPolicyRequest(
                insuplc_admdvs=region, insutype=insutype, date=Date(year=2026, month=1, day=1)
            ),
            timeout=10,
        )

    assert policy("131000", "131000", "310").policy.version_id.startswith("131000/310@2022-01-01")
    assert policy("140000", "140100", "310").policy.version_id.startswith("140100/310@2022-01-01")
    assert policy("000000", "630000", "390").policy.version_id.startswith("630000/390@2022-01-01")
    with pytest.raises(grpc.RpcError) as refused:
        policy("000000", "520100", "390")
    assert error_details(refused.value)["ErrorInfo"].reason == "NODE_UNREACHABLE", "no node hosts Guiyang"

    def persons(node: str, region: str) -> int:
        listed = filing_service_pb2_grpc.FilingServiceStub(federation.channel(node)).ListInsuredPersons(
            filing_service_pb2.ListInsuredPersonsRequest(insuplc_admdvs=region), timeout=10
        )
        return len(listed.persons)

    assert persons("131000", "131000") == 2
    assert persons("440000", "440300") == 2
    assert persons("130000", "130000") == 0, "Langfang's persons live at the Langfang city node"
    rules = filing_service_pb2_grpc.FilingServiceStub(federation.channel("630000")).GetFilingRules(
        filing_service_pb2.GetFilingRulesRequest(insuplc_admdvs="630000"), timeout=10
    )
    assert rules.rules.long_term_min_months == 12


def test_hosting_node_is_the_deepest_one_and_never_the_national_node() -> None:
    assert DEMO_TOPOLOGY.host_of("131000").region == "131000"
    assert DEMO_TOPOLOGY.host_of("130105").region == "130000"
    assert DEMO_TOPOLOGY.host_of("330402").region == "330400"
    assert DEMO_TOPOLOGY.host_of("140100").region == "140000"
    assert DEMO_TOPOLOGY.host_of("520100") is None
    only_national = Topology((NodeSpec("000000", Role.NATIONAL, "national"),))
    assert only_national.host_of("110000") is None


def test_a_topology_lists_parents_first_and_each_region_once() -> None:
    with pytest.raises(ValueError, match="parent 110000 must be listed before"):
        Topology((NodeSpec("110100", Role.CITY, "city", "110000"), NodeSpec("110000", Role.PROVINCE, "bj")))
    with pytest.raises(ValueError, match="appears twice"):
        Topology((NodeSpec("000000", Role.NATIONAL, "a"), NodeSpec("000000", Role.NATIONAL, "b")))


def test_fixed_ports_follow_the_base_port_in_topology_order(tmp_path: Path) -> None:
    topology = Topology(
        (
            NodeSpec("000000", Role.NATIONAL, "national", services=("registry",)),
            NodeSpec("330000", Role.PROVINCE, "zj", "000000", services=("registry",)),
        )
    )
    base = free_base_port(2)
    with start_federation(topology, tmp_path, base_port=base) as started:
        assert [started.address(region) for region in ("000000", "330000")] == [
            f"127.0.0.1:{base}",
            f"127.0.0.1:{base + 1}",
        ]
        assert started.nodes["330000"].settings.services == ("registry",)


def test_fixed_ports_in_use_are_named_before_anything_starts(tmp_path: Path) -> None:
    topology = Topology(
        (
            NodeSpec("000000", Role.NATIONAL, "national", services=("registry",)),
            NodeSpec("330000", Role.PROVINCE, "zj", "000000", services=("registry",)),
        )
    )
    base = free_base_port(2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 1))
        taken.listen()
        with pytest.raises(OSError, match=f"port {base + 1} on 127.0.0.1 is in use"):
            start_federation(topology, tmp_path, base_port=base)
    assert not list(tmp_path.iterdir()), "no node started"


def test_a_node_that_cannot_start_stops_the_ones_already_started(tmp_path: Path) -> None:
    topology = Topology(
        (
            NodeSpec("000000", Role.NATIONAL, "national", services=("registry",)),
            NodeSpec("330000", Role.PROVINCE, "zj", "000000", services=("registry",)),
        )
    )
    base = free_base_port(2)
    (tmp_path / "330000-zj").write_text("a file where the node's data folder should be")
    with pytest.raises(FileExistsError):
        start_federation(topology, tmp_path, base_port=base)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", base))  # the national node started, and was stopped again
