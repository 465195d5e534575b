"""One server of an echo chain (see echo_chain.py), as light a process as a gRPC server can be.

It imports grpc alone — none of yidi — so a chain of five starts in about a second. It
answers ``/yidi.bench.Echo/Echo``: with ``--next``, by calling the next server with the same
bytes and passing its answer back; without, with ``--response-bytes`` bytes. Given
``--cert``/``--key``/``--ca`` it serves mutual TLS and presents the same certificate to the
next server, as a node does.

    python bench/echo_server.py --port 20001 --next 127.0.0.1:20002 --response-bytes 700
"""

from __future__ import annotations

import argparse
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

ECHO_SERVICE = "yidi.bench.Echo"
ECHO_METHOD = f"/{ECHO_SERVICE}/Echo"
NODE_WORKERS = 32
"""A node's default thread pool (``[node] max_workers``)."""
READY = "ready"
_DEADLINE_S = 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description="One server of an echo chain.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--next", default="", help="the next server's address (none: answer here)")
    parser.add_argument("--response-bytes", type=int, required=True)
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--key", type=Path)
    parser.add_argument("--ca", type=Path)
    args = parser.parse_args()
    pem = (args.key.read_bytes(), args.cert.read_bytes(), args.ca.read_bytes()) if args.cert else None
    response = b"x" * args.response_bytes
    forward = None
    if args.next:
        channel = (
            grpc.insecure_channel(args.next)
            if pem is None
            else grpc.secure_channel(
                args.next,
                grpc.ssl_channel_credentials(
                    root_certificates=pem[2], private_key=pem[0], certificate_chain=pem[1]
                ),
            )
        )
        forward = channel.unary_unary(ECHO_METHOD)

    def echo(request: bytes, _context: grpc.ServicerContext) -> bytes:
        return response if forward is None else forward(request, timeout=_DEADLINE_S)

    server = grpc.server(ThreadPoolExecutor(max_workers=NODE_WORKERS), options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                ECHO_SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
            ),
        )
    )
    target = f"{args.host}:{args.port}"
    if pem is None:
        server.add_insecure_port(target)
    else:
        credentials = grpc.ssl_server_credentials(
            [pem[:2]], root_certificates=pem[2], require_client_auth=True
        )
        server.add_secure_port(target, credentials)
    server.start()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(READY, flush=True)
    stop.wait()
    server.stop(1)


if __name__ == "__main__":
    main()
