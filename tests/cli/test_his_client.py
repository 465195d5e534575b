"""examples/his_client.py, run as an integrator would against a federation's Beijing node (insecure here;
over mutual TLS in test_demo's keep-running test)."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from yidi_harness.federation import DEMO_TOPOLOGY, load_sample_data, start_federation
from yidi_harness.stories import STORIES, Stage

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "his_client.py"


def test_the_his_example_settles_retries_with_the_same_request_id_and_reads_a_refusal(tmp_path: Path) -> None:
    with start_federation(DEMO_TOPOLOGY, tmp_path) as federation:
        load_sample_data(federation)
        worked_example = STORIES[0].play(Stage(federation, datetime.now(UTC)))
        assert worked_example.ok, worked_example.failure  # it files the Langfang retiree for Beijing
        run = subprocess.run(
            [sys.executable, str(EXAMPLE), "--address", federation.address("110000"), "--insecure"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    settled = re.search(r"settled (110000\w{24}) \(medins_setl_id H11010100001\d{18}\)", out)
    assert settled, out
    assert f"the same request_id sent again: setl_id {settled.group(1)}" in out
    assert "second patient refused: CONTRIBUTION_INTERRUPTED" in out
    assert "131000195402270170" not in out, "the node answers with masked ID numbers"
