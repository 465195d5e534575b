"""Estimate across the region tree: the treatment catalogue and the insured policy on different nodes.

The worked example (a Langfang retiree's diabetes drugs in Beijing) is estimated at every
node of a tree where Beijing's catalogue lives only at 110000 and Langfang's policy only at
the city node 131000 under Hebei: each answer equals the single-node one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import grpc
import pytest
from conftest import day

from yidi.catalogue.v1 import (
    catalogue_pb2,
    catalogue_service_pb2,
    catalogue_service_pb2_grpc,
    policy_service_pb2,
    policy_service_pb2_grpc,
)
from yidi.type.v1 import fee_item_pb2, filing_category_pb2, visit_pb2
from yidi_codec.catalogue import entry_from_proto
from yidi_codec.policies import policy_from_proto
from yidi_runtime.server import Node
from yidi_services.catalogue.catalogue_csv import parse_catalogue_csv
from yidi_services.catalogue.catalogues import CatalogueVersion, Found, Layer
from yidi_services.catalogue.messages import item_message, policy_message
from yidi_services.catalogue.policies import DocumentFormat, PolicyVersion, read_document
from yidi_testing import NodeSpec, error_details, node_tree

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "examples" / "data"
BEIJING = DATA / "catalogues" / "110000-beijing.csv"
LANGFANG = DATA / "policies" / "131000-310-langfang.toml"
CASE = json.loads((REPO / "examples" / "cases" / "langfang-retiree-diabetes-beijing.json").read_text())
TREE = (
    NodeSpec("000000", "national"),
    NodeSpec("110000", "province", "000000"),
    NodeSpec("130000", "province", "000000"),
    NodeSpec("131000", "city", "130000"),
)


def estimate_request(
    insured: str = "131000", treatment: str = "110105"
) -> policy_service_pb2.EstimateRequest:
    """The worked example as an EstimateRequest."""
    visit, person = CASE["visit"], CASE["person"]
    return policy_service_pb2.EstimateRequest(
        insuplc_admdvs=insured,
        insutype=person["insutype"],
        psn_type=person["psn_type"],
        filing_category=filing_category_pb2.FILING_CATEGORY_RETIREE_RESETTLED,
        visit=visit_pb2.VisitFacts(
            med_type=visit["med_type"],
            service_date=day(visit["service_date"]),
            institution_level=visit["institution_level"],
            diagnoses=visit["diagnoses"],
            chronic_disease=visit["chronic_disease"],
            mdtrtarea_admvs=treatment,
        ),
        items=[
            fee_item_pb2.FeeItem(
                feedetl_sn=item["sn"], med_list_codg=item["code"], cnt=item["qty"], pric=item["price"]
            )
            for item in CASE["items"]
        ],
    )


@pytest.fixture
def tree(tmp_path: Path, database_factory: Callable[[], str | None]) -> Iterator[dict[str, Node]]:
    """The tree with Beijing's catalogue at 110000 and Langfang's policy at 131000, nowhere else."""
    with node_tree(tmp_path, TREE, database_factory) as nodes:
        content = BEIJING.read_bytes()
        header = catalogue_service_pb2.ImportCatalogueHeader(
            request_id="110000000000202201010000000001",
            admdvs="110000",
            layer=catalogue_pb2.CATALOGUE_LAYER_PROVINCIAL_OVERLAY,
            effective_date=day("2022-01-01"),
        )
        with grpc.insecure_channel(nodes["110000"].address) as channel:
            catalogue_service_pb2_grpc.CatalogueServiceStub(channel).ImportCatalogue(
                iter(
                    [
                        catalogue_service_pb2.ImportCatalogueRequest(header=header),
                        catalogue_service_pb2.ImportCatalogueRequest(csv_chunk=content),
                    ]
                ),
                timeout=30,
            )
        with grpc.insecure_channel(nodes["131000"].address) as channel:
            policy_service_pb2_grpc.PolicyServiceStub(channel).ImportPolicy(
                policy_service_pb2.ImportPolicyRequest(
                    request_id="131000000000202201010000000001",
                    insuplc_admdvs="131000",
                    insutype="310",
                    effective_date=day("2022-01-01"),
                    format=policy_service_pb2.POLICY_FORMAT_TOML,
                    document=LANGFANG.read_bytes(),
                ),
                timeout=10,
            )
        yield nodes


def test_every_node_estimates_the_worked_example_from_the_nodes_hosting_its_data(
    tree: dict[str, Node],
) -> None:
    for region in ("110000", "131000", "130000", "000000"):
        with grpc.insecure_channel(tree[region].address) as channel:
            stub = policy_service_pb2_grpc.PolicyServiceStub(channel)
            result = stub.Estimate(estimate_request(), timeout=10).result
            twice = stub.Estimate(estimate_request(), timeout=10).result
        assert (result.amounts.fund_pay_sumamt_fen, result.amounts.psn_part_amt_fen) == (4889, 1540), region
        assert result.catalogue_version.startswith("110000@2022-01-01#"), region
        assert result.policy_version.startswith("131000/310@2022-01-01#"), region
        assert twice == result


def test_policies_and_catalogue_entries_are_read_through_the_tree(tree: dict[str, Node]) -> None:
    request = policy_service_pb2.GetPolicyRequest(
        insuplc_admdvs="131000", insutype="310", date=day("2022-07-01")
    )
    with (
        grpc.insecure_channel(tree["131000"].address) as home,
        grpc.insecure_channel(tree["110000"].address) as far,
    ):
        assert policy_service_pb2_grpc.PolicyServiceStub(far).GetPolicy(
            request, timeout=10
        ) == policy_service_pb2_grpc.PolicyServiceStub(home).GetPolicy(request, timeout=10)
        lookup = catalogue_service_pb2.LookupItemsRequest(
            admdvs="110105", codes=[item["code"] for item in CASE["items"]], date=day("2022-07-01")
        )
        assert catalogue_service_pb2_grpc.CatalogueServiceStub(home).LookupItems(
            lookup, timeout=10
        ) == catalogue_service_pb2_grpc.CatalogueServiceStub(far).LookupItems(lookup, timeout=10)


def test_refusals_keep_their_reason_and_an_unreachable_host_is_named(tree: dict[str, Node]) -> None:
    with grpc.insecure_channel(tree["110000"].address) as channel:
        stub = policy_service_pb2_grpc.PolicyServiceStub(channel)
        with pytest.raises(grpc.RpcError) as no_policy:
            stub.Estimate(estimate_request(insured="130100"), timeout=10)
        assert error_details(no_policy.value)["ErrorInfo"].reason == "NO_POLICY_VERSION"
        with pytest.raises(grpc.RpcError) as no_catalogue:
            stub.Estimate(estimate_request(treatment="130100"), timeout=10)
        assert error_details(no_catalogue.value)["ErrorInfo"].reason == "NO_CATALOGUE_VERSION"
        with pytest.raises(grpc.RpcError) as no_route:
            stub.Estimate(estimate_request(insured="330100"), timeout=10)
        assert error_details(no_route.value)["ErrorInfo"].reason == "NODE_UNREACHABLE"

        tree["131000"].stop(0)
        with pytest.raises(grpc.RpcError) as unreachable:
            stub.Estimate(estimate_request(), timeout=20)
        assert unreachable.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_details(unreachable.value)["ErrorInfo"].reason == "NODE_UNREACHABLE"


def _policy_blocks() -> list[dict]:
    cases = sorted((Path(__file__).resolve().parents[2] / "examples" / "cases" / "golden").glob("*.json"))
    documents = [json.loads(path.read_text(encoding="utf-8")) for path in cases]
    blocks = [  # a case whose policy is refused has no policy stored anywhere
        document["case"]["policy"]
        for document in documents
        if document["expected"].get("error", {}).get("reason")
        not in ("POLICY_LIMIT_EXCEEDED", "INVALID_POLICY")
    ]
    return [read_document(LANGFANG.read_bytes(), DocumentFormat.TOML), *blocks]


@pytest.mark.parametrize("block", _policy_blocks())
def test_a_policy_read_from_another_node_is_the_policy_stored_there(block: dict) -> None:
    version = PolicyVersion(
        1, "131000", "310", date(2022, 1, 1), None, block, datetime(2022, 1, 1, tzinfo=UTC)
    )
    assert policy_from_proto(policy_message(version)) == version.policy


def test_a_catalogue_item_read_from_another_node_is_the_entry_stored_there() -> None:
    version = CatalogueVersion(
        1, "110000", Layer.PROVINCIAL_OVERLAY, date(2022, 1, 1), 0, datetime.now(UTC), ""
    )
    rows = parse_catalogue_csv(BEIJING.read_bytes())
    assert rows
    assert [entry_from_proto(item_message(Found(row, version))) for row in rows] == [
        row.entry() for row in rows
    ]
