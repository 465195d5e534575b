"""Nodes to fuzz, started once per module: an empty province node, one loaded with the
samples, and an empty national node.

The loaded node is the Hebei province node (130000) on its own: it hosts the Hebei
institutions and catalogue, and the Langfang (131000) persons, filing rules and policy,
so requests naming them reach the code behind the first lookups. The Langfang retiree is
filed for treatment in Shijiazhuang. PostgreSQL runs the loaded node only (a smaller
subset: see ``test_bad_input``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import pytest
import structlog
from fuzz_support import TableDigests, Target
from sqlalchemy import create_engine, text

from yidi.filing.v1 import filing_pb2, filing_service_pb2, filing_service_pb2_grpc, insured_person_pb2
from yidi.type.v1 import filing_category_pb2
from yidi_core.codes import NATIONAL_REGION
from yidi_harness.federation import Federation, NodeSpec, Topology, load_sample_data
from yidi_runtime.config import Role
from yidi_runtime.logs import configure_logging
from yidi_runtime.peers import message_id
from yidi_services.node import start_node
from yidi_testing import settings_for

HEBEI, LANGFANG, SHIJIAZHUANG = "130000", "131000", "130100"
RETIREE_CERTNO = "131000195402270170"
_FIRST_DAY = {"year": 2022, "month": 7, "day": 1}


def _file_retiree(channel: grpc.Channel) -> None:
    filing_service_pb2_grpc.FilingServiceStub(channel).CreateFiling(
        filing_service_pb2.CreateFilingRequest(
            request_id=message_id(LANGFANG),
            person=insured_person_pb2.PersonLookup(certno=RETIREE_CERTNO),
            insuplc_admdvs=LANGFANG,
            treatment_admdvs=SHIJIAZHUANG,
            category=filing_category_pb2.FILING_CATEGORY_RETIREE_RESETTLED,
            channel=filing_pb2.FILING_CHANNEL_NATIONAL_APP,
            materials=filing_pb2.FilingMaterials(personal_commitment=True),
            start_date=_FIRST_DAY,
            retroactive=True,
        ),
        timeout=30,
    )


@contextmanager
def _database(request: pytest.FixtureRequest, backend: str) -> Iterator[str | None]:
    """None (SQLite files in the node's folder), or a fresh PostgreSQL database dropped afterwards."""
    if backend == "sqlite":
        yield None
        return
    server: str = request.getfixturevalue("postgres_server")
    name = f"yidi_fuzz_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{server}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


_NODES = {
    "empty": (Role.PROVINCE, "110000", "beijing"),
    "loaded": (Role.PROVINCE, HEBEI, "hebei"),
    "national": (Role.NATIONAL, NATIONAL_REGION, "national"),
}
"""The nodes fuzzed: an empty province, the loaded Hebei node, and an empty national node (clearing
answers only there)."""


@pytest.fixture(
    scope="module",
    params=[
        "empty-sqlite",
        "loaded-sqlite",
        "national-sqlite",
        pytest.param("loaded-postgresql", marks=pytest.mark.postgres),
    ],
)
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A node under fuzzing, its channel and its tables' row counts; server logs as JSON lines."""
    contents, backend = str(request.param).split("-")
    role, region, name = _NODES[contents]
    configure_logging("warning", "json")
    with _database(request, backend) as database_url:
        settings = settings_for(
            tmp_path_factory.mktemp(f"fuzz-{request.param}"),
            database_url,
            auto_migrate=True,
            metrics_port="off",
            role=role.value,
            region=region,
            name=name,
        )
        node = start_node(settings)
        with Federation(Topology((NodeSpec(region, role, name),)), {region: node}) as federation:
            channel = federation.channel(region)
            if contents == "loaded":
                load_sample_data(federation)
                _file_retiree(channel)
            yield Target(node, channel, TableDigests.of(node), str(request.param))
    structlog.reset_defaults()
