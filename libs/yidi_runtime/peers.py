"""Calling another node of the region tree: one channel per peer, a deadline on every call.

A peer's refusal reaches our caller with the same stable reason, message, field violations
and metadata, so a clerk behind a city node reads what the national node decided. A peer
that does not answer in time, or answers without a yidi reason (not running the service,
connection refused), is ``NODE_UNREACHABLE`` naming the peer.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from yidi_core.errors import REASONS, DomainError, FieldViolation
from yidi_runtime.config import Peer, TlsFiles
from yidi_runtime.status import ERROR_DOMAIN

DEFAULT_DEADLINE_S = 5.0
Answer = TypeVar("Answer", bound=Message)
Stub = TypeVar("Stub")

# A random start keeps two processes (two CLI runs in one second) from issuing the same id.
_sequence = itertools.count(secrets.randbelow(10_000))
_sequence_lock = threading.Lock()


def message_id(region: str) -> str:
    """A msgid (codes.md) sent by this node: its region padded to 12, the time, a sequence."""
    with _sequence_lock:
        number = next(_sequence) % 10_000
    return f"{region:0<12}{datetime.now(UTC):%Y%m%d%H%M%S}{number:04d}"


def _yidi_error(error: grpc.RpcError) -> DomainError | None:
    """The peer's own refusal, when its status carries a reason we know."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return None
    info: error_details_pb2.ErrorInfo | None = None
    violations: tuple[FieldViolation, ...] = ()
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = tuple(FieldViolation(v.field, v.description) for v in bad.field_violations)
    if info is None or info.domain != ERROR_DOMAIN or info.reason not in REASONS:
        return None
    return DomainError(info.reason, status.message, violations, dict(info.metadata))


def peer_refusal(error: grpc.RpcError, peer: Peer) -> DomainError:
    """A failed call to ``peer`` as the error our own caller should see."""
    refusal = _yidi_error(error)
    if refusal is not None and refusal.reason_code != "NOT_IMPLEMENTED":
        return refusal
    return DomainError(
        "NODE_UNREACHABLE",
        f"node {peer.region} at {peer.address} did not answer: {error.code().name}",
        metadata={"peer_region": peer.region, "peer_address": peer.address, "grpc_code": error.code().name},
    )


class PeerClient:
    """A lazily opened channel to one peer (mutual TLS when the node has TLS files)."""

    def __init__(self, peer: Peer, tls: TlsFiles | None, deadline_s: float = DEFAULT_DEADLINE_S) -> None:
        self.peer = peer
        self._tls = tls
        self._deadline_s = deadline_s
        self._channel: grpc.Channel | None = None
        self._lock = threading.Lock()

    def _opened(self) -> grpc.Channel:
        with self._lock:
            if self._channel is None:
                if self._tls is None:
                    self._channel = grpc.insecure_channel(self.peer.address)
                else:
                    credentials = grpc.ssl_channel_credentials(
                        root_certificates=self._tls.ca.read_bytes(),
                        private_key=self._tls.key.read_bytes(),
                        certificate_chain=self._tls.cert.read_bytes(),
                    )
                    self._channel = grpc.secure_channel(self.peer.address, credentials)
            return self._channel

    def stub(self, stub_type: Callable[[grpc.Channel], Stub]) -> Stub:
        """A generated stub on the peer's channel."""
        return stub_type(self._opened())

    def call(
        self, method: Callable[..., Answer], request: Message, *, deadline_s: float | None = None
    ) -> Answer:
        """``method(request)`` with a deadline; a failure raised as :func:`peer_refusal`."""
        try:
            return method(request, timeout=deadline_s or self._deadline_s)
        except grpc.RpcError as error:
            raise peer_refusal(error, self.peer) from None

    def close(self) -> None:
        """Close the channel (it reopens on the next call)."""
        with self._lock:
            if self._channel is not None:
                self._channel.close()
                self._channel = None
