"""Starting and stopping one node: databases, migrations, servicers, health, reflection, metrics.

``create_server`` is the single factory used by ``yidi serve``, the demo and the tests
(port 0 picks a free port). A service reports SERVING on ``grpc.health.v1`` only while its
database answers and, for a service that needs the parent, while the parent answers
(:mod:`yidi_runtime.parent_watch`); shutdown flips every status to NOT_SERVING before
draining calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from typing import cast

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from yidi_runtime import audit_service, local_calls, token_service
from yidi_runtime.audit import PERSONAL_DATA_READS, AuditTrail, mutating_methods
from yidi_runtime.auth import Authenticator
from yidi_runtime.authz import Access, Authorizer
from yidi_runtime.config import NodeSettings, check_transport
from yidi_runtime.db import Database, service_url
from yidi_runtime.integrity import NodeIntegrity
from yidi_runtime.interceptor import Guard, ServerInterceptor, rpc_kind, split_method
from yidi_runtime.local_calls import LocalServer
from yidi_runtime.logs import get_logger
from yidi_runtime.metrics import MetricsEndpoint, ServerMetrics, serve_metrics
from yidi_runtime.migrate import ensure_current, upgrade
from yidi_runtime.parent_watch import ParentGauges, ParentWatch
from yidi_runtime.quotas import Quotas
from yidi_runtime.resilience import Monotonic
from yidi_runtime.routing import Router
from yidi_runtime.service import BackgroundWorker, ServiceContext, ServiceGroup
from yidi_runtime.tokens import TokenVerifier
from yidi_runtime.vouches import Vouches


def _package_version() -> str:
    try:
        return version("yidi")
    except PackageNotFoundError:
        return "0+unknown"


@dataclass
class _HealthedService:
    group: ServiceGroup
    database: Database
    grpc_names: Sequence[str]
    workers: Sequence[BackgroundWorker] = ()
    health_checks: Sequence[Callable[[], bool]] = ()
    parent_dependent: frozenset[str] = frozenset()

    def healthy(self) -> bool:
        """The database answers and every check the service reported holds."""
        if not self.database.ping():
            return False
        for check in self.health_checks:
            try:
                if not check():
                    return False
            except Exception:  # a check that cannot run says the service is not fine
                get_logger(service=self.group.name).warning("health check failed", exc_info=True)
                return False
        return True


@dataclass
class Node:
    """A running node. ``stop()`` is safe to call more than once."""

    settings: NodeSettings
    server: grpc.Server
    port: int
    metrics: ServerMetrics
    metrics_endpoint: MetricsEndpoint | None
    health: health.HealthServicer
    services: list[_HealthedService]
    router: Router
    """The node's one router, shared by its services; closed once their workers stopped."""
    stateless: tuple[str, ...] = ()
    """gRPC services without a database (the token service): SERVING while the node runs."""
    parent_watch: ParentWatch | None = None
    """Probes the parent (a node with one): its services that need the parent follow it."""
    _stopping: threading.Event = field(default_factory=threading.Event)
    _watcher: threading.Thread | None = None

    @property
    def address(self) -> str:
        """``host:port`` that clients dial."""
        return f"{self.settings.host}:{self.port}"

    @property
    def service_names(self) -> list[str]:
        """Fully qualified names of the gRPC services this node serves."""
        return [*(name for service in self.services for name in service.grpc_names), *self.stateless]

    def check_health(self) -> None:
        """Set each service's health from whether its database answers now and, for one that needs
        the parent, whether the parent does; the node's overall status follows the databases alone."""
        everything_up = True
        parent_ok = self.parent_watch is None or self.parent_watch.ok()
        for service in self.services:
            up = service.healthy()
            everything_up &= up
            for name in service.grpc_names:
                serving = up and (parent_ok or name not in service.parent_dependent)
                self.health.set(
                    name,
                    health_pb2.HealthCheckResponse.SERVING
                    if serving
                    else health_pb2.HealthCheckResponse.NOT_SERVING,
                )
                self.metrics.service_up.labels(name).set(1 if serving else 0)
        for name in self.stateless:
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
            self.metrics.service_up.labels(name).set(1)
        overall = (
            health_pb2.HealthCheckResponse.SERVING
            if everything_up
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        self.health.set("", overall)

    def _watch(self) -> None:
        while not self._stopping.wait(self.settings.health_interval_s):
            self.check_health()

    def start_watching(self) -> None:
        """Re-check health periodically in a daemon thread."""
        self._watcher = threading.Thread(
            target=self._watch, name=f"health-{self.settings.label}", daemon=True
        )
        self._watcher.start()

    def start_workers(self) -> None:
        """Start every service's background workers and the parent's probe (the node serves calls by now)."""
        for service in self.services:
            for worker in service.workers:
                worker.start()
        if self.parent_watch is not None:
            self.parent_watch.start()

    def stop(self, grace: float | None = 5.0) -> None:
        """Refuse new calls, drain running ones for ``grace`` seconds, then release everything."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        if self.settings.internal_address:
            local_calls.unregister(self.settings.internal_address)
        for service in self.services:
            for worker in service.workers:
                worker.stop(timeout_s=5.0)
        if self.parent_watch is not None:
            self.parent_watch.stop()
        self.router.close()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.stop()
        for service in self.services:
            service.database.dispose()
        get_logger(node=self.settings.label).info("node stopped")

    def wait(self) -> None:
        """Block until the server terminates."""
        self.server.wait_for_termination()


def _open_databases(settings: NodeSettings, groups: Sequence[ServiceGroup]) -> dict[str, Database]:
    databases = {group.name: Database.open(group.name, service_url(settings, group.name)) for group in groups}
    for group in groups:
        if settings.migrate_on_start:
            upgrade(databases[group.name], group.versions, group.metadata)
        else:
            ensure_current(databases[group.name], group.versions, group.metadata)
    return databases


def _bind(server: grpc.Server, settings: NodeSettings) -> int:
    """Bind the public port: mutual TLS, or plaintext on a node explicitly run insecure.

    With TLS files and a token port, the same server also listens there with TLS that asks
    for no client certificate, for HIS platforms that authenticate with a token instead.
    """
    target = f"{settings.host}:{settings.grpc_port}"
    if settings.tls is None:
        get_logger(node=settings.label).warning(
            "INSECURE: no TLS and no authentication (tls.insecure = true); use only for local development",
            address=target,
        )
        return server.add_insecure_port(target)
    key_pair = [(settings.tls.key.read_bytes(), settings.tls.cert.read_bytes())]
    ca = settings.tls.ca.read_bytes()
    if settings.token_port is not None:
        server.add_secure_port(
            f"{settings.host}:{settings.token_port}",
            grpc.ssl_server_credentials(key_pair, root_certificates=ca, require_client_auth=False),
        )
    return server.add_secure_port(
        target, grpc.ssl_server_credentials(key_pair, root_certificates=ca, require_client_auth=True)
    )


def _grpc_server(settings: NodeSettings, metrics: ServerMetrics, guard: Guard) -> grpc.Server:
    return grpc.server(
        ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix=f"grpc-{settings.label}"),
        interceptors=[ServerInterceptor(settings.label, metrics, guard)],
        options=[("grpc.so_reuseport", 0)],
    )


class _BothServers:
    """What a service registers its handlers on: the public listener and the in-process one alike."""

    def __init__(self, *servers: grpc.Server | LocalServer) -> None:
        self._servers = servers

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        """Add the handlers to every listener."""
        for server in self._servers:
            server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(
        self, service_name: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        """Add the pre-registered method handlers to every listener."""
        for server in self._servers:
            server.add_registered_method_handlers(service_name, handlers)


def _initialize_method_metrics(metrics: ServerMetrics, names: Sequence[str]) -> None:
    pool = descriptor_pool.Default()
    for name in names:
        for method in pool.FindServiceByName(name).methods:
            kind = rpc_kind(method.client_streaming, method.server_streaming)
            metrics.initialize(kind, name, method.name)


def create_server(
    settings: NodeSettings, groups: Sequence[ServiceGroup], *, quota_clock: Monotonic = time.monotonic
) -> Node:
    """Open and migrate the databases, register the services, start serving, report health.

    ``quota_clock`` is the clock the callers' rate limits refill by (tests move it by hand).
    """
    check_transport(settings)
    log = get_logger(node=settings.label)
    metrics = ServerMetrics()
    metrics.build_info.labels(settings.label, settings.role.value, settings.region, _package_version()).set(1)
    databases = _open_databases(settings, [*groups, audit_service.GROUP])
    trail = AuditTrail(
        databases[audit_service.GROUP.name], settings.label, settings.region, registry=metrics.registry
    )
    access: dict[str, Access] = dict(audit_service.GROUP.access) | token_service.ACCESS
    for group in groups:
        access |= group.access
    authorizer = Authorizer(settings, access)
    mutating = mutating_methods({split_method(method)[0] for method in access})
    vouches = Vouches(settings, NodeIntegrity(settings, metrics.registry))
    tokens = TokenVerifier.for_node(settings, metrics.registry)
    quotas = Quotas.from_settings(settings, metrics.registry, quota_clock)
    guard = Guard(
        Authenticator(settings, tokens=tokens),
        authorizer,
        trail,
        mutating | PERSONAL_DATA_READS,
        vouches,
        quotas,
    )
    server = _grpc_server(settings, metrics, guard)
    port = _bind(server, settings)
    # Calls between this node's own services run in process, behind the same interceptor
    # (the caller is this node itself, never rate limited): no socket, no second thread,
    # nothing to wait behind. Their reads are part of a call the public listener recorded
    # already: only changes are audited.
    local_server = LocalServer(
        ServerInterceptor(
            settings.label, metrics, Guard(Authenticator(settings, local=True), authorizer, trail, mutating)
        )
    )
    internal_address = local_calls.register(local_server)
    # Services see the port actually bound (port 0 picks one) and the local address.
    settings = replace(settings, grpc_port=port, internal_address=internal_address)
    both = _BothServers(server, local_server)
    router = Router(settings)
    services = []
    for group in groups:
        context = ServiceContext(
            settings=settings,
            database=databases[group.name],
            router=router,
            metrics_registry=metrics.registry,
        )
        served = tuple(group.register(cast(grpc.Server, both), context))
        services.append(
            _HealthedService(
                group,
                databases[group.name],
                served,
                tuple(context.workers),
                tuple(context.health_checks),
                frozenset(context.parent_dependent),
            )
        )
    audit_name = audit_service.register_audit_service(server, trail)
    services.append(
        _HealthedService(audit_service.GROUP, databases[audit_service.GROUP.name], (audit_name,), (trail,))
    )
    stateless = (token_service.register_token_service(server, settings, tokens),)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [*(name for service in services for name in service.grpc_names), *stateless]
    for name in ["", *names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    _initialize_method_metrics(metrics, names)
    server.start()
    endpoint = (
        serve_metrics(metrics.registry, settings.host, settings.metrics_port)
        if settings.metrics_port is not None
        else None
    )
    node = Node(settings, server, port, metrics, endpoint, health_servicer, services, router, stateless)
    gauges = ParentGauges(metrics.registry)
    if settings.parent is not None:
        node.parent_watch = ParentWatch(settings, router.client(settings.parent), gauges, node.check_health)
    node.check_health()
    node.start_watching()
    node.start_workers()
    log.info(
        "node started",
        role=settings.role.value,
        region=settings.region,
        address=node.address,
        metrics_port=endpoint.port if endpoint else None,
        services=names,
    )
    return node
