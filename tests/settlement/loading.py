"""A Beijing treatment node and a Langfang insured node in one tree, loaded through the stubs.

The tree: national 000000, Beijing 110000 (treatment province: registry and catalogue),
Hebei 130000, Langfang city 131000 (insured region: persons, filing rules, policy). The
Langfang retiree of the national authority's worked example is filed for Beijing from
2022-07-01, the day of the example's visit.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
from google.type.date_pb2 import Date

from yidi.catalogue.v1 import (
    catalogue_pb2,
    catalogue_service_pb2,
    catalogue_service_pb2_grpc,
    policy_service_pb2,
    policy_service_pb2_grpc,
)
from yidi.filing.v1 import filing_pb2, filing_service_pb2, filing_service_pb2_grpc, insured_person_pb2
from yidi.registry.v1 import institution_registry_service_pb2 as registry_api
from yidi.registry.v1 import institution_registry_service_pb2_grpc as registry_grpc
from yidi.type.v1 import filing_category_pb2
from yidi_cli.filing_client import read_persons, read_rules
from yidi_runtime.peers import message_id
from yidi_runtime.server import Node
from yidi_testing import NodeSpec, node_tree

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
NATIONAL, BEIJING, HEBEI, LANGFANG = "000000", "110000", "130000", "131000"
EFFECTIVE = Date(year=2022, month=1, day=1)
SERVICE_DAY = Date(year=2022, month=7, day=1)
RETIREE_CERTNO = "131000195402270170"  # 样例廊一: employee insurance (310), retired, personal account
TREE = (
    NodeSpec(NATIONAL, "national"),
    NodeSpec(BEIJING, "province", NATIONAL),
    NodeSpec(HEBEI, "province", NATIONAL),
    NodeSpec(LANGFANG, "city", HEBEI),
)


def _stream(header: Any, content: bytes, message: Callable[..., Any]) -> Iterator[Any]:
    yield message(header=header)
    for start in range(0, len(content), 64 * 1024):
        yield message(csv_chunk=content[start : start + 64 * 1024])


def load_beijing(channel: grpc.Channel) -> None:
    """Beijing's institutions and catalogue (effective 2022-01-01) into the Beijing node."""
    with (DATA / "institutions.csv").open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [row for row in reader if row["admdvs"].startswith(BEIJING[:2])]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(reader.fieldnames or []), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    header = registry_api.ImportInstitutionsHeader(request_id=message_id(BEIJING), admdvs=BEIJING)
    registry_grpc.InstitutionRegistryServiceStub(channel).ImportInstitutions(
        _stream(header, buffer.getvalue().encode(), registry_api.ImportInstitutionsRequest), timeout=60
    )
    catalogue = catalogue_service_pb2.ImportCatalogueHeader(
        request_id=message_id(BEIJING),
        admdvs=BEIJING,
        layer=catalogue_pb2.CATALOGUE_LAYER_PROVINCIAL_OVERLAY,
        effective_date=EFFECTIVE,
    )
    content = (DATA / "catalogues" / "110000-beijing.csv").read_bytes()
    catalogue_service_pb2_grpc.CatalogueServiceStub(channel).ImportCatalogue(
        _stream(catalogue, content, catalogue_service_pb2.ImportCatalogueRequest), timeout=60
    )


def load_langfang(channel: grpc.Channel) -> str:
    """Langfang's persons, filing rules and employee policy; the retiree filed for Beijing. Returns their psn_no."""
    filing = filing_service_pb2_grpc.FilingServiceStub(channel)
    persons = [person for person in read_persons(DATA / "persons.csv") if person.insuplc_admdvs == LANGFANG]
    enrolled = filing.ImportInsuredPersons(
        filing_service_pb2.ImportInsuredPersonsRequest(request_id=message_id(LANGFANG), persons=persons),
        timeout=30,
    )
    for rules in read_rules(DATA / "filing-rules.toml"):
        if rules.insuplc_admdvs == LANGFANG:
            filing.SetFilingRules(
                filing_service_pb2.SetFilingRulesRequest(request_id=message_id(LANGFANG), rules=rules),
                timeout=30,
            )
    policy_service_pb2_grpc.PolicyServiceStub(channel).ImportPolicy(
        policy_service_pb2.ImportPolicyRequest(
            request_id=message_id(LANGFANG),
            insuplc_admdvs=LANGFANG,
            insutype="310",
            effective_date=EFFECTIVE,
            format=policy_service_pb2.POLICY_FORMAT_TOML,
            document=(DATA / "policies" / "131000-310-langfang.toml").read_bytes(),
        ),
        timeout=30,
    )
    filing.CreateFiling(
        filing_service_pb2.CreateFilingRequest(
            request_id=message_id(LANGFANG),
            person=insured_person_pb2.PersonLookup(certno=RETIREE_CERTNO),
            insuplc_admdvs=LANGFANG,
            treatment_admdvs=BEIJING,
            category=filing_category_pb2.FILING_CATEGORY_RETIREE_RESETTLED,
            channel=filing_pb2.FILING_CHANNEL_NATIONAL_APP,
            materials=filing_pb2.FilingMaterials(personal_commitment=True),
            start_date=SERVICE_DAY,
            retroactive=True,
        ),
        timeout=30,
    )
    by_certno = dict(zip((person.certno for person in persons), enrolled.psn_nos, strict=True))
    return by_certno[RETIREE_CERTNO]


@contextmanager
def beijing_tree(
    tmp_path: Path, database_factory: Callable[[], str | None], **overrides: Any
) -> Iterator[dict[str, Node]]:
    """The tree started (``overrides`` apply to every node) with Beijing loaded; stopped afterwards."""
    with node_tree(tmp_path, TREE, database_factory, **overrides) as nodes:
        with grpc.insecure_channel(nodes[BEIJING].address) as channel:
            load_beijing(channel)
        yield nodes


def load_insured(nodes: dict[str, Node]) -> str:
    """Load Langfang; the retiree's psn_no."""
    with grpc.insecure_channel(nodes[LANGFANG].address) as channel:
        return load_langfang(channel)
