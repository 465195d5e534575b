"""Alert rules, the Prometheus configs and the Grafana dashboard against a live node's /metrics.

promtool (Debian's prometheus package, scripts/ensure-promtool) checks the rules, runs their
unit tests (deploy/prometheus/rules.test.yml), checks the compose config and lints the
/metrics page of a national node started here. Every series a rule or a panel reads must be
one the node declares, or ``up``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_support import (
    DEPLOY,
    OPERATIONS,
    TARGET_LABELS,
    anchors,
    label_names,
    load_yaml,
    metric_names,
    national_node,
    promtool,
    scrape,
    series_names,
)

PROMETHEUS = DEPLOY / "prometheus"
RULES = load_yaml(PROMETHEUS / "rules.yml")
ALERTS = [rule for group in RULES["groups"] for rule in group["rules"] if "alert" in rule]
DASHBOARD = json.loads((DEPLOY / "grafana" / "dashboards" / "yidi.json").read_text(encoding="utf-8"))
PANELS = [panel for panel in DASHBOARD["panels"] if panel["type"] != "row"]
SYNTHETIC = {"up": {"job", "instance"}}
"""Series Prometheus makes itself."""


@pytest.fixture(scope="module")
def metrics_text(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with national_node(tmp_path_factory.mktemp("national")) as node:
        yield scrape(node)


@pytest.fixture(scope="module")
def declared(metrics_text: str) -> dict[str, set[str]]:
    return series_names(metrics_text) | SYNTHETIC


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    checked = run("check", "rules", str(PROMETHEUS / "rules.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run("test", "rules", str(PROMETHEUS / "rules.test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_promtool_accepts_the_compose_prometheus_config_and_finds_its_rules() -> None:
    checked = run("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout


def test_the_kubernetes_prometheus_config_keeps_the_job_the_rules_expect() -> None:
    # Debian's promtool is built without Kubernetes discovery, so this one is only read.
    config = load_yaml(PROMETHEUS / "prometheus-kubernetes.yml")
    assert config["rule_files"] == ["rules.yml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "yidi" and job["kubernetes_sd_configs"] == [{"role": "pod"}]
    assert {"yidi_node", "namespace", "pod"} <= {r.get("target_label") for r in job["relabel_configs"]}


def test_promtool_finds_no_problem_in_a_live_nodes_metrics(metrics_text: str) -> None:
    checked = run("check", "metrics", stdin=metrics_text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == "", checked.stdout + checked.stderr


@pytest.mark.parametrize("alert", ALERTS, ids=[alert["alert"] for alert in ALERTS])
def test_each_alert_has_a_severity_a_summary_a_description_and_a_runbook_section(
    alert: dict[str, Any],
) -> None:
    assert alert["labels"]["severity"] in {"critical", "warning"}
    annotations = alert["annotations"]
    assert annotations["summary"] and annotations["description"]
    document, _, anchor = annotations["runbook_url"].partition("#")
    assert document == "docs/operations.md" and anchor == alert["alert"].lower()
    assert anchor in anchors(OPERATIONS), f"docs/operations.md has no section {alert['alert']}"


def expressions() -> list[tuple[str, str]]:
    found = [(rule["alert"], rule["expr"]) for rule in ALERTS]
    found += [(panel["title"], target["expr"]) for panel in PANELS for target in panel["targets"]]
    return found


@pytest.mark.parametrize(("where", "expr"), expressions(), ids=[where for where, _ in expressions()])
def test_every_series_read_is_one_a_node_declares(
    where: str, expr: str, declared: dict[str, set[str]]
) -> None:
    read = metric_names(expr)
    assert read, f"{where}: no series found in {expr!r}"
    unknown = read - set(declared)
    assert not unknown, f"{where} reads series no node declares: {sorted(unknown)}"
    for series, labels in label_names(expr).items():
        # A family without samples yet (e.g. no outbox message) shows no labels to compare with.
        known = set().union(*(declared[name] for name in read)) if not series else declared[series]
        if known:
            missing = labels - known - TARGET_LABELS - {"le"}
            assert not missing, (
                f"{where}: {series or 'grouping'} uses labels {sorted(missing)} not seen on /metrics"
            )


def test_the_dashboard_is_provisioned_against_the_provisioned_datasource() -> None:
    datasource = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml")
    (source,) = datasource["datasources"]
    assert source["url"] == "http://prometheus:9090"
    provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "yidi.yaml")["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in PANELS:
        assert panel["datasource"]["uid"] == source["uid"]
        assert panel["targets"] and all(target["expr"] for target in panel["targets"])
    titles = {panel["title"] for panel in PANELS}
    assert {
        "Request rate by service",
        "Error rate by service",
        "p50 latency per method",
        "p99 latency per method",
        "Outbox backlog",
        "Settlement holds pending",
        "Advance usage per province",
        "Ledger imbalance (fen)",
        "Reconciliation: open differences",
        "Filings pending review",
        "Filings overdue for review",
    } <= titles


def test_grafana_mounts_the_dashboard_folder_the_provider_reads() -> None:
    compose = load_yaml(DEPLOY / "compose.yaml")
    volumes = dict(volume.split(":")[:2][::-1] for volume in compose["services"]["grafana"]["volumes"])
    assert Path(DEPLOY / volumes["/var/lib/grafana/dashboards"]).resolve() == (
        DEPLOY / "grafana" / "dashboards"
    )


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (grpc_service) (rate(grpc_server_handled_total{grpc_code!="OK"}[5m]))',
            {"grpc_server_handled_total"},
        ),
        (
            "max by (kind) (yidi_reconciliation_open_discrepancies) > 0",
            {"yidi_reconciliation_open_discrepancies"},
        ),
        ('a_total{x="y"} / on (node) b and up == 0', {"a_total", "b", "up"}),
    ],
)
def test_the_series_names_a_promql_expression_reads(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
