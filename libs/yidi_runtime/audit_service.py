"""``yidi.audit.v1.AuditService``: the node's audit trail, read a page at a time.

Who may read it (operators) is the authorization layer's decision; this servicer only
converts the request into a query on the :class:`~yidi_runtime.audit.AuditTrail` and the
rows into messages.
"""

from __future__ import annotations

import grpc

from yidi.audit.v1 import audit_record_pb2 as record_pb
from yidi.audit.v1 import audit_service_pb2 as api
from yidi.audit.v1 import audit_service_pb2_grpc as api_grpc
from yidi_runtime import audit
from yidi_runtime.audit import AuditEntry, AuditTrail
from yidi_runtime.authz import OPERATOR, allow, rules
from yidi_runtime.identity import CallerRole, Via
from yidi_runtime.service import ServiceGroup
from yidi_runtime.wire import moment_of, timestamp_message

SERVICE_NAME = api.DESCRIPTOR.services_by_name["AuditService"].full_name

_ROLES = {
    CallerRole.NODE.value: record_pb.CALLER_ROLE_NODE,
    CallerRole.INSTITUTION.value: record_pb.CALLER_ROLE_INSTITUTION,
    CallerRole.OPERATOR.value: record_pb.CALLER_ROLE_OPERATOR,
    CallerRole.DEVELOPER.value: record_pb.CALLER_ROLE_DEVELOPER,
}
_VIAS = {
    Via.CERTIFICATE.value: record_pb.VIA_CERTIFICATE,
    Via.TOKEN.value: record_pb.VIA_TOKEN,
    Via.INSECURE.value: record_pb.VIA_INSECURE,
    Via.LOCAL.value: record_pb.VIA_LOCAL,
}

ACCESS = rules(SERVICE_NAME, ListAuditRecords=allow(OPERATOR))
"""Only operators read the trail."""

GROUP = ServiceGroup(
    name=audit.SERVICE,
    metadata=audit.Base.metadata,
    versions=audit.VERSIONS,
    register=lambda _server, _context: (),
    access=ACCESS,
)
"""The trail's database as the node opens and migrates it; the node serves it with :func:`register_audit_service`."""


def record_message(entry: AuditEntry) -> record_pb.AuditRecord:
    """An audit row for the wire."""
    return record_pb.AuditRecord(
        record_id=entry.id,
        record_time=timestamp_message(entry.recorded_at),
        node=entry.node,
        node_region=entry.node_region,
        caller_role=_ROLES.get(entry.caller_role, record_pb.CALLER_ROLE_UNSPECIFIED),
        caller=entry.caller,
        via=_VIAS.get(entry.via, record_pb.VIA_UNSPECIFIED),
        service=entry.service,
        method=entry.method,
        request_id=entry.request_id,
        grpc_code=entry.grpc_code,
        reason=entry.reason,
        peer=entry.peer,
    )


class AuditServicer(api_grpc.AuditServiceServicer):
    """Answers ListAuditRecords from one node's trail."""

    def __init__(self, trail: AuditTrail) -> None:
        self._trail = trail

    def ListAuditRecords(
        self, request: api.ListAuditRecordsRequest, context: grpc.ServicerContext
    ) -> api.ListAuditRecordsResponse:
        """One page of the trail in record order."""
        entries, token = self._trail.list(
            since=moment_of(request, "since"),
            until=moment_of(request, "until"),
            caller=request.caller.strip(),
            method=request.method.strip(),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return api.ListAuditRecordsResponse(
            records=[record_message(entry) for entry in entries], next_page_token=token
        )


def register_audit_service(server: grpc.Server, trail: AuditTrail) -> str:
    """Serve ``trail`` on ``server``; the full service name (for health, reflection and authorization)."""
    api_grpc.add_AuditServiceServicer_to_server(AuditServicer(trail), server)
    return SERVICE_NAME
