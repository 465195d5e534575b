"""Turns a :class:`~yidi_core.errors.DomainError` into a rich gRPC status (AIP-193).

Clients read ``google.rpc.ErrorInfo`` (stable reason, domain ``yidi``, metadata),
``google.rpc.BadRequest`` (field violations), ``google.rpc.RetryInfo`` (when to send the
request again, for a refusal that says) and a Chinese ``LocalizedMessage`` for the window
clerk; the status message itself is English.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from yidi_core.errors import DomainError

ERROR_DOMAIN = "yidi"


def grpc_code(error: DomainError) -> grpc.StatusCode:
    """The status code registered for the error's reason."""
    return grpc.StatusCode[error.reason.grpc_code]


_MESSAGE_BYTES = 600
_TEXT_BYTES = 160
_VIOLATION_BYTES = 2800
"""Bounds on what a refusal echoes back. The status travels in trailers, which a gRPC client
drops whole beyond 8–16 KiB (RESOURCE_EXHAUSTED, no reason left), so an error quoting a huge
input keeps its first bad fields and says how many there were."""


def _clip(text: str, limit: int = _TEXT_BYTES) -> str:
    """``text`` cut to ``limit`` UTF-8 bytes (on a character boundary), marked with … when cut."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode(errors="ignore") + "…"


def _packed(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _violations(error: DomainError) -> list[error_details_pb2.BadRequest.FieldViolation]:
    """The error's field violations, each clipped, as many as fit in :data:`_VIOLATION_BYTES`."""
    kept: list[error_details_pb2.BadRequest.FieldViolation] = []
    room = _VIOLATION_BYTES
    for violation in error.violations:
        clipped = error_details_pb2.BadRequest.FieldViolation(
            field=_clip(violation.field), description=_clip(violation.description)
        )
        room -= clipped.ByteSize() + 3
        if room < 0:
            break
        kept.append(clipped)
    return kept


def to_status(error: DomainError) -> grpc.Status:
    """The full status to pass to ``context.abort_with_status``."""
    details = [
        _packed(
            error_details_pb2.ErrorInfo(
                reason=error.reason_code,
                domain=ERROR_DOMAIN,
                metadata={key: _clip(value) for key, value in error.metadata.items()},
            )
        ),
        _packed(error_details_pb2.LocalizedMessage(locale="zh-CN", message=error.reason.message_zh)),
    ]
    violations = _violations(error)
    if violations:
        details.append(_packed(error_details_pb2.BadRequest(field_violations=violations)))
    if error.retry_delay_s is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(round(error.retry_delay_s * 1e9))
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
    code = getattr(code_pb2, error.reason.grpc_code)
    message = _clip(error.message, _MESSAGE_BYTES)
    if len(violations) < len(error.violations):
        message = f"{message} ({len(error.violations)} bad fields, the first {len(violations)} listed)"
    return rpc_status.to_status(status_pb2.Status(code=code, message=message, details=details))
