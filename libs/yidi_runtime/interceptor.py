"""The one server interceptor: log context, one canonical log line, metrics, and error mapping.

Handlers raise :class:`~yidi_core.errors.DomainError`; this turns it into a status with
``ErrorInfo``/``BadRequest``. Anything unexpected becomes INTERNAL, logged once with its
traceback, and the client never sees internals.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import structlog

from yidi_core.errors import DomainError
from yidi_runtime.logs import get_logger
from yidi_runtime.metrics import ServerMetrics
from yidi_runtime.status import grpc_code, to_status

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
_INTERNAL = DomainError("INTERNAL")
_UNIMPLEMENTED = DomainError("NOT_IMPLEMENTED")


def rpc_kind(request_streaming: bool, response_streaming: bool) -> str:
    """The ``grpc_type`` label value used by the conventional gRPC metrics."""
    return _KINDS[(request_streaming, response_streaming)]


def split_method(full_method: str) -> tuple[str, str]:
    """``/yidi.filing.v1.FilingService/GetFiling`` → (``yidi.filing.v1.FilingService``, ``GetFiling``)."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service, method


class _Call:
    """The bookkeeping of one RPC: its log context, status code and reason."""

    def __init__(self, node: str, kind: str, service: str, method: str) -> None:
        self.kind, self.service, self.method = kind, service, method
        self.code = grpc.StatusCode.OK
        self.reason = ""
        self.started = time.perf_counter()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(node=node, grpc_service=service, grpc_method=method)

    def bind_request(self, request: Any) -> None:
        request_id = getattr(request, "request_id", "")
        if request_id:
            structlog.contextvars.bind_contextvars(request_id=request_id)

    def fail(self, context: grpc.ServicerContext, error: Exception) -> None:
        """Record why the call failed and abort it with the right status (this raises)."""
        if isinstance(error, DomainError):
            domain_error = error
        elif isinstance(error, NotImplementedError):
            domain_error = _UNIMPLEMENTED
        elif context.code() not in (None, grpc.StatusCode.OK):
            self.code = context.code()
            raise error
        else:
            get_logger().error("unhandled exception", exc_info=error)
            domain_error = _INTERNAL
        self.code = grpc_code(domain_error)
        self.reason = domain_error.reason_code
        context.abort_with_status(to_status(domain_error))

    def finish(self, metrics: ServerMetrics) -> None:
        seconds = time.perf_counter() - self.started
        metrics.record(self.kind, self.service, self.method, self.code, seconds)
        if self.reason:
            metrics.failures.labels(self.service, self.method, self.reason).inc()
        get_logger().info(
            "rpc",
            grpc_type=self.kind,
            grpc_code=self.code.name,
            reason=self.reason or None,
            duration_ms=round(seconds * 1000, 3),
        )
        structlog.contextvars.clear_contextvars()


class ServerInterceptor(grpc.ServerInterceptor):
    """Wraps every handler of a node's server."""

    def __init__(self, node: str, metrics: ServerMetrics) -> None:
        self._node = node
        self._metrics = metrics

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        service, method = split_method(handler_call_details.method)
        kind = rpc_kind(handler.request_streaming, handler.response_streaming)
        behavior = (
            handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
        )
        wrapped = (
            self._streaming(behavior, kind, service, method)
            if handler.response_streaming
            else self._single(behavior, kind, service, method, not handler.request_streaming)
        )
        return _HANDLER_FACTORIES[kind](
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _single(
        self, behavior: Callable[..., Any], kind: str, service: str, method: str, unary_request: bool
    ) -> Callable[[Any, grpc.ServicerContext], Any]:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            call = _Call(self._node, kind, service, method)
            self._metrics.started.labels(kind, service, method).inc()
            if unary_request:
                call.bind_request(request)
            try:
                return behavior(request, context)
            except Exception as error:
                call.fail(context, error)
            finally:
                call.finish(self._metrics)

        return handle

    def _streaming(
        self, behavior: Callable[..., Any], kind: str, service: str, method: str
    ) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
        def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            call = _Call(self._node, kind, service, method)
            self._metrics.started.labels(kind, service, method).inc()
            if kind == "server_stream":
                call.bind_request(request)
            try:
                yield from behavior(request, context)
            except Exception as error:
                call.fail(context, error)
            finally:
                call.finish(self._metrics)

        return handle
