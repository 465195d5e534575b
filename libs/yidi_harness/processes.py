"""A federation of real processes: each node is `yidi serve` in its own process, on loopback.

The in-process :class:`~yidi_harness.federation.Federation` shares one interpreter (one GIL)
between every node, and a node cannot be killed without killing them all. Benchmarks that
should show what a deployment sees, and fault tests that kill -9 a node in the middle of a
burst, need each node as its own operating-system process: this module starts the ordinary
node program from a generated ``node.toml`` per node (its own data folder or PostgreSQL
database, mutual TLS from a development PKI or insecure, a log file), on ports planned
before any node starts so that parents and children can name each other.

With ``hop_delay_ms`` every link between nodes (the parent and child addresses written in
the configurations) passes through a :class:`DelayProxy`, a small asyncio TCP forwarder in a
process of its own that holds each chunk for that long in each direction: the round trip
of a wide-area link, on one machine. With ``lose_answer_every`` the same proxy can also lose
answers, between :meth:`DelayProxy.lose_answers` and :meth:`DelayProxy.heal`: every n-th
chunk coming back from a callee is not delivered, the connection is cut instead, so the
caller cannot tell whether its request took effect (fault tests). Calls from a HIS (or a
test) to its node are direct.

:class:`ProcessFederation` offers the client side of the in-process federation (channels
per caller, ``topology``, ``host_of``), so :func:`~yidi_harness.federation.load_sample_data` and
the HIS helpers of :mod:`yidi_harness.stories` work against it unchanged.

Run as a script, the module is the delay proxy itself::

    python -m yidi_harness.processes --delay-ms 15 [--lose-answer-every N] PORT=HOST:PORT ...
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from yidi_cli.client_tls import ClientTls
from yidi_cli.node_client import open_channel
from yidi_harness.federation import (
    LOOPBACK,
    DatabaseUrlFactory,
    Federation,
    NodeSpec,
    Topology,
    free_port,
    plan_ports,
)
from yidi_harness.polling import TimedOut, eventually
from yidi_runtime.certs import Pki
from yidi_runtime.config import TlsFiles, load_settings

START_TIMEOUT_S = 90.0
"""How long a whole federation may take to answer SERVING (ten nodes importing on two cores)."""
STOP_TIMEOUT_S = 15.0
"""How long stopped nodes may drain (``yidi serve`` grants calls ten seconds) before SIGKILL."""
_POLL_S = 0.1
READY = "ready"
"""What a helper process prints once it listens."""
_CHUNK = 64 * 1024
_LOST = "answer lost"


# -- the delay proxy ------------------------------------------------------------------------------


class DelayProxy:
    """Loopback TCP forwarders that delay every chunk by ``delay_ms`` in each direction.

    One process of its own (``python -m yidi_harness.processes``) serves every link, so the
    forwarding never runs on a measured process's threads. ``listen(target)`` plans a port forwarding to
    ``target``; :meth:`start` opens them all at once. With ``lose_answer_every`` n, from
    :meth:`lose_answers` until :meth:`heal` every n-th chunk from a callee (across all
    links) is lost and its connection cut; each loss is a line in ``log`` (:meth:`answers_lost`).
    """

    def __init__(
        self, delay_ms: float, host: str = LOOPBACK, *, lose_answer_every: int = 0, log: Path | None = None
    ) -> None:
        self.delay_ms = delay_ms
        self.host = host
        self.lose_answer_every = lose_answer_every
        self.log = log
        self._routes: dict[int, str] = {}
        self._process: subprocess.Popen[str] | None = None

    def listen(self, target: str, avoid: Iterable[int] = ()) -> str:
        """The address that will forward to ``target`` once started."""
        port = free_port(self.host, avoid={*avoid, *self._routes})
        self._routes[port] = target
        return f"{self.host}:{port}"

    def start(self, timeout_s: float = 20.0) -> None:
        """Start the proxy process; return once every port listens (bounded)."""
        routes = [f"{port}={target}" for port, target in self._routes.items()]
        command = [sys.executable, "-m", "yidi_harness.processes", "--host", self.host, "--delay-ms"]
        command += [str(self.delay_ms), "--lose-answer-every", str(self.lose_answer_every)]
        with self.log.open("a") if self.log is not None else open(os.devnull, "w") as log:
            self._process = subprocess.Popen(
                [*command, *routes], stdout=subprocess.PIPE, stderr=log, text=True, env=_clean_environment()
            )
        try:
            await_ready(self._process, time.monotonic() + timeout_s, "the delay proxy")
        except BaseException:
            self.stop()
            raise

    def lose_answers(self) -> None:
        """Start losing every ``lose_answer_every``-th answer chunk."""
        self._signal(signal.SIGUSR1)

    def heal(self) -> None:
        """Stop losing answers (the links stay up)."""
        self._signal(signal.SIGUSR2)

    def _signal(self, signum: int) -> None:
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError("the proxy is not running")
        self._process.send_signal(signum)

    def answers_lost(self) -> int:
        """How many answers the proxy has lost so far (lines of its log)."""
        return self.log.read_text().count(_LOST) if self.log is not None and self.log.is_file() else 0

    def stop(self) -> None:
        """Stop the proxy process (bounded). Safe to call twice."""
        if self._process is not None:
            terminate_all([self._process], STOP_TIMEOUT_S)
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None


def await_ready(process: subprocess.Popen[str], deadline: float, what: str) -> None:
    """Wait (until ``deadline``) for a helper process to print its ready line on its stdout pipe."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        line = process.stdout.readline() if selector.select(max(0.0, deadline - time.monotonic())) else ""
    if line.strip() != READY:
        raise RuntimeError(f"{what} did not start: {line!r}")


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay_s: float,
    lost: Callable[[], bool] = lambda: False,
) -> None:
    """Copy one direction of a connection, each chunk delivered ``delay_s`` after it arrived.

    Chunks queue rather than wait for each other, so the delay is added to latency only and
    the link keeps its bandwidth, as a long cable does. A chunk ``lost`` says is lost ends the copy.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, chunk = await queue.get()
            pause = due - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
            if not chunk:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()

    delivering = asyncio.create_task(deliver())
    try:
        while (chunk := await reader.read(_CHUNK)) and not lost():
            queue.put_nowait((loop.time() + delay_s, chunk))
    except ConnectionError:
        pass
    queue.put_nowait((loop.time() + delay_s, b""))
    with suppress(ConnectionError):
        await delivering


async def _serve_proxy(host: str, routes: Mapping[int, str], delay_s: float, lose_every: int) -> None:
    answers = itertools.count(1)
    losing = asyncio.Event()

    async def forward(target: str, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        target_host, _, target_port = target.rpartition(":")
        try:
            upstream_reader, upstream = await asyncio.open_connection(target_host, int(target_port))
        except OSError:
            client.close()
            return

        def lost() -> bool:
            """Every ``lose_every``-th answer chunk: cut both sides at once, as a broken link does."""
            if not lose_every or not losing.is_set() or next(answers) % lose_every:
                return False
            for writer in (client, upstream):
                writer.transport.abort()
            print(_LOST, target, file=sys.stderr, flush=True)
            return True

        await asyncio.gather(
            _pump(client_reader, upstream, delay_s),
            _pump(upstream_reader, client, delay_s, lost),
            return_exceptions=True,
        )
        for writer in (client, upstream):
            writer.close()

    servers = [
        await asyncio.start_server(
            lambda reader, writer, target=target: forward(target, reader, writer), host, port
        )
        for port, target in routes.items()
    ]
    print(READY, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, losing.set)
    loop.add_signal_handler(signal.SIGUSR2, losing.clear)
    await stop.wait()
    for server in servers:
        server.close()


def _proxy_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Loopback TCP forwarders adding a one-way delay.")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument(
        "--lose-answer-every",
        type=int,
        default=0,
        help="after SIGUSR1 (until SIGUSR2), cut the link at every n-th answer chunk (0: never)",
    )
    parser.add_argument("routes", nargs="+", help="PORT=HOST:PORT")
    args = parser.parse_args(argv)
    routes = {int(port): target for port, _, target in (route.partition("=") for route in args.routes)}
    asyncio.run(_serve_proxy(args.host, routes, args.delay_ms / 1000, args.lose_answer_every))


# -- the federation ---------------------------------------------------------------------------------


@dataclass
class NodeProcess:
    """One node of a process federation: what it runs from, and its process while it runs."""

    spec: NodeSpec
    address: str
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    metrics_port: int | None = None

    @property
    def running(self) -> bool:
        """The process was started and has not exited."""
        return self.process is not None and self.process.poll() is None


class ProcessFederation(Federation):
    """The nodes of ``topology``, each `yidi serve` in its own process, wired on planned loopback ports.

    Each node keeps its SQLite files in ``data_dir/<region>-<name>`` unless
    ``database_url_for`` gives it a database (asked once per node, in topology order; a
    restarted node keeps its database). With ``pki`` the nodes serve mutual TLS with their
    node certificates; without, they run insecure. ``config`` adds TOML sections to every
    node's file (e.g. ``{"settlement": {"hold_timeout_s": 5}}``). Logs go to
    ``data_dir/<region>-<name>.log`` (:meth:`log_of`). ``lose_answer_every`` makes the links'
    proxy lose answers (:class:`DelayProxy`; its log is ``data_dir/proxy.log``). With
    ``profile_dir`` every node runs under ``py-spy record`` and leaves a speedscope profile
    there when it stops (py-spy cannot attach to a running process in every sandbox, so it
    starts the node). With ``metrics`` every node serves ``/metrics`` on a port of its own
    (:meth:`metrics_of`).

    Clients open channels with :meth:`channel` as in the in-process federation; the
    ``nodes`` mapping of that class stays empty, the processes are in :attr:`processes`.
    """

    def __init__(
        self,
        topology: Topology,
        data_dir: Path,
        database_url_for: DatabaseUrlFactory | None = None,
        *,
        pki: Pki | None = None,
        hop_delay_ms: float = 0.0,
        base_port: int | None = None,
        host: str = LOOPBACK,
        log_level: str = "warning",
        config: Mapping[str, Mapping[str, Any]] | None = None,
        lose_answer_every: int = 0,
        profile_dir: Path | None = None,
        metrics: bool = False,
    ) -> None:
        super().__init__(topology, {}, pki)
        self.data_dir = Path(data_dir)
        self.profile_dir = profile_dir
        self.hop_delay_ms = hop_delay_ms
        self._database_url_for = database_url_for
        self._log_level = log_level
        self._extra = dict(config or {})
        ports = plan_ports(topology, base_port, host)
        direct = {region: f"{host}:{port}" for region, port in ports.items()}
        self.proxy = (
            DelayProxy(
                hop_delay_ms, host, lose_answer_every=lose_answer_every, log=self.data_dir / "proxy.log"
            )
            if hop_delay_ms > 0 or lose_answer_every > 0
            else None
        )
        self._links = self._plan_links(direct, ports.values())
        self.processes = {
            spec.region: NodeProcess(
                spec,
                direct[spec.region],
                self.data_dir / f"{spec.region}-{spec.name}.toml",
                self.data_dir / f"{spec.region}-{spec.name}.log",
            )
            for spec in topology.nodes
        }
        if metrics:
            taken = {*ports.values(), *(int(address.rpartition(":")[2]) for address in self._links.values())}
            for node in self.processes.values():
                node.metrics_port = free_port(host, avoid=taken)
                taken.add(node.metrics_port)

    def _plan_links(self, direct: Mapping[str, str], taken: Iterable[int]) -> dict[tuple[str, str], str]:
        """The address each node dials for each of its peers: direct, or through the delay proxy."""
        links: dict[tuple[str, str], str] = {}
        avoid = set(taken)
        for spec in self.topology.nodes:
            if spec.parent is None:
                continue
            for caller, callee in ((spec.region, spec.parent), (spec.parent, spec.region)):
                links[caller, callee] = (
                    self.proxy.listen(direct[callee], avoid) if self.proxy is not None else direct[callee]
                )
        return links

    # -- configuration ---------------------------------------------------------------------------

    def _document(self, node: NodeProcess, database_url: str | None) -> dict[str, Any]:
        spec = node.spec
        host, _, port = node.address.rpartition(":")
        document: dict[str, Any] = {
            "node": {
                "role": spec.role.value,
                "region": spec.region,
                "name": spec.name,
                "data_dir": str(self.data_dir / f"{spec.region}-{spec.name}"),
                "services": list(spec.services),
            },
            "listen": {
                "host": host,
                "grpc_port": int(port),
                "metrics_port": node.metrics_port if node.metrics_port is not None else "off",
            },
            "database": {"auto_migrate": True, **({"url": database_url} if database_url else {})},
            "log": {"level": self._log_level, "format": "json"},
            "tls": _tls_table(self.pki.node(spec.region) if self.pki is not None else None),
        }
        if spec.parent is not None:
            document["parent"] = {"region": spec.parent, "address": self._links[spec.region, spec.parent]}
        children = self.topology.children_of(spec.region)
        if children:
            document["children"] = [
                {"region": child.region, "address": self._links[spec.region, child.region]}
                for child in children
            ]
        for section, values in self._extra.items():
            document[section] = {**document.get(section, {}), **values}
        return document

    def _write_configs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for node in self.processes.values():
            database_url = self._database_url_for() if self._database_url_for is not None else None
            node.config.write_text(_toml(self._document(node, database_url)), encoding="utf-8")
            load_settings(node.config, environ={})  # a bad key is named here, before any process starts

    # -- life cycle --------------------------------------------------------------------------------

    def start(self, timeout_s: float = START_TIMEOUT_S) -> Self:
        """Start every node (and the delay proxy) at once; return when all answer SERVING (bounded).

        A node that exits or does not answer in time stops the whole federation, with the end
        of its log in the error.
        """
        try:
            self._write_configs()
            if self.proxy is not None:
                self.proxy.start()
            for node in self.processes.values():
                self._spawn(node)
            deadline = time.monotonic() + timeout_s
            for region in self.processes:
                self._wait_healthy(region, deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _profiler(self, node: NodeProcess) -> list[str]:
        """``py-spy record … --`` before the node's command when profiling, else nothing."""
        if self.profile_dir is None:
            return []
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
        target = self.profile_dir / f"{node.spec.region}-{node.spec.name}-{time.time_ns()}.speedscope.json"
        return [  # --nonblocking: a node paused by ptrace while sampled could miss its SIGTERM
            py_spy,
            "record",
            "--nonblocking",
            "--rate",
            "100",
            "--format",
            "speedscope",
            "--output",
            str(target),
            "--",
        ]

    def _spawn(self, node: NodeProcess) -> None:
        with node.log.open("ab") as log:
            node.process = subprocess.Popen(
                [
                    *self._profiler(node),
                    sys.executable,
                    "-c",
                    "from yidi_cli.main import main; main()",
                    "serve",
                    "--config",
                    str(node.config),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_clean_environment(),
            )

    def _wait_healthy(self, region: str, deadline: float) -> None:
        node = self.processes[region]

        def serving() -> bool:
            if not node.running:
                raise RuntimeError(f"node {region} exited before serving:\n{self.log_tail(region)}")
            return self._serving(region)

        try:
            within_s = max(0.0, deadline - time.monotonic())
            eventually(serving, within_s=within_s, interval_s=_POLL_S, what=f"node {region} answers SERVING")
        except TimedOut as error:
            raise TimeoutError(
                f"node {region} did not answer SERVING in time:\n{self.log_tail(region)}"
            ) from error

    def _serving(self, region: str) -> bool:
        """One health check on a fresh channel (a cached one may be waiting out a reconnect backoff)."""
        files = self.pki.node(region) if self.pki is not None else None
        tls = ClientTls(insecure=True) if files is None else ClientTls(files.cert, files.key, files.ca)
        with open_channel(self.address(region), tls) as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1.0
                )
            except grpc.RpcError:
                return False
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

    def address(self, region: str) -> str:
        """``host:port`` where the node of ``region`` answers its own clients (never delayed)."""
        return self.processes[region].address

    def log_of(self, region: str) -> Path:
        """The node's log file (JSON lines), kept across restarts."""
        return self.processes[region].log

    def log_tail(self, region: str, lines: int = 30) -> str:
        """The last lines of a node's log, for error messages."""
        log = self.log_of(region)
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.is_file() else ""

    def metrics_of(self, region: str) -> str:
        """The node's ``/metrics`` exposition now (the federation must run with ``metrics``)."""
        node = self.processes[region]
        if node.metrics_port is None:
            raise RuntimeError("the federation serves no metrics: start it with metrics=True")
        host = node.address.rpartition(":")[0]
        with urllib.request.urlopen(f"http://{host}:{node.metrics_port}/metrics", timeout=10) as answer:
            return str(answer.read().decode())

    def pid(self, region: str) -> int:
        """The process id of the running node of ``region`` (under a profiler, the node's, not py-spy's)."""
        process = self.processes[region].process
        if process is None or process.poll() is not None:
            raise RuntimeError(f"node {region} is not running")
        if self.profile_dir is None:
            return process.pid
        children = [
            child
            for task in Path(f"/proc/{process.pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
        if not children:
            raise RuntimeError(f"node {region} has not started under its profiler")
        return int(children[0])

    def kill(self, region: str, sig: int = signal.SIGKILL, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """Send ``sig`` to the node of ``region`` and wait for it to exit (bounded); its exit status."""
        process = self.processes[region].process
        if process is None:
            raise RuntimeError(f"node {region} was never started")
        if process.poll() is None:
            process.send_signal(sig)
        return process.wait(timeout_s)

    def restart(self, region: str, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start the node of ``region`` again, same ports, files and database; return once SERVING.

        A node still running is stopped gracefully first.
        """
        node = self.processes[region]
        if node.running:
            self.kill(region, signal.SIGTERM)
        self._spawn(node)
        self._wait_healthy(region, time.monotonic() + timeout_s)

    def stop(self, grace: float = STOP_TIMEOUT_S) -> None:
        """Close the channels, SIGTERM every node, SIGKILL whoever outlives ``grace``; stop the proxy.

        Safe to call twice.
        """
        super().stop(grace)
        if self.profile_dir is not None:  # py-spy writes its profile once the node it watches has exited
            for region, node in self.processes.items():
                if node.running:
                    os.kill(self.pid(region), signal.SIGTERM)
            for node in self.processes.values():
                if node.process is not None:
                    with suppress(subprocess.TimeoutExpired):
                        node.process.wait(grace)
        terminate_all([node.process for node in self.processes.values() if node.process is not None], grace)
        if self.proxy is not None:
            self.proxy.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def terminate_all(processes: Iterable[subprocess.Popen[Any]], grace: float) -> None:
    """SIGTERM, a bounded wait for all of them together, then SIGKILL the rest."""
    alive = [process for process in processes if process.poll() is None]
    for process in alive:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in alive:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _clean_environment() -> dict[str, str]:
    """This process's environment without ``YIDI_*``: a stray variable must not rewire a node."""
    return {name: value for name, value in os.environ.items() if not name.startswith("YIDI_")}


def _tls_table(files: TlsFiles | None) -> dict[str, Any]:
    if files is None:
        return {"insecure": True}
    return {"cert": str(files.cert), "key": str(files.key), "ca": str(files.ca)}


def _toml(document: Mapping[str, Any]) -> str:
    """The few TOML shapes a node file uses: tables of scalars and lists, and arrays of tables.

    JSON's string and list syntax is valid TOML for these values.
    """
    lines: list[str] = []
    for section, body in document.items():
        rows = body if isinstance(body, list) else [body]
        for row in rows:
            lines.append(f"[[{section}]]" if isinstance(body, list) else f"[{section}]")
            lines += [f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in row.items()]
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    _proxy_main()
