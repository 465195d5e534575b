"""Authorization through the public surface: every forbidden path is refused before the handler looks anything up.

The rules are the same on every listener, so most checks run on an insecure development
node where ``x-yidi-principal`` names the caller; the mutual-TLS tests show the same
principals come from real certificates and tokens.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import descriptor_pool

from yidi.audit.v1 import audit_service_pb2, audit_service_pb2_grpc
from yidi.filing.v1 import filing_service_pb2, filing_service_pb2_grpc
from yidi.settlement.v1 import insured_settlement_service_pb2 as insured
from yidi.settlement.v1 import settlement_pb2, settlement_service_pb2, settlement_service_pb2_grpc
from yidi_runtime import token_service
from yidi_runtime.audit_service import GROUP as AUDIT
from yidi_runtime.auth import PRINCIPAL_HEADER
from yidi_runtime.authz import PUBLIC_SERVICES
from yidi_runtime.config import Peer
from yidi_runtime.identity import CallerRole, parse_subject
from yidi_runtime.server import Node
from yidi_services.node import GROUPS, start_node
from yidi_testing import error_details, settings_for

BEIJING = "110000"
BEIJING_HOSPITAL = "H11010500001"
OTHER_BEIJING_HOSPITAL = "H11010500002"
HEBEI_HOSPITAL = "H13010200001"
CALLERS = {
    "institution": f"institution/{BEIJING_HOSPITAL}",
    "operator": f"operator/{BEIJING}/ops",
    "node": "node/000000",
}


@pytest.fixture(scope="module")
def beijing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A Beijing province node run insecure, its parent the national node, a Dongcheng child."""
    settings = settings_for(
        tmp_path_factory.mktemp("beijing"),
        parent=Peer("000000", "127.0.0.1:9"),
        children=[Peer("110101", "127.0.0.1:9")],
        region=BEIJING,
        auto_migrate=True,
        metrics_port="off",
    )
    started = start_node(settings)
    yield started
    started.stop(0)


def call_as(node: Node, subject: str | None, full_method: str, request: bytes = b"") -> grpc.RpcError | None:
    """Call ``full_method`` with encoded ``request`` as ``subject``; the error, or None when answered."""
    method = descriptor_pool.Default().FindMethodByName(full_method.strip("/").replace("/", "."))
    metadata = [(PRINCIPAL_HEADER, subject)] if subject else []
    with grpc.insecure_channel(node.address) as channel:
        try:
            if method.client_streaming:
                channel.stream_unary(full_method)(iter([request]), metadata=metadata, timeout=10)
            elif method.server_streaming:
                list(channel.unary_stream(full_method)(request, metadata=metadata, timeout=10))
            else:
                channel.unary_unary(full_method)(request, metadata=metadata, timeout=10)
        except grpc.RpcError as error:
            return error
    return None


def reason(error: grpc.RpcError | None) -> str:
    assert error is not None, "the call was answered"
    return error_details(error)["ErrorInfo"].reason


ALL_RULES = {
    method: rule
    for access in [*(group.access for group in [*GROUPS.values(), AUDIT]), token_service.ACCESS]
    for method, rule in access.items()
}


def test_every_method_of_every_served_service_has_a_rule(beijing: Node) -> None:
    pool = descriptor_pool.Default()
    served = {
        f"/{name}/{method.name}"
        for name in beijing.service_names
        for method in pool.FindServiceByName(name).methods
    }
    assert len(served) > 70
    assert served == set(ALL_RULES), sorted(served ^ set(ALL_RULES))


def test_every_field_a_rule_names_exists_on_the_methods_request() -> None:
    pool = descriptor_pool.Default()
    for method, rule in ALL_RULES.items():
        request = pool.FindMethodByName(method.strip("/").replace("/", ".")).input_type
        for path in (*rule.own, *rule.origin):
            message = request
            for part in path.split("."):
                assert message is not None and part in message.fields_by_name, (method, path)
                message = message.fields_by_name[part].message_type


FORBIDDEN = sorted(
    (method, role)
    for method, rule in ALL_RULES.items()
    for role in CALLERS
    if CallerRole(role) not in rule.roles
)


@pytest.mark.parametrize(("method", "role"), FORBIDDEN)
def test_a_caller_outside_a_methods_roles_is_refused_before_anything_is_looked_up(
    beijing: Node, method: str, role: str
) -> None:
    error = call_as(beijing, CALLERS[role], method)
    assert error is not None and error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert reason(error) == "PERMISSION_DENIED_ROLE"


def envelope(code: str) -> settlement_pb2.Envelope:
    return settlement_pb2.Envelope(fixmedins_code=code, mdtrtarea_admvs="110105")


def test_an_institution_acts_only_as_itself(beijing: Node) -> None:
    """Another institution's code is refused PERMISSION_DENIED, even for a settlement that does not exist."""
    request = settlement_service_pb2.GetSettlementRequest(
        envelope=envelope(OTHER_BEIJING_HOSPITAL), setl_id="11000020260101000000000000000"
    )
    error = call_as(
        beijing,
        CALLERS["institution"],
        "/yidi.settlement.v1.SettlementService/GetSettlement",
        request.SerializeToString(),
    )
    assert error is not None and error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert reason(error) == "PERMISSION_DENIED_REGION"
    assert error_details(error)["ErrorInfo"].metadata["field"] == "envelope.fixmedins_code"

    own = request.__class__(envelope=envelope(BEIJING_HOSPITAL), setl_id=request.setl_id)
    error = call_as(
        beijing,
        CALLERS["institution"],
        "/yidi.settlement.v1.SettlementService/GetSettlement",
        own.SerializeToString(),
    )
    assert error is not None and error.code() is grpc.StatusCode.NOT_FOUND


def test_an_institution_acts_only_at_its_regions_node(beijing: Node) -> None:
    request = settlement_service_pb2.GetSettlementRequest(envelope=envelope(HEBEI_HOSPITAL), setl_id="x")
    for caller in (
        f"institution/{HEBEI_HOSPITAL}",
        "institution/H11010100001",
    ):  # Hebei; Dongcheng's own node
        error = call_as(
            beijing,
            caller,
            "/yidi.settlement.v1.SettlementService/GetSettlement",
            request.SerializeToString(),
        )
        assert reason(error) == "PERMISSION_DENIED_REGION"


def test_an_operator_acts_only_within_their_region(beijing: Node) -> None:
    request = filing_service_pb2.ReviewFilingRequest(request_id="r-1", filing_id="no-such-filing")
    method = "/yidi.filing.v1.FilingService/ReviewFiling"
    assert reason(call_as(beijing, "operator/130000/ops", method, request.SerializeToString())) == (
        "PERMISSION_DENIED_REGION"
    )
    for allowed in (f"operator/{BEIJING}/ops", "operator/000000/ops"):
        error = call_as(beijing, allowed, method, request.SerializeToString())
        assert error is not None and error.code() is not grpc.StatusCode.PERMISSION_DENIED


def test_a_node_is_accepted_only_from_its_parent_children_and_within_a_childs_subtree(beijing: Node) -> None:
    method = "/yidi.settlement.v1.InsuredSettlementService/RevertSettlement"

    def revert(origin: str) -> bytes:
        return insured.RevertSettlementRequest(
            request_id="r-2", route=settlement_pb2.Route(origin_admdvs=origin), original_request_id="o-1"
        ).SerializeToString()

    assert reason(call_as(beijing, "node/130000", method, revert("130100"))) == "PERMISSION_DENIED_REGION"
    assert reason(call_as(beijing, "node/110101", method, revert("330400"))) == "PERMISSION_DENIED_REGION"
    for caller, origin in (("node/110101", "110101"), ("node/000000", "330400")):
        error = call_as(beijing, caller, method, revert(origin))
        assert error is None or error.code() is not grpc.StatusCode.PERMISSION_DENIED


def test_a_development_node_without_a_named_caller_lets_the_developer_do_everything(beijing: Node) -> None:
    request = filing_service_pb2.ReviewFilingRequest(request_id="r-3", filing_id="no-such-filing")
    error = call_as(beijing, None, "/yidi.filing.v1.FilingService/ReviewFiling", request.SerializeToString())
    assert error is not None and error.code() is not grpc.StatusCode.PERMISSION_DENIED


def test_a_malformed_claimed_caller_is_unauthenticated(beijing: Node) -> None:
    error = call_as(beijing, "institution/nobody", "/yidi.filing.v1.FilingService/GetFilingRules")
    assert error is not None and error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert reason(error) == "UNAUTHENTICATED"


def test_health_and_reflection_need_no_role() -> None:
    assert {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} == set(PUBLIC_SERVICES)
    assert parse_subject("yidi://operator/000000/ops") is not None


def test_stubs_work_for_the_institution_itself(beijing: Node) -> None:
    with grpc.insecure_channel(beijing.address) as channel:
        stub = settlement_service_pb2_grpc.SettlementServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ListSettlements(
                settlement_service_pb2.ListSettlementsRequest(
                    envelope=envelope(BEIJING_HOSPITAL), fixmedins_code=OTHER_BEIJING_HOSPITAL
                ),
                metadata=[(PRINCIPAL_HEADER, CALLERS["institution"])],
                timeout=10,
            )
        assert reason(caught.value) == "PERMISSION_DENIED_REGION"
        with pytest.raises(grpc.RpcError) as caught:
            filing_service_pb2_grpc.FilingServiceStub(channel).GetFilingRules(
                filing_service_pb2.GetFilingRulesRequest(insuplc_admdvs=BEIJING),
                metadata=[(PRINCIPAL_HEADER, CALLERS["institution"])],
                timeout=10,
            )
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND  # allowed in, and nothing is configured


def test_every_mutating_call_refused_or_not_is_in_the_audit_trail_which_only_operators_read(
    beijing: Node,
) -> None:
    review = filing_service_pb2.ReviewFilingRequest(request_id="audit-me", filing_id="no-such-filing")
    method = "/yidi.filing.v1.FilingService/ReviewFiling"
    call_as(beijing, CALLERS["institution"], method, review.SerializeToString())
    call_as(beijing, CALLERS["operator"], method, review.SerializeToString())
    call_as(
        beijing, CALLERS["operator"], "/yidi.filing.v1.FilingService/GetFilingRules"
    )  # a read: not audited

    listing = audit_service_pb2.ListAuditRecordsRequest(method="ReviewFiling").SerializeToString()
    assert reason(
        call_as(beijing, CALLERS["institution"], "/yidi.audit.v1.AuditService/ListAuditRecords", listing)
    ) == ("PERMISSION_DENIED_ROLE")
    with grpc.insecure_channel(beijing.address) as channel:
        records = (
            audit_service_pb2_grpc.AuditServiceStub(channel)
            .ListAuditRecords(
                audit_service_pb2.ListAuditRecordsRequest(method="ReviewFiling"),
                metadata=[(PRINCIPAL_HEADER, CALLERS["operator"])],
                timeout=10,
            )
            .records
        )
    assert [
        (r.caller, r.request_id, r.grpc_code, r.reason) for r in records if r.request_id == "audit-me"
    ] == [
        (CALLERS["institution"], "audit-me", "PERMISSION_DENIED", "PERMISSION_DENIED_ROLE"),
        (CALLERS["operator"], "audit-me", "INVALID_ARGUMENT", "INVALID_ARGUMENT"),
    ]
    assert records[0].node_region == BEIJING and records[0].service == "yidi.filing.v1.FilingService"
