"""Calling another node of the region tree: one channel per peer, a deadline on every call.

A peer's refusal reaches our caller with the same stable reason, message, field violations
and metadata, so a clerk behind a city node reads what the national node decided. A peer
that does not answer in time, or answers without a yidi reason (not running the service,
connection refused), is ``NODE_UNREACHABLE`` naming the peer.

A client keeps one channel open for the life of the node. By default it tries once; the
router (:mod:`yidi_runtime.routing`) gives each peer's client a retry policy and a circuit
breaker (:mod:`yidi_runtime.resilience`).
"""

from __future__ import annotations

import contextvars
import itertools
import random
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from yidi_core.errors import REASONS, DomainError, FieldViolation
from yidi_runtime import local_calls
from yidi_runtime.config import Peer, TlsFiles
from yidi_runtime.resilience import (
    NO_RETRY,
    CircuitBreaker,
    Monotonic,
    RetryPolicy,
    is_retryable,
    is_transport_failure,
    rate_limit_delay_s,
)
from yidi_runtime.status import ERROR_DOMAIN
from yidi_runtime.vouches import VOUCH_HEADER

DEFAULT_DEADLINE_S = 5.0
CHANNEL_OPTIONS = (
    # A peer that comes back is noticed within seconds, not after gRPC's default 2-minute cap.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5_000),
)
Answer = TypeVar("Answer")  # a response message, or bytes from a raw method
Stub = TypeVar("Stub")
Result = TypeVar("Result")

_ALONGSIDE = ThreadPoolExecutor(max_workers=32, thread_name_prefix="peer-call")


def alongside(call: Callable[[], Result]) -> Future[Result]:
    """Start ``call`` (a call to a peer, say) now in another thread; ``.result()`` gives its answer or raises.

    A handler that needs two independent answers asks for both at once and so waits for the
    slower, not their sum: each call waits on the network with the GIL released. The call
    runs in a copy of the caller's context (its log fields, its principal). The caller
    decides when to read the outcome, so refusals still surface in the order they would
    have one after the other.
    """
    return _ALONGSIDE.submit(contextvars.copy_context().run, call)


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
    retry_delay_s: float | None = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = tuple(FieldViolation(v.field, v.description) for v in bad.field_violations)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_delay_s = retry.retry_delay.ToNanoseconds() / 1e9
    if info is None or info.domain != ERROR_DOMAIN or info.reason not in REASONS:
        return None
    return DomainError(info.reason, status.message, violations, dict(info.metadata), retry_delay_s)


@dataclass(frozen=True)
class RawMethod:
    """A unary method called with encoded bytes, which knows its path (to decode what it is vouched for)."""

    path: str
    send: Callable[..., bytes]

    def __call__(self, request: bytes, **options: Any) -> bytes:
        return self.send(request, **options)


def _decoded(method: Callable[..., Any], request: bytes) -> Message:
    """The message an encoded request of a :class:`RawMethod` is."""
    if not isinstance(method, RawMethod):
        raise TypeError("an encoded request is sent through PeerClient.raw")
    described = descriptor_pool.Default().FindMethodByName(method.path.strip("/").replace("/", "."))
    return message_factory.GetMessageClass(described.input_type).FromString(request)


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


def unreachable_as(refusal: DomainError, reason: str) -> DomainError:
    """``refusal`` with ``NODE_UNREACHABLE`` renamed to the caller's own reason (e.g. INSURED_REGION_UNREACHABLE)."""
    if refusal.reason_code == "NODE_UNREACHABLE" and reason != "NODE_UNREACHABLE":
        return replace(refusal, reason_code=reason)
    return refusal


class PeerClient:
    """A persistent, lazily opened channel to one peer (mutual TLS when the node has TLS files).

    ``deadline_s`` bounds a whole call, retries included. ``retry`` repeats a call the peer
    was unavailable for, after a jittered pause, and one the peer refused ``RATE_LIMITED``
    once its retry delay has passed as well; ``breaker`` (optional) refuses calls at
    once while the peer is known to be down. ``clock``, ``sleep`` and ``jitter`` are for tests.
    """

    def __init__(
        self,
        peer: Peer,
        tls: TlsFiles | None,
        deadline_s: float = DEFAULT_DEADLINE_S,
        *,
        retry: RetryPolicy = NO_RETRY,
        breaker: CircuitBreaker | None = None,
        clock: Monotonic = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        voucher: Callable[[Message], bytes] | None = None,
    ) -> None:
        self.peer = peer
        self.breaker = breaker
        self._voucher = voucher
        self._tls = tls
        self._deadline_s = deadline_s
        self._retry = retry
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._channel: grpc.Channel | None = None
        self._stubs: dict[Callable[[grpc.Channel], Any], Any] = {}
        self._lock = threading.Lock()

    def _opened(self) -> grpc.Channel:
        with self._lock:
            if self._channel is None:
                if self.peer.address.startswith(local_calls.SCHEME):
                    self._channel = local_calls.LocalChannel(self.peer.address)
                elif self._tls is None:
                    self._channel = grpc.insecure_channel(self.peer.address, options=CHANNEL_OPTIONS)
                else:
                    credentials = grpc.ssl_channel_credentials(
                        root_certificates=self._tls.ca.read_bytes(),
                        private_key=self._tls.key.read_bytes(),
                        certificate_chain=self._tls.cert.read_bytes(),
                    )
                    self._channel = grpc.secure_channel(
                        self.peer.address, credentials, options=CHANNEL_OPTIONS
                    )
            return self._channel

    def stub(self, stub_type: Callable[[grpc.Channel], Stub]) -> Stub:
        """A generated stub on the peer's channel, made once per channel (a stub makes a callable per method)."""
        channel = self._opened()
        with self._lock:
            stub = self._stubs.get(stub_type)
            if stub is None or self._channel is not channel:
                stub = self._stubs[stub_type] = stub_type(channel)
            return stub

    def raw(self, method: str) -> RawMethod:
        """A unary method by full name (``/pkg.Service/Method``) taking and returning encoded bytes."""
        return RawMethod(method, self._opened().unary_unary(method))

    def _circuit_open(self) -> DomainError:
        assert self.breaker is not None
        wait_s = self.breaker.retry_after_s()
        return DomainError(
            "NODE_UNREACHABLE",
            f"node {self.peer.region} at {self.peer.address} is not answering; "
            f"not trying again for {wait_s:.1f} s",
            metadata={
                "peer_region": self.peer.region,
                "peer_address": self.peer.address,
                "circuit": "open",
                "retry_after_s": f"{wait_s:.1f}",
            },
        )

    def call(
        self,
        method: Callable[..., Answer],
        request: Message | bytes,
        *,
        deadline_s: float | None = None,
        unreachable: str = "NODE_UNREACHABLE",
        vouch: bytes | None = None,
        retry: RetryPolicy | None = None,
    ) -> Answer:
        """``method(request)`` within the deadline, retried per policy; a failure raised as :func:`peer_refusal`.

        ``unreachable`` is the reason the caller's own client should see when the peer, or
        a node behind it, does not answer. The call carries ``vouch`` (:mod:`yidi_runtime.vouches`),
        by default this node's own, when the client has a voucher. ``retry`` replaces the
        client's policy for this call (the breaker is the peer's all the same).
        """
        if vouch is None and self._voucher is not None:
            vouch = self._voucher(request if isinstance(request, Message) else _decoded(method, request))
        metadata = () if vouch is None else ((VOUCH_HEADER, vouch),)
        try:
            return self._call(
                method,
                request,
                deadline_s or self._deadline_s,
                metadata,
                retry if retry is not None else self._retry,
            )
        except DomainError as refusal:
            raise unreachable_as(refusal, unreachable) from None

    def _call(
        self,
        method: Callable[..., Answer],
        request: Message | bytes,
        budget_s: float,
        metadata: tuple[tuple[str, bytes], ...],
        retry: RetryPolicy,
    ) -> Answer:
        started = self._clock()
        failures = 0
        while True:
            if self.breaker is not None and not self.breaker.allow():
                raise self._circuit_open()
            attempt_started = self.breaker.now() if self.breaker is not None else None
            try:
                answer = method(
                    request, timeout=max(budget_s - (self._clock() - started), 0.001), metadata=metadata
                )
            except grpc.RpcError as error:
                code, refusal = error.code(), _yidi_error(error)
                if self.breaker is not None:
                    if is_transport_failure(code, refusal is not None):
                        self.breaker.record_failure(attempt_started)
                    else:
                        self.breaker.record_success()
                failures += 1
                pause_s = self._pause_s(retry, code, refusal, failures)
                if pause_s is not None and self._clock() - started + pause_s < budget_s:
                    self._sleep(pause_s)
                    continue
                raise peer_refusal(error, self.peer) from None
            except BaseException:
                if self.breaker is not None:
                    self.breaker.abandon()
                raise
            if self.breaker is not None:
                self.breaker.record_success()
            return answer

    def _pause_s(
        self, retry: RetryPolicy, code: grpc.StatusCode, refusal: DomainError | None, failures: int
    ) -> float | None:
        """How long to wait before trying again after ``failures`` failed tries under ``retry``; None: do not.

        The jittered backoff, and for the peer's rate limit at least the delay it asked for
        (the jitter keeps this node's waiting calls from all coming back at once).
        """
        if failures >= retry.attempts:
            return None
        asked_s = rate_limit_delay_s(refusal, self.peer.region)
        if asked_s is None and not is_retryable(code, refusal is not None):
            return None
        return max(asked_s or 0.0, retry.backoff.delay_s(failures, self._jitter()))

    def close(self) -> None:
        """Close the channel (it reopens on the next call)."""
        with self._lock:
            if self._channel is not None:
                self._channel.close()
                self._channel = None
                self._stubs.clear()
