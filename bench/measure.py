"""What every benchmark shares: the node under test, the machine line, percentiles, a bare gRPC baseline.

The baseline is a unary call to a server that does nothing but echo bytes on loopback,
measured in the same run as the service figures, so each service latency can be read as a
multiple of what gRPC alone costs on this machine at that moment.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import grpc

from yidi_runtime.config import load_settings
from yidi_runtime.logs import configure_logging
from yidi_runtime.server import Node
from yidi_services.node import start_node

_ECHO = "/yidi.bench.Echo/Echo"
NO_QUOTAS = {"quotas": {"enabled": False}}
"""Configuration for benchmark node processes: one HIS at dozens of windows measures what the nodes
can do, which a production quota (50 calls a second per institution) would cap instead."""


def machine() -> str:
    """The machine the figures were measured on."""
    processor = platform.processor() or platform.machine()
    return f"{processor}, {os.cpu_count()} CPUs, Python {platform.python_version()}; {platform.platform()}"


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """Call count, p50, p95 and p99 of latency samples in milliseconds."""
    ordered = sorted(samples_ms)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * share))], 3)

    return {
        "calls": len(ordered),
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
    }


def timed_concurrently(call: Callable[[int], object], count: int, concurrency: int) -> dict[str, float]:
    """Percentiles and throughput of ``count`` calls issued by ``concurrency`` threads at once."""
    samples: list[float] = []

    def one(index: int) -> None:
        started = time.perf_counter()
        call(index)
        samples.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for outcome in [pool.submit(one, index) for index in range(count)]:
            outcome.result()
    elapsed = time.perf_counter() - started
    return {**percentiles(samples), "concurrency": concurrency, "per_second": round(count / elapsed, 1)}


def timed(call: Callable[[int], object], count: int) -> dict[str, float]:
    """Percentiles of ``count`` sequential calls (concurrency 1); ``call`` gets the call's index."""
    samples = []
    for index in range(count):
        started = time.perf_counter()
        call(index)
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


def bare_grpc_baseline(count: int = 2000) -> dict[str, float]:
    """Percentiles of an echo call to a do-nothing gRPC server on loopback, at concurrency 1."""
    handler = grpc.method_handlers_generic_handler(
        "yidi.bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(lambda request, _context: request)}
    )
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            echo = channel.unary_unary(_ECHO)
            payload = b"x" * 256
            for _ in range(100):
                echo(payload, timeout=5)
            return timed(lambda _index: echo(payload, timeout=5), count)
    finally:
        server.stop(0)


def bare_grpc_chain(hops: int, payload_size: int, count: int, concurrency: int) -> dict[str, float]:
    """The physical limit of a ``hops``-hop call on this machine: servers that only pass bytes on.

    The client calls the first server, each server calls the next with the same bytes, and
    the last echoes them back — the shape of a settlement crossing the tree, without any work.
    """
    servers: list[grpc.Server] = []
    channels: list[grpc.Channel] = []
    try:
        downstream: Callable[..., bytes] | None = None
        for _ in range(hops):
            forward = downstream

            def handle(
                request: bytes, _context: object, forward: Callable[..., bytes] | None = forward
            ) -> bytes:
                return request if forward is None else forward(request, timeout=10)

            server = grpc.server(ThreadPoolExecutor(max_workers=max(8, concurrency)))
            server.add_generic_rpc_handlers(
                (
                    grpc.method_handlers_generic_handler(
                        "yidi.bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(handle)}
                    ),
                )
            )
            port = server.add_insecure_port("127.0.0.1:0")
            server.start()
            servers.append(server)
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            channels.append(channel)
            downstream = channel.unary_unary(_ECHO)
        assert downstream is not None
        entry = downstream
        payload = b"x" * payload_size
        for _ in range(50):
            entry(payload, timeout=10)
        return timed_concurrently(lambda _index: entry(payload, timeout=10), count, concurrency)
    finally:
        for channel in channels:
            channel.close()
        for server in servers:
            server.stop(0)


def against_baseline(figure: dict[str, float], baseline: dict[str, float]) -> str:
    """``p50 … ms, p99 … ms (N× bare gRPC p50)`` for one measured call."""
    ratio = figure["p50_ms"] / baseline["p50_ms"] if baseline["p50_ms"] else float("nan")
    return f"p50 {figure['p50_ms']} ms, p99 {figure['p99_ms']} ms ({ratio:.1f}× bare gRPC p50)"


def database_name(database_url: str | None) -> str:
    """``postgresql`` when a URL is given, else the embedded ``sqlite``."""
    return "postgresql" if database_url else "sqlite"


@contextmanager
def national_node(service: str, database_url: str | None) -> Iterator[Node]:
    """A national node running ``service`` (SQLite in a throwaway folder unless a URL is given)."""
    configure_logging("warning")
    with tempfile.TemporaryDirectory(prefix=f"yidi-{service}-bench-") as folder:
        environ = {"YIDI_DATABASE_URL": database_url} if database_url else {}
        settings = load_settings(
            environ=environ,
            overrides={
                "data_dir": folder,
                "insecure": True,
                "grpc_port": 0,
                "metrics_port": "off",
                "auto_migrate": True,
                "role": "national",
                "region": "000000",
                "services": service,
                "log_level": "warning",
            },
        )
        node = start_node(settings)
        try:
            yield node
        finally:
            node.stop(0)


@contextmanager
def bench_node(service: str, database_url: str | None) -> Iterator[grpc.Channel]:
    """A channel to a :func:`national_node` running ``service``."""
    with national_node(service, database_url) as node, grpc.insecure_channel(node.address) as channel:
        yield channel
