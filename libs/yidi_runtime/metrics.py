"""Prometheus metrics with the conventional gRPC server families, so stock dashboards work.

Each node has its own registry (a federation can run several nodes in one process) and
serves it over HTTP on its metrics port.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from threading import Thread
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

Metric = TypeVar("Metric")

_SHARED: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Any]] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def shared_metric(
    registry: CollectorRegistry, name: str, make: Callable[[CollectorRegistry], Metric]
) -> Metric:
    """The node's one ``name`` metric, made on first use: several services of a node share a registry,
    and Prometheus refuses a second metric of the same name on it."""
    with _SHARED_LOCK:
        metrics = _SHARED.setdefault(registry, {})
        if name not in metrics:
            metrics[name] = make(registry)
        return metrics[name]  # type: ignore[no-any-return]


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServerMetrics:
    """The gRPC server families plus node identity and per-service health."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        method_labels = ("grpc_type", "grpc_service", "grpc_method")
        self.started = Counter(
            "grpc_server_started_total",
            "Total number of RPCs started on the server.",
            method_labels,
            registry=self.registry,
        )
        self.handled = Counter(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            (*method_labels, "grpc_code"),
            registry=self.registry,
        )
        self.handling_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level handled.",
            method_labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.handling_cpu = Counter(
            "yidi_rpc_cpu_seconds",
            "CPU time the handler's thread spent on RPCs (in-process calls to this node's own "
            "services included in their caller's); gRPC's own threads are not counted.",
            ("grpc_service", "grpc_method"),
            registry=self.registry,
        )
        self.failures = Counter(
            "yidi_refusals_total",
            "RPCs refused with a stable failure reason (google.rpc.ErrorInfo.reason).",
            ("grpc_service", "grpc_method", "reason"),
            registry=self.registry,
        )
        self.build_info = Gauge(
            "yidi_node_info",
            "Constant 1, labelled with this node's identity.",
            ("node", "role", "region", "version"),
            registry=self.registry,
        )
        self.service_up = Gauge(
            "yidi_service_serving",
            "1 when the service reports SERVING on grpc.health.v1, else 0.",
            ("grpc_service",),
            registry=self.registry,
        )

    def initialize(self, grpc_type: str, service: str, method: str) -> None:
        """Expose zeroed series for a method before its first call (as go-grpc-prometheus does)."""
        self.method(grpc_type, service, method)

    def method(self, grpc_type: str, service: str, method: str) -> MethodMetrics:
        """One method's series (made now, at zero), for the interceptor to keep."""
        return MethodMetrics(self, grpc_type, service, method)


class MethodMetrics:
    """One method's series, the children every call touches looked up once (``labels()`` hashes and
    locks each time); a call that fails finds its code's and reason's series by label."""

    def __init__(self, metrics: ServerMetrics, grpc_type: str, service: str, method: str) -> None:
        self._metrics = metrics
        self._labels = (grpc_type, service, method)
        self.started = metrics.started.labels(grpc_type, service, method)
        self._ok = metrics.handled.labels(grpc_type, service, method, grpc.StatusCode.OK.name)
        self._seconds = metrics.handling_seconds.labels(grpc_type, service, method)
        self._cpu = metrics.handling_cpu.labels(service, method)

    def record(self, code: grpc.StatusCode, reason: str, seconds: float, cpu_seconds: float) -> None:
        """Count a completed call (and its refusal ``reason``, if any); observe its latency and the CPU
        its handler's thread spent."""
        if code is grpc.StatusCode.OK:
            self._ok.inc()
        else:
            self._metrics.handled.labels(*self._labels, code.name).inc()
        self._seconds.observe(seconds)
        self._cpu.inc(cpu_seconds)
        if reason:
            _, service, method = self._labels
            self._metrics.failures.labels(service, method, reason).inc()


@dataclass
class MetricsEndpoint:
    """The running ``/metrics`` HTTP server."""

    server: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        return int(self.server.server_port)

    def stop(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> MetricsEndpoint:
    """Serve the registry in a daemon thread; port 0 picks a free one."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsEndpoint(server, thread)
