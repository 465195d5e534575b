"""What the deploy/ tests share: the files, promtool, a live node's /metrics and the names in PromQL."""

from __future__ import annotations

import os
import re
import shutil
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from yidi_runtime.certs import Pki, init_pki
from yidi_runtime.server import Node
from yidi_services.node import start_node
from yidi_testing import settings_for

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OPERATIONS = ROOT / "docs" / "operations.md"
TARGET_LABELS = frozenset({"job", "instance", "yidi_node", "namespace", "pod"})
"""Labels Prometheus adds to every scraped series (deploy/prometheus/*.yml)."""


def load_yaml(path: Path) -> Any:
    """One YAML document."""
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_yaml_documents(path: Path) -> list[Any]:
    """Every document of a YAML file (Kubernetes patches may hold several)."""
    with path.open(encoding="utf-8") as handle:
        return [document for document in yaml.safe_load_all(handle) if document is not None]


def promtool() -> str:
    """promtool's path; missing fails the test on CI (``CI`` set) and skips it elsewhere."""
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("promtool is missing: scripts/ensure-promtool installs Debian's prometheus package")
    pytest.skip("promtool is missing: run scripts/ensure-promtool (Debian's prometheus package)")


def development_pki(
    root: Path, regions: list[str], hosts: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> Pki:
    """A development CA and node certificates, as `yidi certs init` lays them out."""
    return init_pki(root, nodes=regions, hosts=hosts)


def tls_environ(pki: Pki, region: str) -> dict[str, str]:
    """``YIDI_TLS_*`` naming a node's files in ``pki`` (they override the paths a config file names)."""
    files = pki.node(region)
    return {"YIDI_TLS_CERT": str(files.cert), "YIDI_TLS_KEY": str(files.key), "YIDI_TLS_CA": str(files.ca)}


@contextmanager
def national_node(tmp_path: Path) -> Iterator[Node]:
    """A national node running every service (so every metric family is registered), insecure, on loopback."""
    node = start_node(settings_for(tmp_path, role="national", region="000000", auto_migrate=True))
    try:
        yield node
    finally:
        node.stop(0)


def scrape(node: Node) -> str:
    """The node's /metrics page."""
    assert node.metrics_endpoint is not None, "the node serves no /metrics"
    with urllib.request.urlopen(f"http://127.0.0.1:{node.metrics_endpoint.port}/metrics", timeout=10) as page:
        return str(page.read().decode())


def series_names(metrics_text: str) -> dict[str, set[str]]:
    """Every series name a /metrics page declares (histogram and counter suffixes included) → its labels seen."""
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(metrics_text):
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
            "summary": ("_count", "_sum", "_created"),
        }.get(family.type, ("",))
        for suffix in suffixes:
            names.setdefault(family.name + suffix, set())
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


_GROUPING = re.compile(r"\b(by|on|without|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_MATCHERS = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\{([^}]*)\}")
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_FUNCTIONS_AND_WORDS = frozenset(
    {"sum", "max", "min", "avg", "count", "rate", "increase", "abs", "histogram_quantile", "min_over_time"}
    | {"and", "or", "unless", "by", "on", "without", "ignoring", "group_left", "group_right", "bool"}
)


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads (Grafana's ``$__rate_interval`` and ``$node`` allowed)."""
    bare = _MATCHERS.sub(lambda match: match.group(1) or "", expr)
    bare = _GROUPING.sub("", bare)
    bare = re.sub(r'"[^"]*"|\[[^\]]*\]|\$\w+', "", bare)
    return {token for token in _IDENTIFIER.findall(bare) if token not in _FUNCTIONS_AND_WORDS}


def label_names(expr: str) -> dict[str, set[str]]:
    """Labels an expression names: in each series' matchers (by series) and in by/on clauses (under "")."""
    found: dict[str, set[str]] = {}
    for match in _MATCHERS.finditer(expr):
        names = {
            part.split("=")[0].split("!")[0].strip() for part in match.group(2).split(",") if part.strip()
        }
        found.setdefault(match.group(1) or "", set()).update(names)
    for match in _GROUPING.finditer(expr):
        found.setdefault("", set()).update(name.strip() for name in match.group(2).split(",") if name.strip())
    return found


def anchors(markdown: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    found = set()
    for line in markdown.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A compose service's environment with ``${NAME:-default}`` resolved to the default."""
    raw = service.get("environment", {})
    pairs = raw.items() if isinstance(raw, Mapping) else (item.split("=", 1) for item in raw)
    return {str(key): re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value)) for key, value in pairs}
