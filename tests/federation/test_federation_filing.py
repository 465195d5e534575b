"""Filings from any node, answered at the insured place's node (issue 20).

A six-node tree over mutual TLS: the national node; Guangdong (440000, hosting Shenzhen);
Zhejiang and its Jiaxing city node (330400); Hebei and its Langfang city node (131000). The
national channels are national operators (``operator/000000/app``, ``…/mini-program``) at the
national node; the Jiaxing hospital calls its own node; Hebei's provincial window may call
the Hebei or the Langfang node. Wherever a filing call arrives, it is relayed with its
caller's vouch to the insured place's node, which authorizes that caller, keeps the request
id and audits the call; one person has one filing per period whichever channel or node it
came through. One federation per database serves the whole module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from federation_support import topology

from yidi.audit.v1 import audit_service_pb2, audit_service_pb2_grpc
from yidi.filing.v1 import filing_pb2, filing_service_pb2, filing_service_pb2_grpc, insured_person_pb2
from yidi.type.v1 import filing_category_pb2
from yidi_harness.federation import Federation, load_sample_data, region_operator, start_federation
from yidi_harness.postgres_server import fresh_databases
from yidi_runtime.certs import Pki, init_pki
from yidi_runtime.identity import CallerRole, Principal
from yidi_runtime.peers import message_id
from yidi_runtime.wire import china_day, date_message
from yidi_testing import error_details

NATIONAL, GUANGDONG, SHENZHEN = "000000", "440000", "440300"
ZHEJIANG, JIAXING, HEBEI, LANGFANG = "330000", "330400", "130000", "131000"
REGIONS = (NATIONAL, GUANGDONG, ZHEJIANG, JIAXING, HEBEI, LANGFANG)
SHENZHEN_RESIDENT = "440300195603120118"
SHENZHEN_EMPLOYEE = "44030019880521022X"
LANGFANG_PATIENT = "131000195402270170"
LANGFANG_WORKER = "131000197001010019"
JIAXING_HOSPITAL = "H33040200001"
APP = Principal(CallerRole.OPERATOR, "app", NATIONAL)
MINI_PROGRAM = Principal(CallerRole.OPERATOR, "mini-program", NATIONAL)
HOSPITAL = Principal(CallerRole.INSTITUTION, JIAXING_HOSPITAL, JIAXING_HOSPITAL[1:7])
HEBEI_WINDOW = region_operator(HEBEI)
DEADLINE_S = 20.0

Stub = filing_service_pb2_grpc.FilingServiceStub


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(
        tmp_path_factory.mktemp("pki"),
        nodes=REGIONS,
        institutions=[JIAXING_HOSPITAL],
        operators=[(NATIONAL, "demo"), (NATIONAL, "app"), (NATIONAL, "mini-program")]
        + [(region, "ops") for region in (GUANGDONG, HEBEI, LANGFANG)],
    )


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def tree(
    request: pytest.FixtureRequest, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Federation]:
    with contextlib.ExitStack() as stack:
        databases: Callable[[], str | None] = lambda: None  # noqa: E731
        if request.param == "postgresql":
            server = request.getfixturevalue("postgres_server")
            databases = stack.enter_context(
                fresh_databases(server, "yidi_filing", request.getfixturevalue("migrated_template"))
            )
        folder = Path(tmp_path_factory.mktemp(f"tree-{request.param}"))
        federation = stack.enter_context(start_federation(topology(*REGIONS), folder, databases, pki=pki))
        load_sample_data(federation)
        Stub(federation.channel(LANGFANG)).ImportInsuredPersons(
            filing_service_pb2.ImportInsuredPersonsRequest(
                request_id=message_id(LANGFANG),
                persons=[
                    insured_person_pb2.InsuredPerson(
                        certno=LANGFANG_WORKER,
                        psn_name="样例廊三",
                        insuplc_admdvs=LANGFANG,
                        insutype="310",
                        psn_type="1101",
                        credential_activated=True,
                    )
                ],
            ),
            timeout=DEADLINE_S,
        )
        yield federation


def stub(tree: Federation, region: str, as_: Principal) -> Stub:
    return Stub(tree.channel(region, as_))


def today() -> date:
    return china_day(datetime.now(UTC))


def application(
    certno: str, insured: str, treatment: str, channel: int, **fields: Any
) -> filing_service_pb2.CreateFilingRequest:
    return filing_service_pb2.CreateFilingRequest(
        request_id=message_id(insured),
        person=insured_person_pb2.PersonLookup(certno=certno),
        insuplc_admdvs=insured,
        treatment_admdvs=treatment,
        category=filing_category_pb2.FILING_CATEGORY_TEMPORARY_OTHER,
        channel=channel,  # type: ignore[arg-type]
        materials=filing_pb2.FilingMaterials(personal_commitment=True),
        **fields,
    )


def eligibility(
    certno: str, insured: str, treatment: str, **fields: Any
) -> filing_service_pb2.CheckEligibilityRequest:
    return filing_service_pb2.CheckEligibilityRequest(
        person=insured_person_pb2.PersonLookup(certno=certno),
        insuplc_admdvs=insured,
        treatment_admdvs=treatment,
        service_date=date_message(today()),
        med_type="21",
        **fields,
    )


def refusal(call: Callable[[], object]) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    info = error_details(caught.value)["ErrorInfo"]
    return caught.value.code(), info.reason, dict(info.metadata)


def audited(tree: Federation, region: str, caller: Principal, method: str) -> list[tuple[str, str]]:
    """(request id, reason) of ``caller``'s calls of ``method`` in the audit trail of ``region``'s node."""
    answer = audit_service_pb2_grpc.AuditServiceStub(tree.channel(region)).ListAuditRecords(
        audit_service_pb2.ListAuditRecordsRequest(caller=caller.subject, method=method, page_size=1000),
        timeout=DEADLINE_S,
    )
    return [(record.request_id, record.reason) for record in answer.records]


def test_the_national_app_files_a_shenzhen_resident_at_the_national_node(tree: Federation) -> None:
    request = application(SHENZHEN_RESIDENT, SHENZHEN, "110000", filing_pb2.FILING_CHANNEL_NATIONAL_APP)
    answer = stub(tree, NATIONAL, APP).CreateFiling(request, timeout=DEADLINE_S)
    filing = answer.filing
    assert (filing.insuplc_admdvs, filing.state, answer.existing) == (
        SHENZHEN,
        filing_pb2.FILING_STATE_APPROVED,
        False,
    )
    assert filing.filing_id.startswith(SHENZHEN)

    # Stored at Guangdong, the node hosting Shenzhen, and audited there as the app's call.
    at_home = stub(tree, GUANGDONG, region_operator(GUANGDONG))
    read = filing_service_pb2.GetFilingRequest(filing_id=filing.filing_id)
    assert at_home.GetFiling(read, timeout=DEADLINE_S).filing == filing
    assert (request.request_id, "") in audited(tree, GUANGDONG, APP, "CreateFiling")

    # The same request again is answered from Guangdong's request log.
    assert stub(tree, NATIONAL, APP).CreateFiling(request, timeout=DEADLINE_S) == answer

    # Read, checked and cancelled from the national node.
    assert stub(tree, NATIONAL, APP).GetFiling(read, timeout=DEADLINE_S).filing == filing
    checked = stub(tree, NATIONAL, MINI_PROGRAM).CheckEligibility(
        eligibility(SHENZHEN_RESIDENT, SHENZHEN, "110105"), timeout=DEADLINE_S
    )
    assert checked.person.filing_id == filing.filing_id
    listed = stub(tree, NATIONAL, MINI_PROGRAM).ListFilings(
        filing_service_pb2.ListFilingsRequest(
            insuplc_admdvs=SHENZHEN, person=insured_person_pb2.PersonLookup(certno=SHENZHEN_RESIDENT)
        ),
        timeout=DEADLINE_S,
    )
    assert [found.filing_id for found in listed.filings] == [filing.filing_id]
    cancel = filing_service_pb2.CancelFilingRequest(
        request_id=message_id(NATIONAL), filing_id=filing.filing_id, reason="plans changed"
    )
    cancelled = stub(tree, NATIONAL, APP).CancelFiling(cancel, timeout=DEADLINE_S).filing
    assert cancelled.state == filing_pb2.FILING_STATE_CANCELLED
    assert at_home.GetFiling(read, timeout=DEADLINE_S).filing.state == filing_pb2.FILING_STATE_CANCELLED


def test_a_second_application_in_the_period_through_another_channel_and_node(tree: Federation) -> None:
    first = stub(tree, NATIONAL, APP).CreateFiling(
        application(SHENZHEN_EMPLOYEE, SHENZHEN, "110000", filing_pb2.FILING_CHANNEL_NATIONAL_APP),
        timeout=DEADLINE_S,
    )
    same_region = application(
        SHENZHEN_EMPLOYEE, SHENZHEN, "110100", filing_pb2.FILING_CHANNEL_NATIONAL_MINI_PROGRAM
    )
    again = stub(tree, NATIONAL, MINI_PROGRAM).CreateFiling(same_region, timeout=DEADLINE_S)
    assert (again.existing, again.filing) == (True, first.filing)
    at_window = application(SHENZHEN_EMPLOYEE, SHENZHEN, "110000", filing_pb2.FILING_CHANNEL_WINDOW)
    again = stub(tree, GUANGDONG, region_operator(GUANGDONG)).CreateFiling(at_window, timeout=DEADLINE_S)
    assert (again.existing, again.filing) == (True, first.filing)

    elsewhere = application(
        SHENZHEN_EMPLOYEE, SHENZHEN, "120000", filing_pb2.FILING_CHANNEL_NATIONAL_MINI_PROGRAM
    )
    code, reason, metadata = refusal(
        lambda: stub(tree, NATIONAL, MINI_PROGRAM).CreateFiling(elsewhere, timeout=DEADLINE_S)
    )
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "FILING_CONFLICT")
    assert metadata == {"filing_id": first.filing.filing_id, "treatment_admdvs": "110000"}

    # The way out is to change the open filing: the new one supersedes it, still one per period.
    changed = stub(tree, NATIONAL, MINI_PROGRAM).ChangeFiling(
        filing_service_pb2.ChangeFilingRequest(
            request_id=message_id(NATIONAL), filing_id=first.filing.filing_id, treatment_admdvs="120000"
        ),
        timeout=DEADLINE_S,
    )
    assert (changed.filing.treatment_admdvs, changed.superseded.state) == (
        "120000",
        filing_pb2.FILING_STATE_SUPERSEDED,
    )
    assert stub(tree, NATIONAL, APP).CreateFiling(elsewhere, timeout=DEADLINE_S).filing == changed.filing


def test_a_jiaxing_hospital_files_retroactively_at_its_node_for_a_langfang_patient(tree: Federation) -> None:
    hospital = stub(tree, JIAXING, HOSPITAL)
    admitted = today() - timedelta(days=3)
    filed = hospital.CreateFiling(
        application(
            LANGFANG_PATIENT,
            LANGFANG,
            JIAXING,
            filing_pb2.FILING_CHANNEL_HOSPITAL,
            start_date=date_message(admitted),
            retroactive=True,
        ),
        timeout=DEADLINE_S,
    ).filing
    assert filed.filing_id.startswith(LANGFANG) and filed.retroactive
    assert filed.state == filing_pb2.FILING_STATE_PENDING_REVIEW  # a hospital's filing is reviewed

    # Langfang holds it: its operators review it; the hospital reads it back at its own node.
    langfang = stub(tree, LANGFANG, region_operator(LANGFANG))
    queue = langfang.ListPendingReviews(
        filing_service_pb2.ListPendingReviewsRequest(insuplc_admdvs=LANGFANG), timeout=DEADLINE_S
    )
    assert [item.filing.filing_id for item in queue.reviews] == [filed.filing_id]
    read = filing_service_pb2.GetFilingRequest(filing_id=filed.filing_id)
    assert hospital.GetFiling(read, timeout=DEADLINE_S).filing == filed
    question = eligibility(LANGFANG_PATIENT, LANGFANG, "330402", fixmedins_code=JIAXING_HOSPITAL)
    _, reason, _ = refusal(lambda: hospital.CheckEligibility(question, timeout=DEADLINE_S))
    assert reason == "FILING_PENDING_REVIEW"

    # The national app applying for the same stay finds the hospital's filing; another region conflicts.
    from_app = stub(tree, NATIONAL, APP).CreateFiling(
        application(LANGFANG_PATIENT, LANGFANG, ZHEJIANG, filing_pb2.FILING_CHANNEL_NATIONAL_APP),
        timeout=DEADLINE_S,
    )
    assert (from_app.existing, from_app.filing.filing_id) == (True, filed.filing_id)
    _, reason, metadata = refusal(
        lambda: stub(tree, NATIONAL, MINI_PROGRAM).CreateFiling(
            application(
                LANGFANG_PATIENT, LANGFANG, SHENZHEN, filing_pb2.FILING_CHANNEL_NATIONAL_MINI_PROGRAM
            ),
            timeout=DEADLINE_S,
        )
    )
    assert (reason, metadata["filing_id"]) == ("FILING_CONFLICT", filed.filing_id)

    langfang.ReviewFiling(
        filing_service_pb2.ReviewFilingRequest(
            request_id=message_id(LANGFANG),
            filing_id=filed.filing_id,
            decision=filing_service_pb2.REVIEW_DECISION_APPROVE,
            reviewer="ops",
        ),
        timeout=DEADLINE_S,
    )
    assert hospital.CheckEligibility(question, timeout=DEADLINE_S).person.filing_id == filed.filing_id
    cancel = filing_service_pb2.CancelFilingRequest(request_id=message_id(JIAXING), filing_id=filed.filing_id)
    cancelled = hospital.CancelFiling(cancel, timeout=DEADLINE_S).filing
    assert cancelled.state == filing_pb2.FILING_STATE_CANCELLED


def test_a_provincial_window_replays_through_either_node_on_the_way(tree: Federation) -> None:
    hebei, langfang = stub(tree, HEBEI, HEBEI_WINDOW), stub(tree, LANGFANG, HEBEI_WINDOW)
    request = application(LANGFANG_WORKER, LANGFANG, "110000", filing_pb2.FILING_CHANNEL_WINDOW)
    answer = hebei.CreateFiling(request, timeout=DEADLINE_S)
    assert answer.filing.filing_id.startswith(LANGFANG) and not answer.existing
    assert langfang.CreateFiling(request, timeout=DEADLINE_S) == answer
    reused = filing_service_pb2.CreateFilingRequest()
    reused.CopyFrom(request)
    reused.treatment_admdvs = "120000"
    code, reason, _ = refusal(lambda: langfang.CreateFiling(reused, timeout=DEADLINE_S))
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "DUPLICATE_REQUEST")

    cancel = filing_service_pb2.CancelFilingRequest(
        request_id=message_id(HEBEI), filing_id=answer.filing.filing_id, reason="not travelling"
    )
    cancelled = langfang.CancelFiling(cancel, timeout=DEADLINE_S)
    assert cancelled.filing.state == filing_pb2.FILING_STATE_CANCELLED
    assert hebei.CancelFiling(cancel, timeout=DEADLINE_S) == cancelled
    assert [request_id for request_id, _ in audited(tree, LANGFANG, HEBEI_WINDOW, "CancelFiling")] == [
        cancel.request_id
    ] * 2


def test_the_insured_node_refuses_what_its_caller_may_not_do(tree: Federation) -> None:
    hospital = stub(tree, JIAXING, HOSPITAL)
    elsewhere = application(LANGFANG_PATIENT, LANGFANG, SHENZHEN, filing_pb2.FILING_CHANNEL_HOSPITAL)
    code, reason, metadata = refusal(lambda: hospital.CreateFiling(elsewhere, timeout=DEADLINE_S))
    assert (code, reason, metadata["field"]) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED_REGION",
        "treatment_admdvs",
    )
    # Refused at Langfang, the node that answers, as the hospital's call.
    assert (elsewhere.request_id, "PERMISSION_DENIED_REGION") in audited(
        tree, LANGFANG, HOSPITAL, "CreateFiling"
    )
    self_service = application(LANGFANG_PATIENT, LANGFANG, JIAXING, filing_pb2.FILING_CHANNEL_NATIONAL_APP)
    _, reason, _ = refusal(lambda: hospital.CreateFiling(self_service, timeout=DEADLINE_S))
    assert reason == "PERMISSION_DENIED_ROLE"
    question = eligibility(LANGFANG_PATIENT, LANGFANG, "440303", fixmedins_code=JIAXING_HOSPITAL)
    _, reason, _ = refusal(lambda: hospital.CheckEligibility(question, timeout=DEADLINE_S))
    assert reason == "PERMISSION_DENIED_REGION"

    # An operator of Guangdong does not act on Langfang's persons; a node does not file at all.
    langfang_filing = application(LANGFANG_PATIENT, LANGFANG, "110000", filing_pb2.FILING_CHANNEL_WINDOW)
    for region, caller, expected in (
        (GUANGDONG, region_operator(GUANGDONG), "PERMISSION_DENIED_REGION"),
        (GUANGDONG, Principal(CallerRole.NODE, NATIONAL, NATIONAL), "PERMISSION_DENIED_ROLE"),
    ):
        _, reason, _ = refusal(
            lambda: stub(tree, region, caller).CreateFiling(langfang_filing, timeout=DEADLINE_S)  # noqa: B023
        )
        assert reason == expected, caller
    # No node hosts Qinghai in this tree.
    qinghai = application("630000196004020194", "630000", "110000", filing_pb2.FILING_CHANNEL_NATIONAL_APP)
    code, reason, _ = refusal(lambda: stub(tree, NATIONAL, APP).CreateFiling(qinghai, timeout=DEADLINE_S))
    assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "INSURED_REGION_UNREACHABLE")
