"""`yidi serve` as an operator runs it: starts, answers health, stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from yidi_harness.federation import free_port
from yidi_harness.polling import eventually

YIDI = Path(sys.executable).with_name("yidi")


def wait_serving(process: subprocess.Popen[str], address: str, deadline_s: float = 60.0) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)

        def serving() -> bool:
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
            if process.poll() is not None:
                pytest.fail(f"node exited early: {process.communicate()[1]}")
            return False

        eventually(serving, within_s=deadline_s, interval_s=0.2, what="the node reports SERVING")


def served_services(address: str) -> set[str]:
    with grpc.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = stub.ServerReflectionInfo(iter([request]), timeout=10)
        return {service.name for response in responses for service in response.list_services_response.service}


def test_serve_runs_a_standalone_node_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    metrics_port = free_port(avoid={port})
    process = subprocess.Popen(
        [
            str(YIDI),
            "serve",
            "--insecure",
            "--data-dir",
            str(tmp_path),
            "--grpc-port",
            str(port),
            "--metrics-port",
            str(metrics_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "YIDI_LOG_FORMAT": "json"},
    )
    try:
        address = f"127.0.0.1:{port}"
        wait_serving(process, address)
        yidi_services = {name for name in served_services(address) if name.startswith("yidi.")}
        # The six services (catalogue serves two, settlement three), audit and tokens.
        assert len(yidi_services) == 11
        with grpc.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in yidi_services:
                request = health_pb2.HealthCheckRequest(service=name)
                assert health.Check(request, timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        metrics = (
            urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        )
        assert 'grpc_server_started_total{grpc_method="Check",grpc_service="grpc.health.v1.Health"' in metrics
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    events = [json.loads(line)["event"] for line in stdout.splitlines() if line.startswith("{")]
    assert "insecure" in events[0].lower() and "use only for local development" in events[0]
    assert "node started" in events and events[-1] == "node stopped"
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "audit.db",
        "catalogue.db",
        "clearing.db",
        "collaboration.db",
        "filing.db",
        "registry.db",
        "settlement.db",
    ]


def test_serve_rejects_bad_flags_naming_them() -> None:
    result = subprocess.run(
        [str(YIDI), "serve", "--services", "filing,payroll"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--services" in result.stderr and "payroll" in result.stderr
