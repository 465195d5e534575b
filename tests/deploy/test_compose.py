"""deploy/compose.yaml read as Docker Compose would: every node is configured, checked, migrated first and scraped.

Docker is not needed: the node configurations are loaded with the node's own loader (TLS
paths pointed at a development PKI made here, the database URL taken from the compose
environment), and the certificates step is run with the real `yidi certs` command.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from deploy_support import DEPLOY, development_pki, environment, load_yaml, tls_environ

from yidi_runtime.config import NodeSettings, Role, check_transport, load_settings

COMPOSE = load_yaml(DEPLOY / "compose.yaml")
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
NODE_TOML = "/etc/yidi/node.toml"
EXPECTED_TREE = {"national": "000000", "beijing": "110000", "hebei": "130000", "langfang": "131000"}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path → host path (relative to deploy/) or volume name."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        found[target] = source
    return found


def node_services() -> dict[str, dict[str, Any]]:
    """Services that run a node: they mount a node.toml and keep the image's `yidi serve` command."""
    return {
        name: service
        for name, service in SERVICES.items()
        if NODE_TOML in mounts(service) and "command" not in service
    }


def settings_of(name: str, pki_root: Path) -> NodeSettings:
    service = SERVICES[name]
    config = DEPLOY / mounts(service)[NODE_TOML]
    pki = development_pki(pki_root, list(EXPECTED_TREE.values()))
    return load_settings(config, environ=environment(service) | tls_environ(pki, EXPECTED_TREE[name]))


def test_the_federation_has_a_national_node_two_provinces_and_a_city() -> None:
    assert set(node_services()) == set(EXPECTED_TREE)
    assert {"postgres", "prometheus", "grafana", "certs"} <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(EXPECTED_TREE))
def test_each_node_loads_its_configuration_with_mutual_tls_and_postgresql(name: str, tmp_path: Path) -> None:
    settings = settings_of(name, tmp_path / "pki")
    assert settings.region == EXPECTED_TREE[name]
    assert settings.name == name
    check_transport(settings)  # mutual TLS, never insecure
    assert settings.tls is not None and not settings.insecure
    assert settings.database_url is not None and settings.database_url.startswith("postgresql")
    assert not settings.migrate_on_start, "production nodes are migrated by their migrate service"
    assert settings.host == "0.0.0.0" and settings.metrics_port == 9464
    assert tls_table(DEPLOY / mounts(SERVICES[name])[NODE_TOML]) == {
        "cert": f"/etc/yidi/certs/nodes/{EXPECTED_TREE[name]}.pem",
        "key": f"/etc/yidi/certs/nodes/{EXPECTED_TREE[name]}.key",
        "ca": "/etc/yidi/certs/ca.pem",
    }
    assert mounts(SERVICES[name])["/etc/yidi/certs"] == "certs"


def tls_table(path: Path) -> dict[str, str]:
    """The [tls] paths a node configuration names (inside the container)."""
    return dict(tomllib.loads(path.read_text(encoding="utf-8"))["tls"])


def test_parents_and_children_name_each_other_at_their_compose_addresses(tmp_path: Path) -> None:
    settings = {name: settings_of(name, tmp_path / "pki") for name in EXPECTED_TREE}
    by_region = {value.region: name for name, value in settings.items()}
    for name, node in settings.items():
        for child in node.children:
            assert child.address == f"{by_region[child.region]}:50051"
            child_settings = settings[by_region[child.region]]
            assert child_settings.parent is not None and child_settings.parent.region == node.region
            assert child_settings.parent.address == f"{name}:50051"
        if node.parent is None:
            assert node.role is Role.NATIONAL
    assert settings["langfang"].role is Role.CITY and settings["hebei"].role is Role.PROVINCE


@pytest.mark.parametrize("name", sorted(EXPECTED_TREE))
def test_each_node_is_health_checked_and_starts_after_its_migration(name: str) -> None:
    service = SERVICES[name]
    assert service["healthcheck"]["test"][:2] == ["CMD", "yidi-healthcheck"]
    migrate = SERVICES[f"migrate-{name}"]
    assert migrate["command"] == ["db", "upgrade", "--config", NODE_TOML]
    assert service["depends_on"][f"migrate-{name}"] == {"condition": "service_completed_successfully"}
    assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert environment(migrate) == environment(service), "the migration upgrades the node's own database"
    assert mounts(migrate) == mounts(service)


def test_every_node_database_is_created_by_the_postgres_init_script() -> None:
    init_mount = next(
        source
        for target, source in mounts(SERVICES["postgres"]).items()
        if "docker-entrypoint-initdb.d" in target
    )
    script = (DEPLOY / init_mount).read_text(encoding="utf-8")
    for name in EXPECTED_TREE:
        url = environment(SERVICES[name])["YIDI_DATABASE_URL"]
        assert url.startswith("postgresql://yidi:") and "@postgres:5432/" in url
        database = url.rsplit("/", 1)[1]
        assert f"CREATE DATABASE {database} OWNER yidi;" in script


def test_the_image_runs_yidi_serve_and_installs_the_healthcheck() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM python:3.11-slim" in dockerfile
    assert "pip wheel" in dockerfile and "--find-links=/wheels yidi" in dockerfile
    assert 'ENTRYPOINT ["yidi"]' in dockerfile
    assert f'CMD ["serve", "--config", "{NODE_TOML}"]' in dockerfile
    assert "deploy/healthcheck.py /usr/local/bin/yidi-healthcheck" in dockerfile
    for service in SERVICES.values():
        if service.get("image") == "yidi:dev":
            assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}


def test_prometheus_scrapes_every_node_and_grafana_gets_its_files() -> None:
    prometheus = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    targets = {
        target: group["labels"]["yidi_node"]
        for job in prometheus["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    assert targets == {f"{name}:9464": name for name in EXPECTED_TREE}
    for service in ("prometheus", "grafana", "postgres"):
        for target, source in mounts(SERVICES[service]).items():
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{service} mounts a missing {source} at {target}"


def test_the_certs_step_makes_what_the_nodes_mount(tmp_path: Path) -> None:
    """Runs the certs service's command with the real `yidi` CLI into a temporary folder."""
    command = SERVICES["certs"]["command"][0]
    init = command.split("||", 1)[1].split()
    assert init[:3] == ["yidi", "certs", "init"]
    out = tmp_path / "certs"
    args = [str(out) if arg == "/etc/yidi/certs" else arg for arg in init[1:]]
    done = subprocess.run(
        [str(Path(sys.executable).with_name("yidi")), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name, region in EXPECTED_TREE.items():
        cert = x509.load_pem_x509_certificate((out / "nodes" / f"{region}.pem").read_bytes())
        assert (out / "nodes" / f"{region}.key").is_file()
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert f"yidi://node/{region}" in names.get_values_for_type(x509.UniformResourceIdentifier)
        assert set(EXPECTED_TREE) <= set(names.get_values_for_type(x509.DNSName)), (
            f"{name}'s certificate must name the hosts the other nodes dial"
        )
    assert (out / "ca.pem").is_file()
