"""The physical limit of a settlement route: a chain of gRPC servers that only pass bytes on.

Each server is its own process, like a node: the client calls the first, each calls the
next with the same bytes, and the last answers with a response of a given size — the shape
of a Settle crossing the region tree, with no work done anywhere. Same server shape as a
node (the synchronous grpcio server with a pool of 32 threads), same transport security
(mutual TLS with node certificates when the federation uses it) and, with a delay, the
links between servers pass through the same :class:`~yidi_harness.processes.DelayProxy`.

Each server is ``echo_server.py``, which imports nothing but grpc.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from yidi_cli.client_tls import ClientTls
from yidi_harness.federation import LOOPBACK, free_port
from yidi_harness.processes import DelayProxy, await_ready, terminate_all
from yidi_runtime.config import TlsFiles

SERVER = Path(__file__).resolve().with_name("echo_server.py")


def client_tls(files: TlsFiles | None) -> ClientTls:
    """A caller presenting ``files`` (None: plaintext)."""
    return ClientTls(insecure=True) if files is None else ClientTls(files.cert, files.key, files.ca)


class EchoChain:
    """``size`` echo servers in a row, each in its own process, on loopback.

    ``tls`` gives each server its certificate (the chain then speaks mutual TLS, each server
    presenting its own certificate to the next); ``delay_ms`` delays each link between two
    servers in both directions. The client's link to the first server is direct.
    """

    def __init__(
        self,
        size: int,
        response_bytes: int,
        *,
        tls: Sequence[TlsFiles] | None = None,
        delay_ms: float = 0.0,
    ) -> None:
        if tls is not None and len(tls) != size:
            raise ValueError(f"a chain of {size} servers needs {size} certificates, got {len(tls)}")
        self.tls = tls
        self.response_bytes = response_bytes
        ports: list[int] = []
        for _ in range(size):
            ports.append(free_port(avoid=ports))
        self.ports = ports
        self.proxy = DelayProxy(delay_ms) if delay_ms > 0 else None
        direct = [f"{LOOPBACK}:{port}" for port in ports]
        self._next = [
            self.proxy.listen(target, ports) if self.proxy is not None else target for target in direct[1:]
        ]
        self._processes: list[subprocess.Popen[str]] = []

    @property
    def pids(self) -> list[int]:
        """The servers' process ids, first to last."""
        return [process.pid for process in self._processes]

    @property
    def address(self) -> str:
        """Where the client calls the first server."""
        return f"{LOOPBACK}:{self.ports[0]}"

    def start(self, timeout_s: float = 30.0) -> Self:
        """Start the servers (and the proxy); return once each has said it listens (bounded)."""
        try:
            if self.proxy is not None:
                self.proxy.start()
            for index, port in enumerate(self.ports):
                command = [
                    sys.executable,
                    str(SERVER),
                    "--port",
                    str(port),
                    "--response-bytes",
                    str(self.response_bytes),
                ]
                if index < len(self._next):
                    command += ["--next", self._next[index]]
                if self.tls is not None:
                    files = self.tls[index]
                    command += ["--cert", str(files.cert), "--key", str(files.key), "--ca", str(files.ca)]
                self._processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True))
            deadline = time.monotonic() + timeout_s
            for process in self._processes:
                await_ready(process, deadline, "an echo server")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the servers and the proxy (bounded). Safe to call twice."""
        terminate_all(self._processes, 10.0)
        for process in self._processes:
            if process.stdout is not None:
                process.stdout.close()
        self._processes.clear()
        if self.proxy is not None:
            self.proxy.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
