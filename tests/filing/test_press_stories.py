"""The press stories filing must end (domain README §3, §7), one named test each."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from filing_builders import (
    APP,
    APPROVED,
    BEIJING,
    HOSPITAL,
    LANGFANG,
    MINI_PROGRAM,
    NANCHANG,
    PENDING,
    REFERRAL,
    SHANGHAI,
    SHENZHEN,
    TAIYUAN,
    TEMPORARY,
    WINDOW,
    Clock,
    application,
    by_certno,
    certno,
    day,
    eligibility,
    enrol,
    iso,
    person,
    refusal,
    request_id,
    set_rules,
)

from yidi.filing.v1 import filing_pb2 as pb
from yidi.filing.v1 import filing_service_pb2 as api
from yidi.filing.v1 import filing_service_pb2_grpc as api_grpc
from yidi.type.v1 import filing_category_pb2 as category_pb
from yidi_testing import error_details


def test_shenzhen_approves_self_service_instantly_while_langfang_queues_for_review(
    stub: api_grpc.FilingServiceStub, clock: Clock
) -> None:
    set_rules(stub, SHENZHEN, auto_approve=True)
    set_rules(stub, LANGFANG, review_deadline_working_days=3, holidays=[day("2026-03-09")])
    shenzhen, langfang, neighbour = certno(SHENZHEN, 1), certno(LANGFANG, 2), certno(SHENZHEN, 3)
    enrol(stub, person(shenzhen, SHENZHEN), person(langfang, LANGFANG), person(neighbour, SHENZHEN))
    clock.set("2026-03-06")  # a Friday

    instant = stub.CreateFiling(application(shenzhen, SHENZHEN, BEIJING)).filing
    assert (instant.state, instant.reviewer, instant.HasField("review_deadline")) == (APPROVED, "auto", False)
    assert instant.decide_time == instant.submit_time
    assert (iso(instant.start_date), iso(instant.end_date)) == ("2026-03-06", "2026-09-05")
    assert stub.CheckEligibility(
        eligibility(shenzhen, SHENZHEN, "110105", "2026-03-06")
    ).person.filing_id == (instant.filing_id)

    queued = stub.CreateFiling(application(langfang, LANGFANG, BEIJING)).filing
    # Friday + 3 working days, the weekend and Monday's holiday excluded: Thursday.
    assert (queued.state, iso(queued.review_deadline)) == (PENDING, "2026-03-12")
    at_window = stub.CreateFiling(application(neighbour, SHENZHEN, SHANGHAI, channel=WINDOW)).filing
    assert at_window.state == PENDING  # a window application is reviewed by the clerk, even in Shenzhen


def test_nanchang_waives_the_referral_proof_that_taiyuan_requires(stub: api_grpc.FilingServiceStub) -> None:
    set_rules(stub, NANCHANG, auto_approve=True, referral_proof_waived=True)
    set_rules(stub, TAIYUAN, auto_approve=True, commitment_accepted=False)
    nanchang, taiyuan = certno(NANCHANG, 1), certno(TAIYUAN, 2)
    enrol(stub, person(nanchang, NANCHANG), person(taiyuan, TAIYUAN))

    waived = stub.CreateFiling(application(nanchang, NANCHANG, SHANGHAI, category=REFERRAL)).filing
    assert waived.state == APPROVED and not waived.materials.referral_proof_id

    code, reason, fields, _ = refusal(
        lambda: stub.CreateFiling(
            application(
                taiyuan,
                TAIYUAN,
                SHANGHAI,
                category=REFERRAL,
                materials=pb.FilingMaterials(personal_commitment=True),
            )
        )
    )
    assert (code, reason, fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MATERIALS_REQUIRED",
        ["materials.referral_proof_id"],
    )
    with_proof = application(
        taiyuan,
        TAIYUAN,
        SHANGHAI,
        category=REFERRAL,
        materials=pb.FilingMaterials(referral_proof_id="ZZ-2026-0042"),
    )
    assert stub.CreateFiling(with_proof).filing.state == APPROVED


def test_taiyuan_patient_admitted_unfiled_files_retroactively_and_settles_at_discharge(
    stub: api_grpc.FilingServiceStub, clock: Clock
) -> None:
    set_rules(stub, TAIYUAN, auto_approve=True)
    patient = certno(TAIYUAN, 3)
    enrol(stub, person(patient, TAIYUAN))
    clock.set("2026-03-04")
    admitted = "2026-02-26"
    _, reason, *_ = refusal(lambda: stub.CheckEligibility(eligibility(patient, TAIYUAN, "110108", admitted)))
    assert reason == "NOT_FILED"

    backdated = application(patient, TAIYUAN, BEIJING, start_date=day(admitted))
    _, reason, fields, _ = refusal(lambda: stub.CreateFiling(backdated))
    assert (reason, fields) == ("INVALID_ARGUMENT", ["start_date"])

    by_hospital = application(
        patient, TAIYUAN, BEIJING, channel=HOSPITAL, start_date=day(admitted), retroactive=True
    )
    filed = stub.CreateFiling(by_hospital).filing
    assert filed.retroactive and iso(filed.start_date) == admitted and filed.state == PENDING
    _, reason, *_ = refusal(lambda: stub.CheckEligibility(eligibility(patient, TAIYUAN, "110108", admitted)))
    assert reason == "FILING_PENDING_REVIEW"

    stub.ReviewFiling(
        api.ReviewFilingRequest(
            request_id=request_id(),
            filing_id=filed.filing_id,
            decision=api.REVIEW_DECISION_APPROVE,
            reviewer="ty-01",
        )
    )
    clock.set("2026-03-10")  # discharge
    snapshot = stub.CheckEligibility(eligibility(patient, TAIYUAN, "110108", admitted)).person
    assert (snapshot.filing_id, snapshot.filing_category) == (
        filed.filing_id,
        category_pb.FILING_CATEGORY_TEMPORARY_OTHER,
    )


def test_two_channels_one_filing(stub: api_grpc.FilingServiceStub) -> None:
    applicant = certno(LANGFANG, 4)
    enrol(stub, person(applicant, LANGFANG))
    first = stub.CreateFiling(application(applicant, LANGFANG, BEIJING, channel=APP))
    second = stub.CreateFiling(application(applicant, LANGFANG, "110100", channel=MINI_PROGRAM))
    assert (first.existing, second.existing) == (False, True)
    assert second.filing == first.filing

    other = certno(LANGFANG, 5)
    enrol(stub, person(other, LANGFANG))
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda channel: stub.CreateFiling(application(other, LANGFANG, BEIJING, channel=channel)),
                [APP, MINI_PROGRAM, WINDOW, pb.FILING_CHANNEL_WEBSITE],
            )
        )
    assert len({answer.filing.filing_id for answer in answers}) == 1
    assert sorted(answer.existing for answer in answers) == [False, True, True, True]
    listed = stub.ListFilings(api.ListFilingsRequest(person=by_certno(other)))
    assert len(listed.filings) == 1

    # Another treatment region in the same period is not a second filing: the first is changed.
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateFiling(application(applicant, LANGFANG, SHANGHAI, category=TEMPORARY))
    info = error_details(caught.value)["ErrorInfo"]
    assert (caught.value.code(), info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "FILING_CONFLICT")
    assert dict(info.metadata) == {"filing_id": first.filing.filing_id, "treatment_admdvs": BEIJING}
    changed = stub.ChangeFiling(
        api.ChangeFilingRequest(
            request_id=request_id(), filing_id=first.filing.filing_id, treatment_admdvs=SHANGHAI
        )
    )
    assert (changed.filing.treatment_admdvs, changed.superseded.state) == (
        SHANGHAI,
        pb.FILING_STATE_SUPERSEDED,
    )


def test_a_retried_application_is_answered_once_and_a_reused_id_is_refused(
    stub: api_grpc.FilingServiceStub,
) -> None:
    applicant = certno(LANGFANG, 6)
    enrol(stub, person(applicant, LANGFANG))
    request = application(applicant, LANGFANG, BEIJING)
    assert stub.CreateFiling(request) == stub.CreateFiling(request)
    assert len(stub.ListFilings(api.ListFilingsRequest(person=by_certno(applicant))).filings) == 1
    reused = application(applicant, LANGFANG, SHANGHAI, request_id=request.request_id)
    code, reason, *_ = refusal(lambda: stub.CreateFiling(reused))
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "DUPLICATE_REQUEST")
