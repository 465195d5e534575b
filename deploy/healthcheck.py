#!/usr/bin/env python3
"""Container health probe: asks the node in this container for its ``grpc.health.v1`` status.

Docker healthchecks and Kubernetes' native ``grpc:`` probes dial in plaintext, but a
production node accepts only mutual TLS on its gRPC port. This probe reads the same
``node.toml`` and ``YIDI_*`` variables as the node, dials it on loopback with the node's own
certificate, and checks the whole node (service ``""``). The image installs it as
``yidi-healthcheck``.

Exit status 0 when the node answers SERVING (readiness); with ``--live``, when it answers at
all (liveness: a node whose database is down is alive, says NOT_SERVING, and must not be
restarted for it); 1 otherwise, with the reason on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from yidi_runtime.config import ConfigError, NodeSettings, load_settings

DEFAULT_CONFIG = Path("/etc/yidi/node.toml")


def _server_name(certificate: Path) -> str | None:
    """A DNS name the node's certificate answers for: the probe dials loopback but verifies that name."""
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    dns = names.get_values_for_type(x509.DNSName)
    return "localhost" if "localhost" in dns else next(iter(dns), None)


def _channel(settings: NodeSettings) -> grpc.Channel:
    target = f"127.0.0.1:{settings.grpc_port}"
    if settings.tls is None:
        return grpc.insecure_channel(target)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=settings.tls.ca.read_bytes(),
        private_key=settings.tls.key.read_bytes(),
        certificate_chain=settings.tls.cert.read_bytes(),
    )
    name = _server_name(settings.tls.cert)
    options = [("grpc.ssl_target_name_override", name)] if name else []
    return grpc.secure_channel(target, credentials, options=options)


def main(argv: list[str] | None = None) -> int:
    """Probe once; the exit status is the verdict."""
    parser = argparse.ArgumentParser(prog="yidi-healthcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the node's TOML file")
    parser.add_argument("--live", action="store_true", help="succeed on any answer (liveness)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config if args.config.is_file() else None)
    except ConfigError as error:
        print(f"yidi-healthcheck: {error}", file=sys.stderr)
        return 1
    with _channel(settings) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=args.timeout
            )
        except grpc.RpcError as error:
            print(f"yidi-healthcheck: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    if args.live or answer.status == health_pb2.HealthCheckResponse.SERVING:
        return 0
    print(f"yidi-healthcheck: node is {status}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
