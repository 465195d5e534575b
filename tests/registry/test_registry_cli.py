"""`yidi registry import` and `yidi registry coverage` against a national node, on the sample data."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from yidi_runtime.server import Node
from yidi_services.node import start_node
from yidi_testing import settings_for

YIDI = Path(sys.executable).with_name("yidi")
DATA = Path(__file__).resolve().parents[2] / "examples" / "data"


@pytest.fixture
def national(tmp_path: Path, database_url: str | None) -> Iterator[Node]:
    started = start_node(
        settings_for(
            tmp_path, database_url, auto_migrate=True, role="national", region="000000", services="registry"
        )
    )
    yield started
    started.stop(0)


def yidi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(YIDI), "registry", *args, "--insecure"], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_sample_data_imports_and_henan_coverage_shows_its_gaps(national: Node, tmp_path: Path) -> None:
    imported = yidi("import", str(DATA / "institutions.csv"), "--address", national.address)
    assert imported.returncode == 0, imported.stderr
    assert "16 rows, 16 created, 0 updated" in imported.stdout
    assert "into 000000" in imported.stdout

    args = ["coverage", "--region", "410000", "--as-of", "2026-01-01", "--address", national.address]
    counties = ["--expected-counties", str(DATA / "counties-410100.txt")]
    report = json.loads(yidi(*args, *counties, "--json").stdout)
    rows = {row["admdvs"]: row for row in report["rows"]}
    assert rows["410000"]["institution_count"] == 2 + 1
    assert rows["410000"]["general_outpatient_count"] == 2
    assert "410122" in report["counties_without_outpatient"]
    assert "410181" in report["counties_without_outpatient"]
    assert "410103" not in report["counties_without_outpatient"]
    assert len(report["counties_without_outpatient"]) == 12 - 2

    table = yidi(*args)
    assert table.returncode == 0, table.stderr
    assert "410122 (no outpatient)" in table.stdout and "M01600 2" in table.stdout


def test_a_refused_import_exits_non_zero_with_the_bad_cells(national: Node, tmp_path: Path) -> None:
    lines = (DATA / "institutions.csv").read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "\n".join([lines[0], lines[1].replace(",medical,3,", ",medical,7,")]) + "\n", encoding="utf-8"
    )
    refused = yidi("import", str(bad), "--address", national.address)
    assert refused.returncode == 1
    assert "refused: INVALID_ARGUMENT" in refused.stderr and "row 2, column level" in refused.stderr
    outside = yidi(
        "import", str(DATA / "institutions.csv"), "--region", "110000", "--address", national.address
    )
    assert outside.returncode == 1 and "row 7, column admdvs" in outside.stderr
