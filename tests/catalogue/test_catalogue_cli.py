"""`yidi catalogue import` and `yidi policy import` against a running node, as an operator runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from yidi_runtime.server import Node

YIDI = Path(sys.executable).with_name("yidi")
DATA = Path(__file__).resolve().parents[2] / "examples" / "data"


def yidi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(YIDI), *args, "--insecure"], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_cli_imports_sample_data_and_reports_refusals(node: Node, tmp_path: Path) -> None:
    catalogue = yidi(
        "catalogue",
        "import",
        "--region",
        "110000",
        "--effective",
        "2026-01-01",
        "--address",
        node.address,
        str(DATA / "catalogues" / "110000-beijing.csv"),
    )
    assert catalogue.returncode == 0, catalogue.stderr
    assert "110000@2026-01-01#" in catalogue.stdout and "11 items" in catalogue.stdout
    policy = yidi(
        "policy",
        "import",
        "--region",
        "131000",
        "--insutype",
        "310",
        "--effective",
        "2026-01-01",
        "--address",
        node.address,
        str(DATA / "policies" / "131000-310-langfang.toml"),
    )
    assert policy.returncode == 0, policy.stderr
    assert "131000/310@2026-01-01#" in policy.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name,kind,chrgitm_lv\nXA10BFA022A001010100001,x,drug,07\n", encoding="utf-8")
    refused = yidi(
        "catalogue",
        "import",
        "--region",
        "110000",
        "--effective",
        "2026-02-01",
        "--address",
        node.address,
        str(bad),
    )
    assert refused.returncode != 0
    assert "INVALID_CODE" in refused.stderr and "rows[0].chrgitm_lv" in refused.stderr
