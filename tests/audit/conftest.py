"""An audit trail on a fresh database (SQLite and PostgreSQL), its clock, and the service over it.

The node's wiring of the trail is not under test here: the service runs on a gRPC server
built in the test, whose only interceptor turns refusals into statuses as a node's does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from audit_support import NODE, REGION, Clock
from prometheus_client import CollectorRegistry

from yidi.audit.v1 import audit_service_pb2_grpc as api_grpc
from yidi_core.errors import DomainError
from yidi_harness.federation import free_port
from yidi_runtime.audit import SERVICE, VERSIONS, AuditTrail, Base
from yidi_runtime.audit_service import register_audit_service
from yidi_runtime.db import Database
from yidi_runtime.migrate import upgrade
from yidi_runtime.status import to_status


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def audit_database(tmp_path: Path, empty_database_url: str | None) -> Iterator[Database]:
    """The trail's own database, migrated from empty to head: SQLite in the test's folder, or PostgreSQL."""
    database = Database.open(SERVICE, empty_database_url or f"sqlite:///{tmp_path / 'audit.db'}")
    upgrade(database, VERSIONS, Base.metadata)
    yield database
    database.dispose()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def trail(audit_database: Database, registry: CollectorRegistry, clock: Clock) -> AuditTrail:
    return AuditTrail(audit_database, NODE, REGION, registry=registry, clock=clock)


class Refusals(grpc.ServerInterceptor):
    """A node's error mapping for unary methods: a DomainError ends the call with its rich status."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        behavior = handler.unary_unary

        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return behavior(request, context)
            except DomainError as error:
                context.abort_with_status(to_status(error))

        return grpc.unary_unary_rpc_method_handler(
            handle,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


@pytest.fixture
def audit_address(trail: AuditTrail) -> Iterator[str]:
    """``host:port`` of a gRPC server answering AuditService from :func:`trail`."""
    server = grpc.server(ThreadPoolExecutor(max_workers=4), interceptors=[Refusals()])
    register_audit_service(server, trail)
    address = f"127.0.0.1:{free_port()}"
    server.add_insecure_port(address)
    server.start()
    yield address
    server.stop(0).wait()


@pytest.fixture
def stub(audit_address: str) -> Iterator[api_grpc.AuditServiceStub]:
    with grpc.insecure_channel(audit_address) as channel:
        yield api_grpc.AuditServiceStub(channel)
