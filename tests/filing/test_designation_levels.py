"""Outpatient designation levels: the registry, asked through its RPCs, says each institution's level.

A region allowing only levels 1 and 2 accepts a level-1 institution and refuses a level-3 or
an unregistered one, on creation and on change, storing nothing (and rules allowing level 2
only recheck the level-1 filing); a node with no registry to
ask refuses with NODE_UNREACHABLE; a node without the registry asks its parent's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from filing_builders import (
    APPROVED,
    BEIJING,
    LANGFANG,
    application,
    by_certno,
    certno,
    day,
    enrol,
    person,
    refusal,
    request_id,
    set_rules,
)
from registry.registry_builders import hospital, register
from registry.registry_builders import stub as registry_stub

from yidi.filing.v1 import filing_service_pb2 as api
from yidi.filing.v1 import filing_service_pb2_grpc as api_grpc
from yidi_runtime.config import load_settings
from yidi_runtime.server import Node
from yidi_services.node import start_node
from yidi_testing import settings_for

LEVEL_1, LEVEL_3, UNREGISTERED = "H11010500001", "H11010500003", "H11010500009"


@pytest.fixture
def national(tmp_path: Path, database_url: str | None) -> Iterator[Node]:
    """A national node running every service, so any insured or treatment region is its own."""
    started = start_node(
        settings_for(tmp_path, database_url, auto_migrate=True, role="national", region="000000")
    )
    yield started
    started.stop(0)


def _levels_1_and_2(stub: api_grpc.FilingServiceStub) -> None:
    set_rules(
        stub,
        LANGFANG,
        auto_approve=True,
        outpatient_designations_required=1,
        outpatient_designation_levels=["1", "2"],
        effective_date=day("2024-01-01"),
    )


def _filings_of(stub: api_grpc.FilingServiceStub, number: str) -> list[str]:
    listed = stub.ListFilings(api.ListFilingsRequest(insuplc_admdvs=LANGFANG, person=by_certno(number)))
    return [filing.filing_id for filing in listed.filings]


def test_only_institutions_of_the_allowed_levels_may_be_designated(national: Node) -> None:
    with grpc.insecure_channel(national.address) as channel:
        stub = api_grpc.FilingServiceStub(channel)
        register(registry_stub(channel), hospital(LEVEL_1, level="1"), hospital(LEVEL_3, level="3"))
        _levels_1_and_2(stub)
        number = certno(LANGFANG, 41)
        enrol(stub, person(number, LANGFANG))

        def apply(code: str) -> api.CreateFilingResponse:
            return stub.CreateFiling(application(number, LANGFANG, BEIJING, designated_institutions=[code]))

        code, reason, fields, message = refusal(lambda: apply(LEVEL_3))
        assert (code, reason, fields) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
            ["designated_institutions[0]"],
        )
        assert "level 3" in message and "1, 2" in message
        code, reason, fields, _ = refusal(lambda: apply(UNREGISTERED))
        assert (code, reason, fields) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "INSTITUTION_NOT_NETWORKED",
            ["designated_institutions[0]"],
        )
        assert _filings_of(stub, number) == []

        filed = apply(LEVEL_1).filing
        assert (filed.state, list(filed.designated_institutions)) == (APPROVED, [LEVEL_1])

        change = api.ChangeFilingRequest(
            request_id=request_id(), filing_id=filed.filing_id, designated_institutions=[LEVEL_3]
        )
        _, reason, fields, _ = refusal(lambda: stub.ChangeFiling(change))
        assert (reason, fields) == ("INVALID_ARGUMENT", ["designated_institutions[0]"])
        assert _filings_of(stub, number) == [filed.filing_id]
        kept = stub.GetFiling(api.GetFilingRequest(filing_id=filed.filing_id)).filing
        assert (kept.state, list(kept.designated_institutions)) == (APPROVED, [LEVEL_1])

        # New rules allowing level 2 only: the registry is asked again, and the filing is rechecked.
        set_rules(
            stub,
            LANGFANG,
            auto_approve=True,
            outpatient_designations_required=1,
            outpatient_designation_levels=["2"],
            effective_date=day("2024-06-01"),
        )
        rechecks = stub.ListFilingRechecks(api.ListFilingRechecksRequest(insuplc_admdvs=LANGFANG)).rechecks
        assert [
            (recheck.filing.filing_id, [(failure.reason, failure.field) for failure in recheck.failures])
            for recheck in rechecks
        ] == [(filed.filing_id, [("INVALID_ARGUMENT", "designated_institutions[0]")])]


def test_a_node_with_no_registry_to_ask_refuses_as_unreachable_and_stores_nothing(
    start_filing_node: Callable[..., Node],
) -> None:
    filing_only = start_filing_node()
    with grpc.insecure_channel(filing_only.address) as channel:
        stub = api_grpc.FilingServiceStub(channel)
        _levels_1_and_2(stub)
        number = certno(LANGFANG, 42)
        enrol(stub, person(number, LANGFANG))
        code, reason, _, _ = refusal(
            lambda: stub.CreateFiling(
                application(number, LANGFANG, BEIJING, designated_institutions=[LEVEL_1])
            )
        )
        assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "NODE_UNREACHABLE")
        assert _filings_of(stub, number) == []


def test_a_node_without_the_registry_asks_its_parent(national: Node, tmp_path: Path) -> None:
    settings = load_settings(
        environ={"YIDI_PARENT_ADDRESS": national.address, "YIDI_PARENT_REGION": "000000"},
        overrides={
            "data_dir": str(tmp_path / "langfang"),
            "insecure": True,
            "grpc_port": 0,
            "metrics_port": "off",
            "auto_migrate": True,
            "role": "city",
            "region": LANGFANG,
            "services": "filing",
        },
    )
    city = start_node(settings)
    try:
        with (
            grpc.insecure_channel(national.address) as parent_channel,
            grpc.insecure_channel(city.address) as channel,
        ):
            register(registry_stub(parent_channel), hospital(LEVEL_3, level="3"))
            stub = api_grpc.FilingServiceStub(channel)
            _levels_1_and_2(stub)
            number = certno(LANGFANG, 43)
            enrol(stub, person(number, LANGFANG))
            _, reason, fields, _ = refusal(
                lambda: stub.CreateFiling(
                    application(number, LANGFANG, BEIJING, designated_institutions=[LEVEL_3])
                )
            )
            assert (reason, fields) == ("INVALID_ARGUMENT", ["designated_institutions[0]"])
    finally:
        city.stop(0)
