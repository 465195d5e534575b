"""deploy/healthcheck.py (the image's `yidi-healthcheck`) against in-process nodes, with mutual TLS and without."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from deploy_support import DEPLOY, development_pki
from grpc_health.v1 import health_pb2

from yidi_harness.federation import free_port
from yidi_runtime.server import Node
from yidi_services.node import start_node
from yidi_testing import settings_for

PROBE = DEPLOY / "healthcheck.py"


def probe(config: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """Run the probe as a container would, with the node's configuration file only."""
    return subprocess.run(
        [sys.executable, str(PROBE), "--config", str(config), *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )


def config_file(tmp_path: Path, node: Node, tls: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(
        f'[node]\nregion = "110000"\n\n[listen]\ngrpc_port = {node.port}\n\n{tls}\n', encoding="utf-8"
    )
    return path


def test_a_serving_node_behind_mutual_tls_is_ready_and_alive(tmp_path: Path) -> None:
    pki = development_pki(tmp_path / "pki", ["110000"])
    files = pki.node("110000")
    node = start_node(settings_for(tmp_path / "node", tls=files, health_interval_s=3600.0))
    try:
        config = config_file(
            tmp_path, node, f'[tls]\ncert = "{files.cert}"\nkey = "{files.key}"\nca = "{files.ca}"'
        )
        assert probe(config).returncode == 0
        assert probe(config, "--live").returncode == 0

        node.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        not_ready = probe(config)
        assert not_ready.returncode == 1 and "NOT_SERVING" in not_ready.stderr
        assert probe(config, "--live").returncode == 0, "a node that answers is alive"
    finally:
        node.stop(0)
    gone = probe(config, "--live")
    assert gone.returncode == 1 and "UNAVAILABLE" in gone.stderr


def test_an_insecure_development_node_is_probed_in_plaintext(tmp_path: Path) -> None:
    node = start_node(settings_for(tmp_path / "node"))
    try:
        assert probe(config_file(tmp_path, node, "[tls]\ninsecure = true")).returncode == 0
    finally:
        node.stop(0)


def test_a_node_that_is_not_there_is_neither_ready_nor_alive(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text(f"[listen]\ngrpc_port = {free_port()}\n\n[tls]\ninsecure = true\n", encoding="utf-8")
    assert probe(config).returncode == 1
    assert probe(config, "--live").returncode == 1


def test_an_invalid_configuration_fails_the_probe_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('[listen]\ngrpc_port = "many"\n', encoding="utf-8")
    failed = probe(config)
    assert failed.returncode == 1 and "listen.grpc_port" in failed.stderr
