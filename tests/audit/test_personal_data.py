"""No personal ID number or name leaves a node through its logs or its metrics.

Two seed stories play through a small tree — the Langfang retiree settling in Beijing over
four hops, and the unfiled Taiyuan patient refused NOT_FILED, filed by the hospital and
settled — with every node logging JSON at debug level into one buffer and serving /metrics.
Their ID numbers travel in every request; they must appear in neither, nor their names.
"""

from __future__ import annotations

import io
import json
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from yidi_core.codes import NATIONAL_REGION
from yidi_harness.federation import NodeSpec, Topology, load_sample_data, start_federation
from yidi_harness.stories import LANGFANG_RETIREE, STORIES, TAIYUAN_EMPLOYEE, Stage
from yidi_runtime.config import Role
from yidi_runtime.logs import configure_logging, mask_id_number

TREE = Topology(
    (
        NodeSpec(NATIONAL_REGION, Role.NATIONAL, "national"),
        NodeSpec("110000", Role.PROVINCE, "beijing", NATIONAL_REGION),
        NodeSpec("130000", Role.PROVINCE, "hebei", NATIONAL_REGION),
        NodeSpec("140000", Role.PROVINCE, "shanxi", NATIONAL_REGION),
        NodeSpec("131000", Role.CITY, "langfang", "130000"),
    )
)
PATIENTS = {LANGFANG_RETIREE.certno: "样例廊一", TAIYUAN_EMPLOYEE.certno: "样例并一"}
"""The stories' patients: ID number → name, as examples/data/persons.csv enrols them."""


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return str(answer.read().decode())


def test_id_numbers_and_names_reach_neither_logs_nor_metrics(
    tmp_path: Path, database_factory: Callable[[], str | None]
) -> None:
    logs = io.StringIO()
    configure_logging("debug", "json", logs)
    try:
        with start_federation(TREE, tmp_path, database_factory, metrics_port=0) as federation:
            load_sample_data(federation)
            stage = Stage(federation, datetime.now(UTC))
            played = [story.play(stage) for story in STORIES if story.number in (1, 3)]
            metrics = {
                region: scrape(node.metrics_endpoint.port)
                for region, node in federation.nodes.items()
                if node.metrics_endpoint is not None
            }
    finally:
        configure_logging("info", "json", io.StringIO())

    assert [(result.number, result.failure, result.ok) for result in played] == [
        (1, "", True),
        (3, "", True),
    ]
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.strip()]
    calls = {(line["node"], line["grpc_method"]) for line in lines if line["event"] == "rpc"}
    assert {("beijing", "Settle"), ("langfang", "ApplySettlement"), ("shanxi", "ApplySettlement")} <= calls
    assert any(line.get("reason") == "NOT_FILED" for line in lines)
    assert sorted(metrics) == sorted(spec.region for spec in TREE.nodes)
    assert all('grpc_method="Settle"' in text for region, text in metrics.items() if region == "110000")
    text = logs.getvalue() + json.dumps(lines, ensure_ascii=False)  # names as written, not \u-escaped
    for certno, name in PATIENTS.items():
        assert certno not in text and name not in text
        assert mask_id_number(certno) != certno
        for region, exposition in metrics.items():
            assert certno not in exposition and name not in exposition, f"node {region} exposes personal data"
