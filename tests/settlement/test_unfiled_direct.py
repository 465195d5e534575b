"""Care without a filing settles directly where the insured place's policy allows it (unfiled_direct).

Through the stubs, on the Beijing tree (SQLite and PostgreSQL): the never-filed Langfang employee's
chronic visit at a Beijing hospital is refused NOT_FILED with no policy in force, and under a policy
with rates for unfiled care that does not settle it directly; once Langfang imports a version that does, the window verifies the person without a
category and the visit settles at the policy's unreferred factor (50% of the eligible amount).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import grpc
import pytest
from google.type.date_pb2 import Date
from loading import LANGFANG, SERVICE_DAY, beijing_tree, psn_no_of
from treatment_his import DRUGS_FEN, envelope, id_card, open_visit, refusal, settle_request

from yidi.catalogue.v1 import policy_service_pb2, policy_service_pb2_grpc
from yidi.settlement.v1 import settlement_service_pb2 as api
from yidi.settlement.v1 import settlement_service_pb2_grpc as api_grpc
from yidi.type.v1 import filing_category_pb2
from yidi_runtime.peers import message_id
from yidi_runtime.server import Node

EMPLOYEE_CERTNO = "131000198309180289"  # 样例廊二: insured in Langfang, never filed
BEIJING = "110000"
RATES = {"emergency": "0.70", "unreferred": "0.50"}


@pytest.fixture(scope="module")
def nodes(
    tmp_path_factory: pytest.TempPathFactory, module_database_factory: Callable[[], str | None]
) -> Iterator[dict[str, Node]]:
    with beijing_tree(tmp_path_factory.mktemp("unfiled"), module_database_factory) as started:
        yield started


def _import(nodes: dict[str, Node], effective: Date, **document: object) -> None:
    """A Langfang resident-insurance (390) policy from ``effective`` on: chronic care at 75%."""
    rule = {
        "med_types": ["14"],
        "psn_types": ["*"],
        "institution_levels": ["*"],
        "deductible_scope": "annual",
        "deductible_key": "chronic",
        "ratio": "0.75",
        "cap": "5000.00",
        "cap_key": "chronic:M01600",
    }
    with grpc.insecure_channel(nodes[LANGFANG].address) as channel:
        policy_service_pb2_grpc.PolicyServiceStub(channel).ImportPolicy(
            policy_service_pb2.ImportPolicyRequest(
                request_id=message_id(LANGFANG),
                insuplc_admdvs=LANGFANG,
                insutype="390",
                effective_date=effective,
                format=policy_service_pb2.POLICY_FORMAT_JSON,
                document=json.dumps({"rules": [rule], **document}).encode(),
            ),
            timeout=30,
        )


def test_unfiled_care_settles_directly_at_the_reduced_rate_only_where_the_policy_allows(
    nodes: dict[str, Node],
) -> None:
    employee = psn_no_of(nodes, EMPLOYEE_CERTNO)
    verify = api.VerifyPersonRequest(
        envelope=envelope(), credential=id_card(EMPLOYEE_CERTNO), med_type="14", chronic_disease="M01600"
    )
    verify.service_date.CopyFrom(SERVICE_DAY)
    with grpc.insecure_channel(nodes[BEIJING].address) as channel:
        stub = api_grpc.SettlementServiceStub(channel)
        refused = open_visit(stub, employee, credential=id_card(EMPLOYEE_CERTNO), insutype="390")
        assert refusal(lambda: stub.VerifyPerson(verify, timeout=20))[1] == "NOT_FILED"  # no policy at all
        _import(nodes, Date(year=2022, month=1, day=1), unfiled_factors=RATES)
        assert refusal(lambda: stub.VerifyPerson(verify, timeout=20))[1] == "NOT_FILED"
        assert refusal(lambda: stub.Settle(settle_request(refused), timeout=20))[1] == "NOT_FILED"

        _import(nodes, SERVICE_DAY, unfiled_factors=RATES, unfiled_direct=True)
        person = stub.VerifyPerson(verify, timeout=20).person
        assert person.psn_no == employee
        assert person.filing_category == filing_category_pb2.FILING_CATEGORY_UNSPECIFIED
        settled = stub.Settle(settle_request(refused), timeout=20).settlement
    amounts = settled.result.amounts
    # Eligible 61.11 (64.29 less 3.18 first self-pay) counts at 50%: 30.555 × 75% = 22.92; no account (390).
    assert (amounts.medfee_sumamt_fen, amounts.hifp_pay_fen, amounts.psn_part_amt_fen) == (
        DRUGS_FEN,
        2292,
        DRUGS_FEN - 2292,
    )
