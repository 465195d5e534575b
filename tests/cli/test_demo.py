"""`yidi demo`, the README's main job: a node on the embedded default answering with real results."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

YIDI = Path(sys.executable).with_name("yidi")


def test_demo_loads_the_samples_and_prints_the_worked_example_a_refusal_and_a_filing(tmp_path: Path) -> None:
    run = subprocess.run(
        [str(YIDI), "demo", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "imported registry: 16 institutions" in out
    worked_example = out.split("Langfang retiree", 1)[1].split("Qinghai resident", 1)[0]
    assert re.search(r"fund pays \(hifp_pay\)\s*│\s*48\.89\s*│", worked_example)
    assert re.search(r"patient pays \(psn_part_amt\)\s*│\s*15\.40\s*│", worked_example)
    assert "The patient's share (个人负担) is 15.40" in worked_example
    assert "refused with reason SERVICE_NOT_ENABLED" in out
    filing_story = out.split("Shenzhen retiree", 1)[1]
    assert "refused with reason NOT_FILED" in filing_story
    assert "FILING_STATE_APPROVED" in filing_story
    assert "filing category FILING_CATEGORY_RETIREE_RESETTLED" in filing_story
    assert "440300195603120118" not in out, "the demo prints ID numbers masked"
    assert sorted(p.name for p in tmp_path.glob("*.db"))[0] == "catalogue.db"
