"""deploy/k8s: the kustomize base and one overlay per role, resolved by hand (and by kubectl when present).

Each overlay's identity (the yidi-identity ConfigMap's YIDI_* literals) is loaded with the
node's own loader over the base node.toml, so an overlay that names an impossible node fails
here rather than in a crash-looping pod.
"""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import DEPLOY, development_pki, load_yaml, load_yaml_documents, tls_environ

from yidi_runtime.config import NodeSettings, Role, check_transport, load_settings

BASE = DEPLOY / "k8s" / "base"
OVERLAYS = {
    "national": ("000000", Role.NATIONAL),
    "province": ("130000", Role.PROVINCE),
    "city": ("131000", Role.CITY),
}


def resolved(folder: Path) -> list[dict[str, Any]]:
    """The resources of a kustomization and of the ones it includes; every file it names must exist and parse."""
    kustomization = load_yaml(folder / "kustomization.yaml")
    found = []
    for entry in kustomization.get("resources", []):
        path = folder / entry
        assert path.exists(), f"{folder}/kustomization.yaml names a missing {entry}"
        found += resolved(path) if path.is_dir() else load_yaml_documents(path)
    for patch in kustomization.get("patches", []):
        assert (folder / patch["path"]).is_file(), f"missing patch {patch['path']}"
        assert load_yaml_documents(folder / patch["path"])
    for generator in kustomization.get("configMapGenerator", []):
        for name in generator.get("files", []):
            assert (folder / name).is_file(), f"missing ConfigMap file {name}"
    return found


def of_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matching = [resource for resource in resources if resource["kind"] == kind]
    assert len(matching) == 1, f"expected one {kind}"
    return matching[0]


def identity(overlay: str) -> dict[str, str]:
    kustomization = load_yaml(DEPLOY / "k8s" / "overlays" / overlay / "kustomization.yaml")
    generator = next(g for g in kustomization["configMapGenerator"] if g["name"] == "yidi-identity")
    return dict(literal.split("=", 1) for literal in generator["literals"])


def overlay_settings(overlay: str, tmp_path: Path) -> NodeSettings:
    region = OVERLAYS[overlay][0]
    pki = development_pki(tmp_path / "pki", [region])
    environ = (
        identity(overlay) | tls_environ(pki, region) | {"YIDI_DATABASE_URL": "postgresql://yidi@db/yidi"}
    )
    return load_settings(BASE / "node.toml", environ=environ)


def test_the_base_deployment_probes_health_sizes_itself_and_migrates_first() -> None:
    resources = resolved(BASE)
    deployment = of_kind(resources, "Deployment")
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    (node,) = spec["containers"]
    (upgrade,) = spec["initContainers"]
    assert node["args"] == ["serve", "--config", "/etc/yidi/node.toml"]
    assert upgrade["args"] == ["db", "upgrade", "--config", "/etc/yidi/node.toml"]
    assert node["readinessProbe"]["exec"]["command"] == ["yidi-healthcheck"]
    for probe in ("livenessProbe", "startupProbe"):
        assert node[probe]["exec"]["command"] == ["yidi-healthcheck", "--live"]
    for container in (node, upgrade):
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        (database,) = [env for env in container["env"] if env["name"] == "YIDI_DATABASE_URL"]
        assert database["valueFrom"]["secretKeyRef"] == {"name": "yidi-database", "key": "url"}
        assert container["envFrom"] == [{"configMapRef": {"name": "yidi-identity"}}]
        assert {mount["mountPath"] for mount in container["volumeMounts"]} >= {
            "/etc/yidi/node.toml",
            "/etc/yidi/tls",
        }
    ports = {port["name"]: port["containerPort"] for port in node["ports"]}
    assert ports == {"grpc": 50051, "grpc-token": 50052, "metrics": 9464}
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(ports["metrics"])
    assert "replicas" not in deployment["spec"], "the HorizontalPodAutoscaler owns the replica count"

    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert of_kind(resources, "Service")["spec"]["selector"].items() <= labels.items()
    assert (
        of_kind(resources, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    )
    target = of_kind(resources, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "yidi-tls"
    assert volumes["config"]["configMap"]["name"] == "yidi-node"


def test_the_base_node_toml_matches_the_container_ports(tmp_path: Path) -> None:
    settings = overlay_settings("province", tmp_path)
    assert (settings.grpc_port, settings.token_port, settings.metrics_port) == (50051, 50052, 9464)
    tls = tomllib.loads((BASE / "node.toml").read_text(encoding="utf-8"))["tls"]
    assert tls == {
        "cert": "/etc/yidi/tls/tls.crt",
        "key": "/etc/yidi/tls/tls.key",
        "ca": "/etc/yidi/tls/ca.crt",
    }
    assert not settings.migrate_on_start


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_each_overlay_names_a_coherent_node_in_its_own_namespace(overlay: str, tmp_path: Path) -> None:
    folder = DEPLOY / "k8s" / "overlays" / overlay
    resources = resolved(folder)
    kustomization = load_yaml(folder / "kustomization.yaml")
    namespace = of_kind(resources, "Namespace")["metadata"]["name"]
    assert kustomization["namespace"] == namespace
    region, role = OVERLAYS[overlay]
    settings = overlay_settings(overlay, tmp_path)
    check_transport(settings)
    assert (settings.region, settings.role) == (region, role)
    assert settings.name == namespace.removeprefix("yidi-")
    for peer in (settings.parent, *settings.children):
        if peer is not None:
            assert peer.address.startswith("yidi.yidi-") and peer.address.endswith(".svc:50051")
    for patch in kustomization.get("patches", []):
        for document in load_yaml_documents(folder / patch["path"]):
            assert any(
                resource["kind"] == document["kind"]
                and resource["metadata"]["name"] == document["metadata"]["name"]
                for resource in resources
            ), f"{patch['path']} patches nothing in the base"


@pytest.mark.skipif(
    shutil.which("kubectl") is None,
    reason="kubectl is not installed (the manual resolution above still runs)",
)
@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_kubectl_kustomize_builds_each_overlay(overlay: str) -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    documents = [document for document in yaml.safe_load_all(built.stdout) if document]
    deployment = of_kind(documents, "Deployment")
    identity_map = next(
        d
        for d in documents
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("yidi-identity-")
    )
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert containers[0]["envFrom"] == [{"configMapRef": {"name": identity_map["metadata"]["name"]}}]
    assert identity_map["data"]["YIDI_REGION"] == OVERLAYS[overlay][0]
    assert {d["metadata"].get("namespace") for d in documents if d["kind"] != "Namespace"} == {
        f"yidi-{identity(overlay)['YIDI_NAME']}"
    }
