"""A filing belongs to whoever entered it: an institution reads, lists, changes and cancels only its own.

At the Guangdong node a Guangzhou hospital files for one Shenzhen patient treated there and
another Guangzhou hospital for another. Each sees only its own filing; the other's is NOT_FOUND, as if it did not exist,
and listing never shows it. The insured centre's operator sees both.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from filing_builders import (
    HOSPITAL,
    Clock,
    application,
    certno,
    day,
    enrol,
    person,
    refusal,
    request_id,
    set_rules,
)

from yidi.filing.v1 import filing_service_pb2 as api
from yidi.filing.v1 import filing_service_pb2_grpc as api_grpc
from yidi_runtime.auth import PRINCIPAL_HEADER
from yidi_runtime.server import Node, create_server
from yidi_services.filing.servicer import register
from yidi_services.node import GROUPS
from yidi_testing import settings_for

GUANGDONG, SHENZHEN, GUANGZHOU = "440000", "440300", "440100"
MY_HOSPITAL, OTHER_HOSPITAL = "H44010500001", "H44010600001"
MINE = ((PRINCIPAL_HEADER, f"institution/{MY_HOSPITAL}"),)


def as_(subject: str) -> tuple[tuple[str, str]]:
    return ((PRINCIPAL_HEADER, subject),)


@pytest.fixture
def guangdong(tmp_path: Path, database_url: str | None, clock: Clock) -> Iterator[Node]:
    group = dataclasses.replace(GROUPS["filing"], register=functools.partial(register, clock=clock))
    settings = settings_for(
        tmp_path, database_url, auto_migrate=True, role="province", region=GUANGDONG, services="filing"
    )
    node = create_server(settings, [group])
    yield node
    node.stop(0)


def test_an_institution_sees_and_changes_only_the_filings_it_entered(guangdong: Node) -> None:
    with grpc.insecure_channel(guangdong.address) as channel:
        stub = api_grpc.FilingServiceStub(channel)
        set_rules(stub, SHENZHEN, auto_approve=True)
        mine, theirs = certno(SHENZHEN, 11), certno(SHENZHEN, 12)
        enrol(stub, person(mine, SHENZHEN), person(theirs, SHENZHEN))

        def file(number: str, hospital: str) -> str:
            created = stub.CreateFiling(
                application(number, SHENZHEN, GUANGZHOU, channel=HOSPITAL),
                metadata=as_(f"institution/{hospital}"),
            )
            return created.filing.filing_id

        my_filing, their_filing = file(mine, MY_HOSPITAL), file(theirs, OTHER_HOSPITAL)

        assert (
            stub.GetFiling(api.GetFilingRequest(filing_id=my_filing), metadata=MINE).filing.filing_id
            == my_filing
        )
        for call in (
            lambda: stub.GetFiling(api.GetFilingRequest(filing_id=their_filing), metadata=MINE),
            lambda: stub.CancelFiling(
                api.CancelFilingRequest(request_id=request_id(), filing_id=their_filing, reason="mistake"),
                metadata=MINE,
            ),
            lambda: stub.ChangeFiling(
                api.ChangeFilingRequest(
                    request_id=request_id(), filing_id=their_filing, end_date=day("2026-12-31")
                ),
                metadata=MINE,
            ),
        ):
            assert refusal(call)[1] == "NOT_FOUND"
        listed = stub.ListFilings(api.ListFilingsRequest(insuplc_admdvs=SHENZHEN), metadata=MINE).filings
        assert [filing.filing_id for filing in listed] == [my_filing]
        operator = as_(f"operator/{GUANGDONG}/reviewer")
        everyone = stub.ListFilings(
            api.ListFilingsRequest(insuplc_admdvs=SHENZHEN), metadata=operator
        ).filings
        assert {filing.filing_id for filing in everyone} == {my_filing, their_filing}
        cancelled = stub.CancelFiling(
            api.CancelFilingRequest(request_id=request_id(), filing_id=my_filing, reason="plans changed"),
            metadata=MINE,
        ).filing
        assert cancelled.filing_id == my_filing
