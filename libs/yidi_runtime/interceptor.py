"""The one server interceptor: who calls, may they, log context, one canonical log line, metrics, audit.

Each call is authenticated (:mod:`yidi_runtime.auth`), held to its caller's quota
(:mod:`yidi_runtime.quotas`), its request checked for undecodable bytes and control
characters (:mod:`yidi_runtime.text_checks`), the principal it acts for found — a neighbour
node's vouch names the original one (:mod:`yidi_runtime.vouches`) — and authorized
(:mod:`yidi_runtime.authz`) before its handler runs; that principal is made available in
:data:`yidi_runtime.identity.current`. Handlers raise :class:`~yidi_core.errors.DomainError`;
this turns it into a status with ``ErrorInfo``/``BadRequest``. Anything unexpected becomes
INTERNAL, logged once with its traceback, and the client never sees internals. Every call of
an audited method (mutating, or reading personal or money data), refused or not, goes to the
audit trail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import structlog
from sqlalchemy.exc import DisconnectionError, OperationalError

from yidi_core.errors import DomainError
from yidi_runtime import identity, text_checks, vouches
from yidi_runtime.auth import Authenticator
from yidi_runtime.authz import Authorizer
from yidi_runtime.identity import CallerRole, Principal, Via
from yidi_runtime.logs import get_logger
from yidi_runtime.metrics import MethodMetrics, ServerMetrics
from yidi_runtime.quotas import Quotas
from yidi_runtime.status import grpc_code, to_status
from yidi_runtime.vouches import Vouches

_KINDS = {
    (False, False): "unary",
    (False, True): "server_stream",
    (True, False): "client_stream",
    (True, True): "bidi_stream",
}
_HANDLER_FACTORIES = {
    "unary": grpc.unary_unary_rpc_method_handler,
    "server_stream": grpc.unary_stream_rpc_method_handler,
    "client_stream": grpc.stream_unary_rpc_method_handler,
    "bidi_stream": grpc.stream_stream_rpc_method_handler,
}
_log = structlog.get_logger()
_INTERNAL = DomainError("INTERNAL")
_UNIMPLEMENTED = DomainError("NOT_IMPLEMENTED")
_DATABASE_UNAVAILABLE = DomainError("DATABASE_UNAVAILABLE")


def rpc_kind(request_streaming: bool, response_streaming: bool) -> str:
    """The ``grpc_type`` label value used by the conventional gRPC metrics."""
    return _KINDS[(request_streaming, response_streaming)]


def request_id_of(message: Any) -> str:
    """The request id a request message carries, at its top or in its stream ``header`` ("" if none)."""
    fields = message.DESCRIPTOR.fields_by_name
    if "request_id" in fields:
        return str(message.request_id)
    if "header" in fields and message.HasField("header"):
        return request_id_of(message.header)
    return ""


def split_method(full_method: str) -> tuple[str, str]:
    """``/yidi.filing.v1.FilingService/GetFiling`` → (``yidi.filing.v1.FilingService``, ``GetFiling``)."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service, method


@dataclass(frozen=True)
class _Method:
    """What the bookkeeping of one method's calls needs, worked out once when its handler is wrapped."""

    kind: str
    service: str
    name: str
    audit: AuditHook | None
    """Where its calls are recorded; None for a method that is not audited."""
    metrics: MethodMetrics
    log_context: dict[str, str]
    """The log fields every line logged in one of its calls carries: the node and the method."""


class _Call:
    """The bookkeeping of one RPC: its log context, status code and reason."""

    def __init__(self, method: _Method) -> None:
        self.method = method
        self.code = grpc.StatusCode.OK
        self.reason = ""
        self.request_id = ""
        self.principal: Principal | None = None
        self.started = time.perf_counter()
        self.cpu_started = time.thread_time()
        method.metrics.started.inc()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**method.log_context)

    def bind_request(self, request: Any) -> None:
        self.request_id = request_id_of(request)
        if self.request_id:
            structlog.contextvars.bind_contextvars(request_id=self.request_id)

    def watch_stream(self, requests: Iterator[Any]) -> Iterator[Any]:
        """Pass a streamed request through, taking the request id from its first message."""
        for index, message in enumerate(requests):
            if index == 0:
                self.bind_request(message)
            text_checks.ensure_sound(message)
            yield message

    def bind_principal(self, principal: Principal, relay: Principal | None = None) -> None:
        self.principal = principal
        if relay is None:
            structlog.contextvars.bind_contextvars(caller=principal.subject)
        else:
            structlog.contextvars.bind_contextvars(caller=principal.subject, relay=relay.subject)

    def fail(self, context: grpc.ServicerContext, error: Exception) -> None:
        """Record why the call failed and abort it with the right status (this raises)."""
        if isinstance(error, DomainError):
            domain_error = error
        elif isinstance(error, NotImplementedError):
            domain_error = _UNIMPLEMENTED
        elif isinstance(error, OperationalError | DisconnectionError):
            # The database went away (a restart, a failover, a lock held too long): a retry of the
            # same request is safe, so the caller must hear UNAVAILABLE, not INTERNAL.
            get_logger().warning("database unavailable", exc_info=error)
            domain_error = _DATABASE_UNAVAILABLE
        elif context.code() not in (None, grpc.StatusCode.OK):
            self.code = context.code()
            raise error
        else:
            get_logger().error("unhandled exception", exc_info=error)
            domain_error = _INTERNAL
        self.code = grpc_code(domain_error)
        self.reason = domain_error.reason_code
        context.abort_with_status(to_status(domain_error))

    def finish(self) -> None:
        seconds = time.perf_counter() - self.started
        self.method.metrics.record(self.code, self.reason, seconds, time.thread_time() - self.cpu_started)
        _log.info(
            "rpc",
            grpc_type=self.method.kind,
            grpc_code=self.code.name,
            reason=self.reason or None,
            duration_ms=round(seconds * 1000, 3),
        )
        structlog.contextvars.clear_contextvars()


class AuditHook(Protocol):
    """Where the interceptor records audited calls (:class:`yidi_runtime.audit.AuditTrail`)."""

    def record(
        self,
        principal: Principal | None,
        service: str,
        method: str,
        request_id: str,
        code: grpc.StatusCode,
        reason: str,
        peer: str = "",
    ) -> None:
        """Append one row; never raises."""


@dataclass(frozen=True)
class Guard:
    """Who is calling and may they: a listener's authenticator and the node's authorizer.

    ``audit`` (optional) receives every call of a method in ``audited``. ``vouches`` (optional)
    reads whom a neighbour node's call acts for; without it a node acts for itself. ``quotas``
    (optional) refuses a caller's calls beyond its rate limit before they are authorized.
    """

    authenticator: Authenticator
    authorizer: Authorizer
    audit: AuditHook | None = None
    audited: frozenset[str] = frozenset()
    vouches: Vouches | None = None
    quotas: Quotas | None = None


class ServerInterceptor(grpc.ServerInterceptor):
    """Wraps every handler of a node's server."""

    def __init__(self, node: str, metrics: ServerMetrics, guard: Guard) -> None:
        self._node = node
        self._metrics = metrics
        self._guard = guard
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}
        """Method → (its handler, that handler wrapped): gRPC asks on every call, the answer never changes."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        built = self._wrapped.get(handler_call_details.method)
        if built is not None and built[0] is handler:
            return built[1]
        wrapped_handler = self._wrap(handler, handler_call_details.method)
        self._wrapped[handler_call_details.method] = (handler, wrapped_handler)
        return wrapped_handler

    def _wrap(self, handler: grpc.RpcMethodHandler, full_method: str) -> grpc.RpcMethodHandler:
        """``handler`` behind admission, metrics, logs and audit (built once per method)."""
        service, method = split_method(full_method)
        kind = rpc_kind(handler.request_streaming, handler.response_streaming)
        behavior = (
            handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
        )
        bookkeeping = _Method(
            kind,
            service,
            method,
            self._guard.audit if full_method in self._guard.audited else None,
            self._metrics.method(kind, service, method),
            {"node": self._node, "grpc_service": service, "grpc_method": method},
        )
        wrapped = (
            self._streaming(behavior, bookkeeping)
            if handler.response_streaming
            else self._single(behavior, bookkeeping, not handler.request_streaming)
        )
        return _HANDLER_FACTORIES[kind](
            wrapped,
            request_deserializer=text_checks.checked(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    def _admit(self, call: _Call, context: grpc.ServicerContext, request: Any) -> None:
        """Authenticate, apply the caller's quota, refuse unsound text, find whom the call acts for,
        authorize (raising DomainError), publish the principal."""
        caller = self._guard.authenticator.principal(context)
        call.bind_principal(caller)
        identity.current.set(caller)
        if self._guard.quotas is not None:
            self._guard.quotas.admit(caller, call.method.service)
        text_checks.ensure_sound(request)
        acting, relay = caller, None
        raw = vouches.arrived_with(context)
        if (
            raw is not None
            and request is not None
            and self._guard.vouches is not None
            and caller.role is CallerRole.NODE
            and caller.via is not Via.LOCAL
        ):
            acting, relayed = self._guard.vouches.acting(raw, request, caller)
            relay = caller if relayed else None
            identity.vouch.set(raw)
            call.bind_principal(acting, relay)
            identity.current.set(acting)
            identity.relay.set(relay)
        self._guard.authorizer.check(caller, call.method.service, call.method.name, request, acting)

    def _close(self, call: _Call, context: grpc.ServicerContext) -> None:
        call.finish()
        if call.method.audit is not None:
            call.method.audit.record(
                call.principal,
                call.method.service,
                call.method.name,
                call.request_id,
                call.code,
                call.reason,
                context.peer(),
            )
        identity.current.set(None)
        identity.relay.set(None)
        identity.vouch.set(None)

    def _single(
        self, behavior: Callable[..., Any], method: _Method, unary_request: bool
    ) -> Callable[[Any, grpc.ServicerContext], Any]:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            call = _Call(method)
            if unary_request:
                call.bind_request(request)
            else:
                request = call.watch_stream(request)
            try:
                self._admit(call, context, request if unary_request else None)
                return behavior(request, context)
            except Exception as error:
                call.fail(context, error)
            finally:
                self._close(call, context)

        return handle

    def _streaming(
        self, behavior: Callable[..., Any], method: _Method
    ) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
        def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            call = _Call(method)
            if method.kind == "server_stream":
                call.bind_request(request)
            try:
                self._admit(call, context, request if method.kind == "server_stream" else None)
                yield from behavior(request, context)
            except Exception as error:
                call.fail(context, error)
            finally:
                self._close(call, context)

        return handle
