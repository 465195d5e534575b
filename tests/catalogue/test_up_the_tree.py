"""Policies and catalogues found up the region tree: a county's own, else its city's, else its province's.

A two-node tree, Zhejiang (330000) and its city Jiaxing (330400): the city node hosts the
policies of Jiaxing and its counties, the province node Zhejiang's own and those of cities
without a node (Huzhou, 330500), and every catalogue of the province.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from conftest import HEADER, day, request_id

from yidi.catalogue.v1 import (
    catalogue_pb2,
    catalogue_service_pb2,
    catalogue_service_pb2_grpc,
    policy_service_pb2,
    policy_service_pb2_grpc,
)
from yidi_testing import NodeSpec, error_details, node_tree

TREE = (NodeSpec("330000", "province"), NodeSpec("330400", "city", "330000"))
BED = "001102000010000"
STENT = "C0203010340000000001"
ON = "2026-03-01"


def document(ratio: str) -> bytes:
    """A one-rule policy paying ``ratio``: each region's ratio tells whose policy answered."""
    rule = f'{{"med_types": ["*"], "psn_types": ["*"], "institution_levels": ["*"], "ratio": "{ratio}"}}'
    return f'{{"rules": [{rule}]}}'.encode()


class Stubs:
    """The policy and catalogue stubs of the tree's nodes."""

    def __init__(self, channels: dict[str, grpc.Channel]) -> None:
        self._channels = channels

    def policy(self, region: str) -> policy_service_pb2_grpc.PolicyServiceStub:
        return policy_service_pb2_grpc.PolicyServiceStub(self._channels[region])

    def catalogue(self, region: str) -> catalogue_service_pb2_grpc.CatalogueServiceStub:
        return catalogue_service_pb2_grpc.CatalogueServiceStub(self._channels[region])

    def import_policy(self, node: str, insured: str, insutype: str, ratio: str) -> None:
        self.policy(node).ImportPolicy(
            policy_service_pb2.ImportPolicyRequest(
                request_id=request_id(),
                insuplc_admdvs=insured,
                insutype=insutype,
                effective_date=day("2026-01-01"),
                format=policy_service_pb2.POLICY_FORMAT_JSON,
                document=document(ratio),
            ),
            timeout=10,
        )

    def get_policy(self, node: str, insured: str, insutype: str = "310") -> tuple[str, str]:
        """Whose policy answered, and its ratio."""
        found = (
            self.policy(node)
            .GetPolicy(
                policy_service_pb2.GetPolicyRequest(insuplc_admdvs=insured, insutype=insutype, date=day(ON)),
                timeout=10,
            )
            .policy
        )
        assert found.version_id.startswith(f"{found.insuplc_admdvs}/{insutype}@")
        return found.insuplc_admdvs, found.rules[0].ratio

    def import_catalogue(self, admdvs: str, level: str, node: str = "330000") -> None:
        """A version of ``admdvs`` (at the province node unless told) classing the stent at ``level``."""
        layer = (
            catalogue_pb2.CATALOGUE_LAYER_NATIONAL_BASE
            if admdvs == "000000"
            else catalogue_pb2.CATALOGUE_LAYER_PROVINCIAL_OVERLAY
        )
        header = catalogue_service_pb2.ImportCatalogueHeader(
            request_id=request_id(), admdvs=admdvs, layer=layer, effective_date=day("2026-01-01")
        )
        rows = f"{STENT},冠脉支架,consumable,{level},,,,,,\n"
        if admdvs == "000000":
            rows += f"{BED},床位费,service,01,,,,,,\n"
        self.catalogue(node).ImportCatalogue(
            iter(
                [
                    catalogue_service_pb2.ImportCatalogueRequest(header=header),
                    catalogue_service_pb2.ImportCatalogueRequest(csv_chunk=(HEADER + rows).encode()),
                ]
            ),
            timeout=30,
        )

    def lookup(self, node: str, treatment: str) -> tuple[str, dict[str, str]]:
        """The overlay's region and each code's class, as LookupItems at ``node`` answers for ``treatment``."""
        answer = self.catalogue(node).LookupItems(
            catalogue_service_pb2.LookupItemsRequest(admdvs=treatment, codes=[STENT, BED], date=day(ON)),
            timeout=10,
        )
        assert answer.base_version_id.startswith("000000@")
        return answer.overlay_version_id[:6], {item.code: item.chrgitm_lv for item in answer.items}


@pytest.fixture
def stubs(tmp_path: Path, database_factory: Callable[[], str | None]) -> Iterator[Stubs]:
    with node_tree(tmp_path, TREE, database_factory) as nodes:
        channels = {region: grpc.insecure_channel(node.address) for region, node in nodes.items()}
        try:
            yield Stubs(channels)
        finally:
            for channel in channels.values():
                channel.close()


def test_a_policy_is_the_regions_own_else_its_citys_else_its_provinces(stubs: Stubs) -> None:
    stubs.import_policy("330400", "330421", "310", "0.95")
    stubs.import_policy("330400", "330400", "310", "0.90")
    stubs.import_policy("330000", "330000", "310", "0.70")
    stubs.import_policy("330000", "330000", "390", "0.60")
    # Imported where no lookup would read them: the county's at the province, the province's at the city.
    refused_where_not_read(lambda: stubs.import_policy("330000", "330422", "310", "0.50"))
    refused_where_not_read(lambda: stubs.import_policy("330400", "330000", "340", "0.50"))
    for node in ("330400", "330000"):
        assert stubs.get_policy(node, "330421") == ("330421", "0.95"), node
        assert stubs.get_policy(node, "330422") == ("330400", "0.90"), node
        assert stubs.get_policy(node, "330400") == ("330400", "0.90"), node
        # Jiaxing has no resident policy: the city node asks its province.
        assert stubs.get_policy(node, "330422", "390") == ("330000", "0.60"), node
        # Huzhou has no node and no policy of its own: the province's.
        assert stubs.get_policy(node, "330521") == ("330000", "0.70"), node

    with pytest.raises(grpc.RpcError) as refused:
        stubs.get_policy("330400", "330422", "340")
    info = error_details(refused.value)["ErrorInfo"]
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert (info.reason, info.metadata["insuplc_admdvs"]) == ("NO_POLICY_VERSION", "330422")

    # A county that imports its own policy later is settled with it from the next call on.
    stubs.import_policy("330400", "330422", "310", "0.85")
    stubs.import_policy("330400", "330422", "390", "0.65")
    for node in ("330400", "330000"):
        assert stubs.get_policy(node, "330422") == ("330422", "0.85"), node
        assert stubs.get_policy(node, "330422", "390") == ("330422", "0.65"), node


def refused_where_not_read(imported: Callable[[], object]) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        imported()
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_details(refused.value)["ErrorInfo"].reason == "PERMISSION_DENIED_REGION"


def test_a_treatment_catalogue_is_the_regions_own_overlay_else_its_citys_else_its_provinces(
    stubs: Stubs,
) -> None:
    stubs.import_catalogue("000000", "03")
    assert stubs.lookup("330400", "330421") == ("", {STENT: "03", BED: "01"})
    stubs.import_catalogue("330000", "02")
    refused_where_not_read(lambda: stubs.import_catalogue("330400", "01", node="330400"))
    stubs.import_catalogue("330400", "01")
    for node in ("330400", "330000"):
        assert stubs.lookup(node, "330421") == ("330400", {STENT: "01", BED: "01"}), node
        assert stubs.lookup(node, "330400") == ("330400", {STENT: "01", BED: "01"}), node
        assert stubs.lookup(node, "330521") == ("330000", {STENT: "02", BED: "01"}), node
    stubs.import_catalogue("330421", "03")
    assert stubs.lookup("330400", "330421") == ("330421", {STENT: "03", BED: "01"})
    assert stubs.lookup("330400", "330422") == ("330400", {STENT: "01", BED: "01"})
