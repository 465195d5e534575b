"""CheckEligibility: the snapshot, or the first reason a clerk must act on, in the order they act."""

from __future__ import annotations

from typing import Any

import grpc
from filing_builders import (
    BEIJING,
    GUIYANG,
    LANGFANG,
    RETIREE,
    SHENZHEN,
    WINDOW,
    application,
    by_certno,
    certno,
    day,
    eligibility,
    enrol,
    person,
    refusal,
    request_id,
    set_rules,
)

from yidi.filing.v1 import filing_pb2 as pb
from yidi.filing.v1 import filing_service_pb2 as api
from yidi.filing.v1 import filing_service_pb2_grpc as api_grpc
from yidi.type.v1 import filing_category_pb2 as category_pb
from yidi.type.v1 import person_pb2


def test_reasons_come_in_the_order_a_clerk_resolves_them(stub: api_grpc.FilingServiceStub) -> None:
    number = certno(SHENZHEN, 1)
    question = eligibility(number, SHENZHEN, "110105", "2026-03-02")

    def reason() -> str:
        return refusal(lambda: stub.CheckEligibility(question))[1]

    assert reason() == "PERSON_NOT_FOUND"
    gap = [{"start_date": day("2026-01-01")}]
    enrol(stub, person(number, SHENZHEN, credential_activated=False, contribution_gaps=gap))
    assert reason() == "CONTRIBUTION_INTERRUPTED"
    stub.UpdateInsuredStatus(
        api.UpdateInsuredStatusRequest(
            request_id=request_id(), person=by_certno(number), resumed_on=day("2026-02-28")
        )
    )
    assert reason() == "CREDENTIAL_NOT_ACTIVATED"
    stub.UpdateInsuredStatus(
        api.UpdateInsuredStatusRequest(
            request_id=request_id(), person=by_certno(number), activate_credential=True
        )
    )
    assert reason() == "NOT_FILED"
    filed = stub.CreateFiling(application(number, SHENZHEN, BEIJING, channel=WINDOW)).filing
    assert reason() == "FILING_PENDING_REVIEW"
    stub.ReviewFiling(
        api.ReviewFilingRequest(
            request_id=request_id(),
            filing_id=filed.filing_id,
            decision=api.REVIEW_DECISION_APPROVE,
            reviewer="op",
        )
    )
    snapshot = stub.CheckEligibility(question).person
    assert (
        snapshot.certno_masked == number[:6] + "********" + number[-4:] and snapshot.psn_name_masked == "张**"
    )
    assert (snapshot.filing_id, snapshot.filing_category) == (
        filed.filing_id,
        category_pb.FILING_CATEGORY_TEMPORARY_OTHER,
    )
    assert (snapshot.contribution_status, snapshot.has_personal_account) == (
        person_pb2.CONTRIBUTION_STATUS_ACTIVE,
        True,
    )
    assert refusal(lambda: stub.CheckEligibility(eligibility(number, SHENZHEN, "110105", "2026-09-02")))[
        1
    ] == ("FILING_EXPIRED")
    code, _, fields, _ = refusal(
        lambda: stub.CheckEligibility(eligibility(number, SHENZHEN, "11010", "2026-03-02", med_type="99"))
    )
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["treatment_admdvs", "med_type"])


def test_emergency_rescue_counts_as_filed_without_a_record(stub: api_grpc.FilingServiceStub) -> None:
    number = certno(LANGFANG, 2)
    enrol(stub, person(number, LANGFANG))
    for question in (
        eligibility(number, LANGFANG, "110105", "2026-03-02", med_type="13"),
        eligibility(number, LANGFANG, "110105", "2026-03-02", med_type="21", emergency=True),
    ):
        snapshot = stub.CheckEligibility(question).person
        assert (snapshot.filing_category, snapshot.filing_id) == (category_pb.FILING_CATEGORY_EMERGENCY, "")
    stub.UpdateInsuredStatus(
        api.UpdateInsuredStatusRequest(
            request_id=request_id(), person=by_certno(number), interrupted_from=day("2026-03-01")
        )
    )
    emergency = eligibility(number, LANGFANG, "110105", "2026-03-02", med_type="13")
    assert refusal(lambda: stub.CheckEligibility(emergency))[1] == "CONTRIBUTION_INTERRUPTED"


def test_long_term_filers_keep_their_home_benefits(stub: api_grpc.FilingServiceStub) -> None:
    set_rules(stub, SHENZHEN, auto_approve=True)
    retiree = certno(SHENZHEN, 3)
    enrol(stub, person(retiree, SHENZHEN))
    resettled = application(
        retiree, SHENZHEN, GUIYANG, category=RETIREE, materials=pb.FilingMaterials(personal_commitment=True)
    )
    filing_id = stub.CreateFiling(resettled).filing.filing_id
    away = stub.CheckEligibility(eligibility(retiree, SHENZHEN, "520102", "2028-06-01")).person
    assert (away.filing_category, away.filing_id) == (
        category_pb.FILING_CATEGORY_RETIREE_RESETTLED,
        filing_id,
    )
    home = stub.CheckEligibility(eligibility(retiree, SHENZHEN, "440304", "2028-06-01")).person
    assert (home.filing_category, home.filing_id) == (category_pb.FILING_CATEGORY_UNSPECIFIED, "")
    assert refusal(lambda: stub.CheckEligibility(eligibility(retiree, SHENZHEN, "110105", "2028-06-01")))[
        1
    ] == ("NOT_FILED")


def test_outpatient_care_needs_a_designated_institution_where_the_region_requires_one(
    stub: api_grpc.FilingServiceStub,
) -> None:
    set_rules(stub, LANGFANG, auto_approve=True, outpatient_designations_required=2)
    number = certno(LANGFANG, 4)
    enrol(stub, person(number, LANGFANG))
    chosen = ["H11010500001", "H11010800002"]
    _, reason, fields, _ = refusal(
        lambda: stub.CreateFiling(
            application(
                number, LANGFANG, BEIJING, designated_institutions=["H11010500001", "H33040100011", "X"]
            )
        )
    )
    assert (reason, fields) == (
        "INVALID_ARGUMENT",
        ["designated_institutions[1]", "designated_institutions[2]", "designated_institutions"],
    )
    stub.CreateFiling(application(number, LANGFANG, BEIJING, designated_institutions=chosen))

    def check(med_type: str, institution: str = "", **fields: Any) -> api.CheckEligibilityResponse:
        question = eligibility(
            number, LANGFANG, "110105", "2026-03-10", med_type=med_type, fixmedins_code=institution, **fields
        )
        return stub.CheckEligibility(question)

    assert check("11", chosen[1]).person.filing_category == category_pb.FILING_CATEGORY_TEMPORARY_OTHER
    code, reason, _, _ = refusal(lambda: check("11", "H11010200009"))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INSTITUTION_NOT_DESIGNATED")
    assert refusal(lambda: check("14"))[2] == ["chronic_disease"]
    # The five piloted chronic diseases (sub-codes too) are treated anywhere that offers them.
    for pilot in ("M01600", "M00503"):
        assert check("14", "H11010200009", chronic_disease=pilot).person.filing_id
    assert refusal(lambda: check("14", "H11010200009", chronic_disease="M02300"))[1] == (
        "INSTITUTION_NOT_DESIGNATED"
    )
    assert refusal(lambda: check("11"))[2] == ["fixmedins_code"]
    assert check(
        "21", "H11010200009"
    ).person.filing_id  # inpatient: every networked institution of the region
