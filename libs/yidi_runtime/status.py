"""Turns a :class:`~yidi_core.errors.DomainError` into a rich gRPC status (AIP-193).

Clients read ``google.rpc.ErrorInfo`` (stable reason, domain ``yidi``, metadata),
``google.rpc.BadRequest`` (field violations) and a Chinese ``LocalizedMessage`` for the
window clerk; the status message itself is English.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from yidi_core.errors import DomainError

ERROR_DOMAIN = "yidi"


def grpc_code(error: DomainError) -> grpc.StatusCode:
    """The status code registered for the error's reason."""
    return grpc.StatusCode[error.reason.grpc_code]


def _packed(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_status(error: DomainError) -> grpc.Status:
    """The full status to pass to ``context.abort_with_status``."""
    details = [
        _packed(
            error_details_pb2.ErrorInfo(
                reason=error.reason_code, domain=ERROR_DOMAIN, metadata=error.metadata
            )
        ),
        _packed(error_details_pb2.LocalizedMessage(locale="zh-CN", message=error.reason.message_zh)),
    ]
    if error.violations:
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in error.violations
        ]
        details.append(_packed(error_details_pb2.BadRequest(field_violations=violations)))
    code = getattr(code_pb2, error.reason.grpc_code)
    return rpc_status.to_status(status_pb2.Status(code=code, message=error.message, details=details))
