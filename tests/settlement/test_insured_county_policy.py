"""A person insured in a county is settled with the county's policy if it has one, else the province's.

The Qinghai insured node (630000) hosts Xining's Chengdong district (630102), which has no
policy of its own at first: ApplySettlement uses Qinghai's, then the district's own once it
is imported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.type.date_pb2 import Date
from insured_builders import TEST_POLICY, Insured, apply_request, insured_node, message_id

from yidi.catalogue.v1 import policy_service_pb2, policy_service_pb2_grpc
from yidi.filing.v1 import filing_service_pb2, insured_person_pb2

COUNTY = "630102"
CERTNO = "630102198001010019"


@pytest.fixture
def insured(tmp_path: Path, database_url: str | None) -> Iterator[Insured]:
    with insured_node(tmp_path, database_url, settlement_hold_timeout_s=60.0) as running:
        yield running


def test_a_county_person_is_settled_with_the_provinces_policy_until_the_county_has_its_own(
    insured: Insured,
) -> None:
    enrolled = insured.filing.ImportInsuredPersons(
        filing_service_pb2.ImportInsuredPersonsRequest(
            request_id=message_id(),
            persons=[
                insured_person_pb2.InsuredPerson(
                    certno=CERTNO,
                    psn_name="样例县一",
                    insuplc_admdvs=COUNTY,
                    insutype="310",
                    psn_type="1101",
                    insured_since=Date(year=2015, month=1, day=1),
                    credential_activated=True,
                )
            ],
        )
    )
    psn_no = enrolled.psn_nos[0]
    first = insured.stub.ApplySettlement(apply_request(psn_no))
    assert first.policy_version.startswith("630000/310@2022-01-01#")

    county = {**TEST_POLICY, "rules": [{**rule, "ratio": "0.90"} for rule in TEST_POLICY["rules"]]}
    with grpc.insecure_channel(insured.node.address) as channel:
        policy_service_pb2_grpc.PolicyServiceStub(channel).ImportPolicy(
            policy_service_pb2.ImportPolicyRequest(
                request_id=message_id(),
                insuplc_admdvs=COUNTY,
                insutype="310",
                effective_date=Date(year=2022, month=1, day=1),
                format=policy_service_pb2.POLICY_FORMAT_JSON,
                document=json.dumps(county).encode(),
            )
        )
    second = insured.stub.ApplySettlement(apply_request(psn_no))
    assert second.policy_version.startswith(f"{COUNTY}/310@2022-01-01#")
    assert second.result.amounts.hifp_pay_fen > first.result.amounts.hifp_pay_fen
