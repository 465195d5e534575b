"""Calls between a node's own services, in process: the same RPCs, handlers and interceptor, no transport.

A settlement at the insured node asks its own filing and policy services (DESIGN.md
principle 2: a service's data only through its RPCs). Over a socket each such call paid a
client, HTTP/2 framing, a server thread and a second log context: about as much CPU as the
lookup itself. Here a node's services register their handlers on a :class:`LocalServer` as
well as on the public server, and a :class:`LocalChannel` to it is a ``grpc.Channel`` whose
calls run the handler on the caller's thread, behind the same interceptor (the caller is
this node: ``Via.LOCAL``), with the messages encoded and decoded as on the wire so neither
side shares a mutable object with the other. Errors arrive as a ``grpc.RpcError`` with the
status, details and trailing metadata the handler set, so clients cannot tell the
difference. A handler runs in a fresh context, as it would on a server thread: the
caller's log fields and principal are untouched.

Nodes register their local server under an address ``local:<id>`` (:func:`register`), which
:class:`~yidi_runtime.peers.PeerClient` opens as a :class:`LocalChannel`.
"""

from __future__ import annotations

import contextvars
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import grpc

SCHEME = "local:"
_servers: dict[str, LocalServer] = {}
_servers_lock = threading.Lock()
_numbers = itertools.count(1)


class _Details(NamedTuple):
    """The ``grpc.HandlerCallDetails`` of a local call."""

    method: str
    invocation_metadata: tuple[tuple[str, str | bytes], ...]


class LocalRpcError(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """A local call's failure, read like a remote one (``code``, ``details``, ``trailing_metadata``)."""

    def __init__(
        self, code: grpc.StatusCode, details: str, trailing: Sequence[tuple[str, str | bytes]] = ()
    ) -> None:
        super().__init__(f"{code.name}: {details}")
        self._code, self._details, self._trailing = code, details, tuple(trailing)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._trailing

    def initial_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return ()

    def debug_error_string(self) -> str:
        return f"local call failed: {self._code.name}: {self._details}"

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float | None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False


class _Aborted(Exception):
    """Raised by ``abort``: the handler ends here, as grpc's own abort ends it."""


class _LocalContext(grpc.ServicerContext):  # type: ignore[misc]
    """The servicer context of one local call."""

    def __init__(self, metadata: Sequence[tuple[str, str | bytes]], deadline: float | None) -> None:
        self._metadata = tuple(metadata)
        self._deadline = deadline
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._trailing: tuple[tuple[str, str | bytes], ...] = ()
        self._callbacks: list[Callable[[], None]] = []

    def failure(self, fallback: str) -> LocalRpcError:
        code = self._code if self._code not in (None, grpc.StatusCode.OK) else grpc.StatusCode.UNKNOWN
        assert code is not None
        return LocalRpcError(code, self._details or fallback, self._trailing)

    def finished(self) -> None:
        for callback in self._callbacks:
            callback()

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._metadata

    def peer(self) -> str:
        return "local"

    def peer_identities(self) -> None:
        return None

    def peer_identity_key(self) -> None:
        return None

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details
        raise _Aborted()

    def abort_with_status(self, status: grpc.Status) -> None:
        self._trailing = tuple(status.trailing_metadata or ())
        self.abort(status.code, status.details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def set_trailing_metadata(self, trailing_metadata: Sequence[tuple[str, str | bytes]]) -> None:
        self._trailing = tuple(trailing_metadata)

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._trailing

    def send_initial_metadata(self, initial_metadata: Sequence[tuple[str, str | bytes]]) -> None:
        """Nothing to send: a local call has no headers frame."""

    def set_compression(self, compression: grpc.Compression) -> None:
        """Nothing to compress in process."""

    def disable_next_message_compression(self) -> None:
        """Nothing to compress in process."""

    def is_active(self) -> bool:
        return self._deadline is None or time.monotonic() < self._deadline

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(self._deadline - time.monotonic(), 0.0)

    def cancel(self) -> None:
        """A local call cannot be cancelled from the server side."""

    def add_callback(self, callback: Callable[[], None]) -> bool:
        self._callbacks.append(callback)
        return True


def _identity(value: Any) -> Any:
    return value


class LocalServer:
    """Where a node's services register their handlers for calls from its own services.

    It takes registrations like a ``grpc.Server`` (generated ``add_*_to_server`` functions
    work on it) and runs each call through ``interceptor``, as a server would.
    """

    def __init__(self, interceptor: grpc.ServerInterceptor) -> None:
        self._interceptor = interceptor
        self._registered: dict[str, grpc.RpcMethodHandler] = {}
        self._generic: list[grpc.GenericRpcHandler] = []

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        """Handlers found by method name at call time."""
        self._generic.extend(handlers)

    def add_registered_method_handlers(
        self, service_name: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        """Handlers of one service by method name."""
        for method, handler in handlers.items():
            self._registered[f"/{service_name}/{method}"] = handler

    def _found(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = self._registered.get(details.method)
        for generic in self._generic:
            if handler is not None:
                break
            handler = generic.service(details)
        return handler

    def handler(self, method: str, metadata: Sequence[tuple[str, str | bytes]]) -> grpc.RpcMethodHandler:
        """The intercepted handler of ``method``; UNIMPLEMENTED when no service here has it."""
        handler = self._interceptor.intercept_service(self._found, _Details(method, tuple(metadata)))
        if handler is None:
            raise LocalRpcError(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        return handler


def _server_at(address: str) -> LocalServer:
    with _servers_lock:
        server = _servers.get(address)
    if server is None:
        raise LocalRpcError(grpc.StatusCode.UNAVAILABLE, f"{address}: the node has stopped")
    return server


def _run(
    address: str,
    method: str,
    serializer: Callable[[Any], bytes],
    timeout: float | None,
    metadata: Sequence[tuple[str, str | bytes]] | None,
    request: Any,
) -> bytes:
    """One call: the request encoded and decoded as on the wire, the handler run in a fresh context."""
    handler = _server_at(address).handler(method, metadata or ())
    inbound = (handler.request_deserializer or _identity)(serializer(request))
    context = _LocalContext(metadata or (), None if timeout is None else time.monotonic() + timeout)
    try:
        answer = contextvars.Context().run(handler.unary_unary, inbound, context)
    except _Aborted:
        raise context.failure("aborted") from None
    except Exception as error:
        raise context.failure(f"Exception calling application: {error}") from None
    finally:
        context.finished()
    if not context.is_active():
        raise LocalRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    if context.code() not in (None, grpc.StatusCode.OK):
        raise context.failure("")
    encoded: bytes = (handler.response_serializer or _identity)(answer)
    return encoded


class _UnaryUnary:
    """A unary method of a :class:`LocalChannel`."""

    def __init__(self, address: str, method: str, serializer: Any, deserializer: Any) -> None:
        self._address, self._method = address, method
        self._serializer = serializer or _identity
        self._deserializer = deserializer or _identity

    def __call__(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str | bytes]] | None = None,
        **_options: Any,
    ) -> Any:
        encoded = _run(self._address, self._method, self._serializer, timeout, metadata, request)
        return self._deserializer(encoded)


class _Unsupported:
    """A streaming method: never called between a node's own services, refused if it ever is."""

    def __init__(self, method: str) -> None:
        self._method = method

    def __call__(self, *_args: Any, **_kwargs: Any) -> Any:
        raise LocalRpcError(
            grpc.StatusCode.UNIMPLEMENTED, f"{self._method}: streaming is not served in process"
        )


class LocalChannel(grpc.Channel):  # type: ignore[misc]
    """A channel to the :class:`LocalServer` at ``address``, for generated stubs and raw methods.

    Each call finds the server anew, so a channel kept after its node stopped fails UNAVAILABLE.
    """

    def __init__(self, address: str) -> None:
        self._address = address

    def unary_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool = False,
    ) -> _UnaryUnary:
        return _UnaryUnary(self._address, method, request_serializer, response_deserializer)

    def unary_stream(self, method: str, *_args: Any, **_kwargs: Any) -> _Unsupported:
        return _Unsupported(method)

    def stream_unary(self, method: str, *_args: Any, **_kwargs: Any) -> _Unsupported:
        return _Unsupported(method)

    def stream_stream(self, method: str, *_args: Any, **_kwargs: Any) -> _Unsupported:
        return _Unsupported(method)

    def subscribe(
        self, callback: Callable[[grpc.ChannelConnectivity], None], try_to_connect: bool = False
    ) -> None:
        callback(grpc.ChannelConnectivity.READY)

    def unsubscribe(self, callback: Callable[[grpc.ChannelConnectivity], None]) -> None:
        """Nothing to stop watching: a local channel is always ready."""

    def close(self) -> None:
        """Nothing to close: the server outlives its channels."""

    def __enter__(self) -> LocalChannel:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def register(server: LocalServer) -> str:
    """Make ``server`` reachable at a new ``local:`` address (for :class:`~yidi_runtime.peers.PeerClient`)."""
    address = f"{SCHEME}{next(_numbers)}"
    with _servers_lock:
        _servers[address] = server
    return address


def unregister(address: str) -> None:
    """Forget ``address``: the node stopped; calls to it now fail UNAVAILABLE."""
    with _servers_lock:
        _servers.pop(address, None)
