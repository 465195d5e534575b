"""`yidi filing set-rules`, `import-persons` and `pending` against a node, on the sample data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
from filing_builders import BEIJING, TAIYUAN, WINDOW, Clock, application

from yidi.filing.v1 import filing_service_pb2_grpc as api_grpc
from yidi_runtime.server import Node

YIDI = Path(sys.executable).with_name("yidi")
DATA = Path(__file__).resolve().parents[2] / "examples" / "data"


def yidi(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(YIDI), "filing", *args, "--address", node.address, "--insecure"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_sample_rules_and_persons_load_and_the_queue_prints_as_a_table(
    filing_node: Node, clock: Clock, tmp_path: Path
) -> None:
    rules = yidi(filing_node, "set-rules", str(DATA / "filing-rules.toml"))
    assert rules.returncode == 0, rules.stderr
    assert "rules of 440300: auto-approve self-service, 2 working days" in rules.stdout
    assert rules.stdout.count("rules of ") == 6

    imported = yidi(filing_node, "import-persons", str(DATA / "persons.csv"))
    assert imported.returncode == 0, imported.stderr
    assert "12 persons, 12 created, 0 updated" in imported.stdout

    taiyuan = next(
        line.split(",")[0] for line in (DATA / "persons.csv").read_text().splitlines() if ",140100," in line
    )
    with grpc.insecure_channel(filing_node.address) as channel:
        filed = api_grpc.FilingServiceStub(channel).CreateFiling(
            application(taiyuan, TAIYUAN, BEIJING, channel=WINDOW)
        )
    clock.set("2026-03-10")
    queue = yidi(filing_node, "pending", "--region", TAIYUAN)
    assert queue.returncode == 0, queue.stderr
    assert "1 waiting, 1 overdue" in queue.stdout and filed.filing.filing_id in queue.stdout
    assert "OVERDUE" in queue.stdout and "2026-03-05" in queue.stdout and taiyuan not in queue.stdout

    broken = tmp_path / "broken.csv"
    lines = (DATA / "persons.csv").read_text().splitlines()
    broken.write_text("\n".join([lines[0], "1" + lines[1][1:]]) + "\n", encoding="utf-8")
    refused = yidi(filing_node, "import-persons", str(broken))
    assert refused.returncode == 1
    assert "refused: INVALID_CODE" in refused.stderr and "persons[0].certno" in refused.stderr
    assert lines[1].split(",")[0][1:] not in refused.stderr
