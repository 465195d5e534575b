"""Filing rules as data and the life cycle: validity, materials, review, change, cancel, expiry, routing."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from filing_builders import (
    APPROVED,
    BEIJING,
    GUIYANG,
    NANCHANG,
    POSTED,
    QINGHAI,
    RETIREE,
    SHANGHAI,
    SHENZHEN,
    WINDOW,
    Clock,
    application,
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
from yidi_runtime.server import Node


def review(stub: api_grpc.FilingServiceStub, filing_id: str, decision: int, reason: str = "") -> pb.Filing:
    request = api.ReviewFilingRequest(
        request_id=request_id(),
        filing_id=filing_id,
        decision=decision,
        reason=reason,
        reviewer="op-7",  # type: ignore[arg-type]
    )
    return stub.ReviewFiling(request).filing


def test_rules_are_validated_stored_and_inherited_by_cities(stub: api_grpc.FilingServiceStub) -> None:
    _, reason, *_ = refusal(lambda: stub.GetFilingRules(api.GetFilingRulesRequest(insuplc_admdvs=QINGHAI)))
    assert reason == "NOT_FOUND"
    stored = set_rules(
        stub, QINGHAI, long_term_min_months=12, holidays=[day("2026-05-01"), day("2026-05-01")]
    )
    assert [iso(d) for d in stored.holidays] == ["2026-05-01"]
    city = stub.GetFilingRules(api.GetFilingRulesRequest(insuplc_admdvs="630100")).rules
    assert (city.insuplc_admdvs, city.long_term_min_months) == (QINGHAI, 12)
    bad = pb.FilingRules(
        insuplc_admdvs=QINGHAI,
        review_deadline_working_days=0,
        temporary_validity_months=3,
        outpatient_designation_levels=["4"],
    )
    code, reason, fields, _ = refusal(
        lambda: stub.SetFilingRules(api.SetFilingRulesRequest(request_id=request_id(), rules=bad))
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert fields == [
        "rules.review_deadline_working_days",
        "rules.temporary_validity_months",
        "rules.outpatient_designation_levels[0]",
    ]


def test_validity_temporary_at_least_six_months_long_term_until_changed(
    stub: api_grpc.FilingServiceStub,
) -> None:
    set_rules(stub, SHENZHEN, auto_approve=True, temporary_validity_months=12)
    number = certno(SHENZHEN, 1)
    enrol(stub, person(number, SHENZHEN))
    _, reason, fields, message = refusal(
        lambda: stub.CreateFiling(application(number, SHENZHEN, BEIJING, end_date=day("2026-06-30")))
    )
    assert (reason, fields) == ("INVALID_ARGUMENT", ["end_date"]) and "2027-03-01" in message
    _, reason, fields, _ = refusal(
        lambda: stub.CreateFiling(
            application(number, SHENZHEN, GUIYANG, category=RETIREE, end_date=day("2030-01-01"))
        )
    )
    assert (reason, fields) == ("INVALID_ARGUMENT", ["end_date"])
    long_term = stub.CreateFiling(
        application(
            number, SHENZHEN, GUIYANG, category=RETIREE, materials=pb.FilingMaterials(residence_proof_id="R1")
        )
    ).filing
    assert long_term.state == APPROVED and not long_term.HasField("end_date")


def test_incomplete_materials_are_accepted_where_allowed_and_completed_later(
    stub: api_grpc.FilingServiceStub,
) -> None:
    set_rules(
        stub,
        NANCHANG,
        commitment_accepted=False,
        incomplete_materials_accepted=True,
        complete_later_working_days=5,
    )
    set_rules(stub, SHENZHEN, commitment_accepted=False)
    nanchang, shenzhen = certno(NANCHANG, 2), certno(SHENZHEN, 3)
    enrol(stub, person(nanchang, NANCHANG), person(shenzhen, SHENZHEN))
    later = pb.FilingMaterials(to_complete_later=True)
    posted = POSTED
    filed = stub.CreateFiling(
        application(nanchang, NANCHANG, SHANGHAI, category=posted, materials=later)
    ).filing
    assert filed.materials.to_complete_later and iso(filed.materials.complete_by) == "2026-03-09"
    _, reason, fields, _ = refusal(
        lambda: stub.CreateFiling(application(shenzhen, SHENZHEN, SHANGHAI, category=posted, materials=later))
    )
    assert (reason, fields) == ("MATERIALS_REQUIRED", ["materials.to_complete_later"])

    def complete(materials: pb.FilingMaterials) -> pb.Filing:
        request = api.CompleteMaterialsRequest(
            request_id=request_id(), filing_id=filed.filing_id, materials=materials
        )
        return stub.CompleteMaterials(request).filing

    _, reason, fields, _ = refusal(lambda: complete(pb.FilingMaterials(residence_proof_id="wrong proof")))
    assert (reason, fields) == ("MATERIALS_REQUIRED", ["materials.employer_proof_id"])
    done = complete(pb.FilingMaterials(employer_proof_id="EMP-88"))
    assert not done.materials.to_complete_later and done.materials.employer_proof_id == "EMP-88"
    _, reason, *_ = refusal(lambda: complete(pb.FilingMaterials(employer_proof_id="EMP-88")))
    assert reason == "FILING_STATE"


def test_review_approves_or_rejects_with_a_reason_once(stub: api_grpc.FilingServiceStub) -> None:
    number, other = certno(SHENZHEN, 4), certno(SHENZHEN, 5)
    enrol(stub, person(number, SHENZHEN), person(other, SHENZHEN))
    first = stub.CreateFiling(application(number, SHENZHEN, BEIJING, channel=WINDOW)).filing
    second = stub.CreateFiling(application(other, SHENZHEN, BEIJING, channel=WINDOW)).filing
    _, reason, fields, _ = refusal(lambda: review(stub, first.filing_id, api.REVIEW_DECISION_REJECT))
    assert (reason, fields) == ("INVALID_ARGUMENT", ["reason"])
    rejected = review(stub, first.filing_id, api.REVIEW_DECISION_REJECT, "not insured in Shenzhen any more")
    assert (rejected.state, rejected.reviewer, rejected.state_reason) == (
        pb.FILING_STATE_REJECTED,
        "op-7",
        "not insured in Shenzhen any more",
    )
    _, reason, *_ = refusal(lambda: review(stub, first.filing_id, api.REVIEW_DECISION_APPROVE))
    assert reason == "FILING_STATE"
    assert review(stub, second.filing_id, api.REVIEW_DECISION_APPROVE).state == APPROVED
    _, reason, *_ = refusal(lambda: review(stub, "440300" + "0" * 24, api.REVIEW_DECISION_APPROVE))
    assert reason == "NOT_FOUND"


def test_qinghai_restricts_changing_a_long_term_filing_then_a_change_supersedes_it(
    stub: api_grpc.FilingServiceStub, clock: Clock
) -> None:
    set_rules(stub, QINGHAI, auto_approve=True, long_term_min_months=12)
    number = certno(QINGHAI, 6)
    enrol(stub, person(number, QINGHAI))
    resettled = pb.FilingMaterials(personal_commitment=True)
    old = stub.CreateFiling(
        application(number, QINGHAI, "330400", category=RETIREE, materials=resettled)
    ).filing

    def change() -> api.ChangeFilingResponse:
        return stub.ChangeFiling(
            api.ChangeFilingRequest(
                request_id=request_id(), filing_id=old.filing_id, treatment_admdvs="330100"
            )
        )

    def cancel() -> pb.Filing:
        return stub.CancelFiling(
            api.CancelFilingRequest(request_id=request_id(), filing_id=old.filing_id)
        ).filing

    for call in (change, cancel):
        code, reason, _, message = refusal(call)
        assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "FILING_CHANGE_RESTRICTED")
        assert "2027-03-02" in message
    clock.set("2027-03-02")
    changed = change()
    assert (changed.superseded.state, changed.superseded.superseded_by_filing_id) == (
        pb.FILING_STATE_SUPERSEDED,
        changed.filing.filing_id,
    )
    assert (changed.filing.supersedes_filing_id, changed.filing.treatment_admdvs) == (old.filing_id, "330100")
    assert iso(changed.filing.start_date) == "2027-03-02" and changed.filing.state == APPROVED
    _, reason, *_ = refusal(cancel)
    assert reason == "FILING_STATE"


def test_an_approved_temporary_filing_expires_and_a_pending_one_can_be_cancelled(
    stub: api_grpc.FilingServiceStub, clock: Clock
) -> None:
    set_rules(stub, SHENZHEN, auto_approve=True)
    number = certno(SHENZHEN, 7)
    enrol(stub, person(number, SHENZHEN))
    filed = stub.CreateFiling(application(number, SHENZHEN, BEIJING)).filing
    queued = stub.CreateFiling(  # the next period: one filing per person per period
        application(number, SHENZHEN, SHANGHAI, channel=WINDOW, start_date=day("2026-09-02"))
    ).filing
    cancelled = stub.CancelFiling(
        api.CancelFilingRequest(request_id=request_id(), filing_id=queued.filing_id, reason="plans changed")
    ).filing
    assert (cancelled.state, cancelled.state_reason) == (pb.FILING_STATE_CANCELLED, "plans changed")

    clock.set("2026-09-02")
    assert (
        stub.GetFiling(api.GetFilingRequest(filing_id=filed.filing_id)).filing.state
        == pb.FILING_STATE_EXPIRED
    )
    _, reason, *_ = refusal(
        lambda: stub.CheckEligibility(eligibility(number, SHENZHEN, BEIJING, "2026-09-02"))
    )
    assert reason == "FILING_EXPIRED"
    listed = stub.ListFilings(
        api.ListFilingsRequest(insuplc_admdvs=SHENZHEN, states=[pb.FILING_STATE_EXPIRED])
    )
    assert [f.filing_id for f in listed.filings] == [filed.filing_id]
    renewed = stub.CreateFiling(application(number, SHENZHEN, BEIJING))
    assert not renewed.existing and renewed.filing.filing_id != filed.filing_id


def test_a_change_that_would_overlap_the_next_filing_is_a_conflict(stub: api_grpc.FilingServiceStub) -> None:
    set_rules(stub, SHENZHEN, auto_approve=True)
    number = certno(SHENZHEN, 13)
    enrol(stub, person(number, SHENZHEN))
    now = stub.CreateFiling(application(number, SHENZHEN, BEIJING)).filing  # until 2026-09-01
    then = stub.CreateFiling(application(number, SHENZHEN, SHANGHAI, start_date=day("2026-09-02"))).filing
    longer = api.ChangeFilingRequest(
        request_id=request_id(), filing_id=now.filing_id, end_date=day("2026-12-31")
    )
    code, reason, _, message = refusal(lambda: stub.ChangeFiling(longer))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "FILING_CONFLICT")
    assert then.filing_id in message
    assert stub.GetFiling(api.GetFilingRequest(filing_id=now.filing_id)).filing == now


def test_an_application_is_refused_while_contributions_are_interrupted_and_agents_are_validated(
    stub: api_grpc.FilingServiceStub,
) -> None:
    number = certno(SHENZHEN, 8)
    enrol(stub, person(number, SHENZHEN, contribution_gaps=[{"start_date": day("2026-01-01")}]))
    code, reason, *_ = refusal(lambda: stub.CreateFiling(application(number, SHENZHEN, BEIJING)))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CONTRIBUTION_INTERRUPTED")

    daughter = certno("110105", 9, born="19900101")
    agent = pb.Applicant(
        on_behalf=True, agent_name="王芳", agent_certno=daughter[:-1] + "Z", relation="niece"
    )
    _, reason, fields, message = refusal(
        lambda: stub.CreateFiling(application(number, SHENZHEN, BEIJING, applicant=agent))
    )
    assert fields == ["applicant.agent_certno", "applicant.relation"] and daughter[:-1] not in message
    _, reason, fields, _ = refusal(
        lambda: stub.CreateFiling(application(number, SHENZHEN, SHENZHEN[:4] + "00"))
    )
    assert (reason, fields) == ("INVALID_ARGUMENT", ["treatment_admdvs"])


def test_a_node_accepts_applications_for_its_own_subtree_only(
    start_filing_node: Callable[..., Node],
) -> None:
    guangdong = start_filing_node(role="province", region="440000")
    with grpc.insecure_channel(guangdong.address) as channel:
        stub = api_grpc.FilingServiceStub(channel)
        number = certno(SHENZHEN, 10)
        enrol(stub, person(number, SHENZHEN))
        assert stub.CreateFiling(application(number, SHENZHEN, BEIJING)).filing.insuplc_admdvs == SHENZHEN
        code, reason, *_ = refusal(
            lambda: stub.CreateFiling(application(certno(NANCHANG, 11), NANCHANG, BEIJING))
        )
        assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "INSURED_REGION_UNREACHABLE")
        code, reason, *_ = refusal(lambda: enrol(stub, person(certno(NANCHANG, 12), NANCHANG)))
        assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED_REGION")
        code, reason, *_ = refusal(
            lambda: stub.ListPendingReviews(api.ListPendingReviewsRequest(insuplc_admdvs=NANCHANG))
        )
        assert reason == "PERMISSION_DENIED_REGION"
