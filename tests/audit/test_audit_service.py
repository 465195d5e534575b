"""ListAuditRecords through the generated stub: records on the wire, filters, pages and refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from audit_support import NODE, REGION, Clock
from google.protobuf.timestamp_pb2 import Timestamp

from yidi.audit.v1 import audit_record_pb2 as record_pb
from yidi.audit.v1 import audit_service_pb2 as api
from yidi.audit.v1 import audit_service_pb2_grpc as api_grpc
from yidi_runtime.audit import AuditTrail
from yidi_runtime.identity import DEVELOPER, parse_subject
from yidi_testing import error_details

SETTLEMENT = "yidi.settlement.v1.SettlementService"


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def fill(trail: AuditTrail, clock: Clock) -> None:
    """Five calls an hour apart from 2026-11-25 01:00 UTC: a hospital's visit and settlement,
    an operator's refused review, a forwarded settlement, an unauthenticated attempt."""
    calls = [
        ("institution/H33040200001", "RegisterVisit", grpc.StatusCode.OK, ""),
        ("institution/H33040200001", "Settle", grpc.StatusCode.OK, ""),
        (
            "operator/330000/zhang.wei",
            "ReviewFiling",
            grpc.StatusCode.PERMISSION_DENIED,
            "PERMISSION_DENIED_REGION",
        ),
        ("node/330400", "Settle", grpc.StatusCode.FAILED_PRECONDITION, "NOT_FILED"),
        ("", "Settle", grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
    ]
    for number, (subject, method, code, reason) in enumerate(calls):
        service = "yidi.filing.v1.FilingService" if method == "ReviewFiling" else SETTLEMENT
        principal = parse_subject(subject) if subject else None
        trail.record(principal, service, method, f"msg{number}", code, reason, "ipv4:127.0.0.1:40000")
        clock.advance(hours=1)


def test_records_arrive_whole_with_their_roles_and_times(
    stub: api_grpc.AuditServiceStub, trail: AuditTrail, clock: Clock
) -> None:
    fill(trail, clock)
    trail.record(DEVELOPER, SETTLEMENT, "CancelVisit", "msg5", grpc.StatusCode.OK, "")
    records = stub.ListAuditRecords(api.ListAuditRecordsRequest(), timeout=10).records
    assert [record.request_id for record in records] == [f"msg{n}" for n in range(6)]
    first = records[0]
    assert first.record_time.ToDatetime(tzinfo=UTC) == datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
    assert (first.node, first.node_region, first.caller, first.service, first.method) == (
        NODE,
        REGION,
        "institution/H33040200001",
        SETTLEMENT,
        "RegisterVisit",
    )
    assert (first.grpc_code, first.reason, first.peer) == ("OK", "", "ipv4:127.0.0.1:40000")
    assert [(record.caller_role, record.via) for record in records] == [
        (record_pb.CALLER_ROLE_INSTITUTION, record_pb.VIA_CERTIFICATE),
        (record_pb.CALLER_ROLE_INSTITUTION, record_pb.VIA_CERTIFICATE),
        (record_pb.CALLER_ROLE_OPERATOR, record_pb.VIA_CERTIFICATE),
        (record_pb.CALLER_ROLE_NODE, record_pb.VIA_CERTIFICATE),
        (record_pb.CALLER_ROLE_UNSPECIFIED, record_pb.VIA_UNSPECIFIED),
        (record_pb.CALLER_ROLE_DEVELOPER, record_pb.VIA_INSECURE),
    ]
    assert (records[2].grpc_code, records[2].reason) == ("PERMISSION_DENIED", "PERMISSION_DENIED_REGION")


def test_filters_and_pages(stub: api_grpc.AuditServiceStub, trail: AuditTrail, clock: Clock) -> None:
    fill(trail, clock)
    window = api.ListAuditRecordsRequest(
        since=stamp(datetime(2026, 11, 25, 2, 0, tzinfo=UTC)),
        until=stamp(datetime(2026, 11, 25, 4, 0, tzinfo=UTC)),
    )
    assert [r.request_id for r in stub.ListAuditRecords(window, timeout=10).records] == ["msg1", "msg2"]
    settles = api.ListAuditRecordsRequest(method=f"{SETTLEMENT}/Settle", page_size=1)
    seen = []
    for _ in range(10):
        page = stub.ListAuditRecords(settles, timeout=10)
        assert len(page.records) <= 1
        seen += [record.request_id for record in page.records]
        if not page.next_page_token:
            break
        settles.page_token = page.next_page_token
    assert seen == ["msg1", "msg3", "msg4"]
    by_caller = api.ListAuditRecordsRequest(caller="institution/H33040200001", method="Settle")
    assert [r.request_id for r in stub.ListAuditRecords(by_caller, timeout=10).records] == ["msg1"]


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"page_size": -1}, "page_size"),
        ({"page_token": "bogus"}, "page_token"),
        (
            {
                "since": stamp(datetime(2026, 11, 25, 3, 0, tzinfo=UTC)),
                "until": stamp(datetime(2026, 11, 25, 2, 0, tzinfo=UTC)),
            },
            "until",
        ),
        ({"since": Timestamp(seconds=-(10**12))}, "since"),
    ],
)
def test_bad_requests_are_refused_with_the_field(
    stub: api_grpc.AuditServiceStub, request_fields: dict[str, object], field: str
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        stub.ListAuditRecords(api.ListAuditRecordsRequest(**request_fields), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error_details(refused.value)
    assert details["ErrorInfo"].reason == "INVALID_ARGUMENT"
    assert [violation.field for violation in details["BadRequest"].field_violations] == [field]


def test_a_token_is_refused_with_other_filters(
    stub: api_grpc.AuditServiceStub, trail: AuditTrail, clock: Clock
) -> None:
    fill(trail, clock)
    token = stub.ListAuditRecords(api.ListAuditRecordsRequest(page_size=2), timeout=10).next_page_token
    assert token
    with pytest.raises(grpc.RpcError) as refused:
        stub.ListAuditRecords(api.ListAuditRecordsRequest(page_size=2, caller="operator/", page_token=token))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
