"""A Beijing treatment node and a Langfang insured node in one tree, loaded through the stubs.

The tree: national 000000, Beijing 110000 (treatment province: registry and catalogue),
Hebei 130000, Langfang city 131000 (insured region: persons, filing rules, policy), started
and loaded with the samples by `yidi_harness.federation` as `yidi demo` does. The Langfang
retiree of the national authority's worked example is filed for Beijing from 2022-07-01,
the day of the example's visit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
from google.type.date_pb2 import Date

from yidi.filing.v1 import filing_pb2, filing_service_pb2, filing_service_pb2_grpc, insured_person_pb2
from yidi.type.v1 import filing_category_pb2
from yidi_harness.federation import NodeSpec, Topology, load_sample_data, start_federation
from yidi_runtime.config import Role
from yidi_runtime.peers import message_id
from yidi_runtime.server import Node

NATIONAL, BEIJING, HEBEI, LANGFANG = "000000", "110000", "130000", "131000"
SERVICE_DAY = Date(year=2022, month=7, day=1)
RETIREE_CERTNO = "131000195402270170"  # 样例廊一: employee insurance (310), retired, personal account
TREE = Topology(
    (
        NodeSpec(NATIONAL, Role.NATIONAL, "national"),
        NodeSpec(BEIJING, Role.PROVINCE, "beijing", NATIONAL),
        NodeSpec(HEBEI, Role.PROVINCE, "hebei", NATIONAL),
        NodeSpec(LANGFANG, Role.CITY, "langfang", HEBEI),
    )
)


@contextmanager
def beijing_tree(
    tmp_path: Path, database_factory: Callable[[], str | None], **overrides: Any
) -> Iterator[dict[str, Node]]:
    """The tree started (``overrides`` apply to every node) with the samples loaded; stopped afterwards."""
    with start_federation(TREE, tmp_path, database_factory, **overrides) as federation:
        load_sample_data(federation)
        yield federation.nodes


def load_insured(nodes: dict[str, Node]) -> str:
    """File the retiree for Beijing from the example's day, at the Langfang node; their psn_no."""
    with grpc.insecure_channel(nodes[LANGFANG].address) as channel:
        filing = (
            filing_service_pb2_grpc.FilingServiceStub(channel)
            .CreateFiling(
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
            .filing
        )
    return filing.psn_no


def psn_no_of(nodes: dict[str, Node], certno: str = RETIREE_CERTNO) -> str:
    """A Langfang person's number, as the HIS gets it from 1101 (asked at the Langfang node)."""
    with grpc.insecure_channel(nodes[LANGFANG].address) as channel:
        return str(
            filing_service_pb2_grpc.FilingServiceStub(channel)
            .GetInsuredPerson(
                filing_service_pb2.GetInsuredPersonRequest(
                    person=insured_person_pb2.PersonLookup(certno=certno)
                ),
                timeout=30,
            )
            .person.psn_no
        )
