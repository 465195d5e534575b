"""examples/node-his-client, the Node.js HIS, run as a vendor would against `yidi demo --keep-running` over mTLS.

The demo runs as a subprocess on ten consecutive free ports with its own data folder (its
certificates under ``<data>/certs``); the client runs with ``node`` and its pinned packages,
installed by ``scripts/ensure-node-client``. Without Node.js the tests skip, except in CI
(``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from yidi_harness.federation import DEMO_TOPOLOGY, free_base_port
from yidi_harness.polling import TimedOut, eventually

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "examples" / "node-his-client"
YIDI = Path(sys.executable).with_name("yidi")
NODES = len(DEMO_TOPOLOGY.nodes)
PORT_CEILING = 32_000
"""Every demo port stays below Linux's ephemeral range (see yidi_harness.federation._PLANNED_PORTS)."""
READY_WITHIN_S = 180
INSTITUTION = "H11010100001"
OTHER_INSTITUTION = "H11010200001"
"""Another Beijing hospital of the sample data, with a certificate of its own in the demo's folder."""
BILL_TOTAL = Decimal("64.29")
"""The worked example's two diabetes drugs, 32.52 + 31.77 yuan."""


@dataclass(frozen=True)
class Demo:
    """A running demo federation: the Beijing node's address and the certificate folder."""

    beijing: str
    certs: Path


def _node_tools() -> None:
    """Node.js, npm and the client's packages, or a skip (a failure in CI) saying what is missing."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        message = f"{' and '.join(missing)} not installed: the Node.js HIS client cannot run"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    subprocess.run([str(REPO / "scripts" / "ensure-node-client")], check=True, timeout=300)


def _base_port() -> int:
    """A base port whose ten consecutive ports are free and below the ephemeral range."""
    for _ in range(20):
        base = free_base_port(NODES)
        if base + NODES <= PORT_CEILING:
            return base
    raise OSError(f"found no {NODES} consecutive free ports below {PORT_CEILING}")


def _wait_until_ready(demo: subprocess.Popen[bytes], log: Path) -> str:
    """The demo's output once it says it keeps running; fails if it exits or takes too long."""

    def ready() -> str | None:
        out = log.read_text(encoding="utf-8", errors="replace")
        if "Press Ctrl-C to stop." in out:
            return out
        if demo.poll() is not None:
            pytest.fail(f"yidi demo exited with {demo.returncode} before it was ready:\n{out[-4000:]}")
        return None

    try:
        return eventually(ready, within_s=READY_WITHIN_S, interval_s=0.5, what="the demo keeps running")
    except TimedOut:
        pytest.fail(f"yidi demo not ready within {READY_WITHIN_S} s:\n{log.read_text()[-4000:]}")


def _stop(demo: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as an operator would; killed if it has not stopped within a minute."""
    if demo.poll() is None:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait(timeout=30)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    _node_tools()
    folder = tmp_path_factory.mktemp("node-his-client")
    log = folder / "demo.log"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "COLUMNS": "200"}  # no stray YIDI_* settings
    with log.open("wb") as sink:  # a file, not a pipe: an unread pipe would fill and block the demo
        process = subprocess.Popen(
            [
                *(str(YIDI), "demo", "--keep-running"),
                *("--base-port", str(_base_port()), "--data-dir", str(folder / "data")),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        out = _wait_until_ready(process, log)
        beijing = re.search(r"^\s*110000 beijing\s+(\S+)\s*$", out, re.MULTILINE)
        certs = re.search(r"^Certificates: (\S+) \(CA", out, re.MULTILINE)
        assert beijing and certs, f"the demo names the Beijing node and its certificates:\n{out[-3000:]}"
        yield Demo(beijing[1], Path(certs[1]))
    finally:
        _stop(process)


def _his(demo: Demo, *extra: str) -> subprocess.CompletedProcess[str]:
    """One run of the Node.js client as institution H11010100001 at the Beijing node."""
    return subprocess.run(
        [
            *("node", str(CLIENT / "his_client.js"), "--address", demo.beijing),
            *("--certs", str(demo.certs), "--institution", INSTITUTION, *extra),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )


def _slip(out: str) -> dict[str, str]:
    """The settlement slip's rows: label → value."""
    slip = out.split("settlement slip (结算单)", 1)[1].split("explanation (结算说明)", 1)[0]
    return {row[1]: row[2] for row in re.finditer(r"^ +(\S.*?\S) {2,}(\S.*)$", slip, re.MULTILINE)}


def _yuan(text: str) -> Decimal:
    assert re.fullmatch(r"-?\d+\.\d{2}", text), f"{text!r} is yuan with two decimals"
    return Decimal(text)


def test_the_client_settles_a_visit_over_mtls_and_prints_the_slip(demo: Demo) -> None:
    run = _his(demo)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"over mTLS as {INSTITUTION}" in run.stdout
    slip = _slip(run.stdout)
    assert re.fullmatch(r"110000\d{24}", slip["setl_id"]), slip
    assert re.fullmatch(rf"{INSTITUTION}\d{{18}}", slip["medins_setl_id"]), slip
    assert slip["institution"] == INSTITUTION
    assert slip["regions"] == "insured 131000 -> treated 110101 (cross-province)"
    total = _yuan(slip["total (medfee_sumamt)"])
    fund = _yuan(slip["fund pays (fund_pay_sumamt)"])
    personal = _yuan(slip["personal pays (psn_part_amt)"])
    assert total == BILL_TOTAL
    assert fund + personal == total
    assert _yuan(slip["account (acct_pay)"]) + _yuan(slip["cash (psn_cash_pay)"]) == personal
    assert fund > 0 and personal > 0
    assert "131000195402270170" not in run.stdout, "the node answers with masked ID numbers"


def test_resending_the_stored_requests_returns_the_same_settlement(demo: Demo, tmp_path: Path) -> None:
    requests = tmp_path / "requests.json"
    first = _his(demo, "--requests", str(requests))
    assert first.returncode == 0, first.stdout + first.stderr
    assert requests.is_file(), "the mutating requests are written down before they are sent"
    again = _his(demo, "--requests", str(requests))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "settle: stored request resent" in again.stdout
    assert "pre-settlement" not in again.stdout
    before, after = _slip(first.stdout), _slip(again.stdout)
    for row in (
        "setl_id",
        "medins_setl_id",
        "mdtrt_id",
        "total (medfee_sumamt)",
        "fund pays (fund_pay_sumamt)",
    ):
        assert after[row] == before[row], row
    fresh = _his(demo)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert _slip(fresh.stdout)["setl_id"] != before["setl_id"], (
        "without the stored requests: a new settlement"
    )


def test_an_institution_acting_for_another_is_refused(demo: Demo) -> None:
    run = _his(demo, "--act-as", OTHER_INSTITUTION)
    assert run.returncode == 1, run.stdout + run.stderr
    refused = re.search(r"^refused: (\w+) (\w+)$", run.stdout, re.MULTILINE)
    assert refused, run.stdout
    assert refused[1] == "PERMISSION_DENIED"
    assert refused[2].startswith("PERMISSION_DENIED"), "the ErrorInfo reason from grpc-status-details-bin"
    assert "settlement slip" not in run.stdout


def test_a_plaintext_client_gets_no_answer_from_an_mtls_node(demo: Demo) -> None:
    run = _his(demo, "--insecure")
    assert run.returncode == 1, run.stdout + run.stderr
    assert re.search(r"^failed: UNAVAILABLE \(no ErrorInfo", run.stdout, re.MULTILINE), run.stdout


def test_the_clients_own_unit_tests_pass() -> None:
    _node_tools()
    run = subprocess.run(
        ["node", "--test", str(CLIENT / "test")], capture_output=True, text=True, timeout=120, cwd=CLIENT
    )
    assert run.returncode == 0, run.stdout + run.stderr
