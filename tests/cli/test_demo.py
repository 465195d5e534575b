"""`yidi demo`, the README's main job: a federation in one process playing the seed stories, reconciling and clearing.

It runs on mutual TLS with a development PKI (made in its data folder, or given with
--certs), or plaintext when told --insecure; kept running, another program connects to it
as an institution with that PKI's certificate.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from yidi_harness.federation import DEMO_TOPOLOGY, free_base_port

YIDI = Path(sys.executable).with_name("yidi")
HIS_CLIENT = Path(__file__).resolve().parents[2] / "examples" / "his_client.py"
ENV = {"PATH": "/usr/bin:/bin", "COLUMNS": "200"}
NODES = len(DEMO_TOPOLOGY.nodes)


def _story(out: str, number: int) -> str:
    """The panel of one story, up to the next one (or the endings)."""
    section = out.split(f"Story {number} ·", 1)[1]
    return re.split(r"Story \d ·|Reconciliation \(对账\)", section, maxsplit=1)[0]


def _ending(out: str, title: str, following: str) -> str:
    """The panel of one of the demo's endings, up to the next heading."""
    return out.split(title, 1)[1].split(following, 1)[0]


def test_demo_plays_every_seed_story_and_prints_their_slips(tmp_path: Path) -> None:
    run = subprocess.run(
        [str(YIDI), "demo", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr
    out = run.stdout
    assert f"certificates in {tmp_path / 'data' / 'certs'}\n" in out and "(loopback, mutual TLS)" in out
    assert (tmp_path / "data" / "certs" / "institutions" / "H33040200001.pem").exists()
    for region in ("000000", "110000", "131000", "330400", "630000"):
        assert re.search(rf"{region}\s*│.*127\.0\.0\.1:\d+", out), f"node {region} listed with its address"
    assert "330400: 2 institutions" in out and "131000: policy 131000/310@2022-01-01" in out

    worked_example = _story(out, 1)
    assert re.search(r"fund pays \(fund_pay_sumamt\)\s*│\s*48\.89\s*│", worked_example)
    assert re.search(r"patient's share \(psn_part_amt\)\s*│\s*15\.40\s*│", worked_example)
    assert "北京协和医院（示例） H11010100001" in worked_example
    assert "131000 → treated 110101 (cross-province)" in worked_example
    assert re.search(r"setl_id 110000\w{24}", worked_example)
    assert "catalogue 110000@2022-01-01" in worked_example

    qinghai = _story(out, 2)
    assert "answer is lost" in qinghai and "retried with the same request_id" in qinghai
    assert "flagged for audit" in qinghai
    assert "✓ the national journal holds exactly one entry" in qinghai
    assert "VerifyPerson refused: NOT_FILED" in _story(out, 3)
    assert "FILING_STATE_APPROVED" in _story(out, 4)
    assert "institutions named on the filing: none" in _story(out, 5)
    assert "via FILING_CHANNEL_NATIONAL_APP at the national node" in _story(out, 4)
    assert "via FILING_CHANNEL_HOSPITAL at the hospital's own node" in _story(out, 3)
    suspended = _story(out, 6)
    assert "PublishSuspension at the national node" in suspended
    assert "refused: INSTITUTION_SUSPENDED" in suspended and "node 330400 settles again" in suspended
    ticket = _story(out, 7)
    assert "OpenTicket at node 330400 by the hospital" in ticket and "AnswerTicket at node 630000" in ticket
    assert "✓ the ticket is closed at both places" in ticket
    reimbursed = _story(out, 8)
    assert "GetBill at node 131000 by Langfang's operator: 4 lines classified" in reimbursed
    assert "ReimburseSelfPayBill at node 131000 with policy 131000/310" in reimbursed

    reconciliation = _ending(out, "Reconciliation (对账) · the Qinghai hole", "Monthly clearing (清算)")
    msgid = re.search(r"the national journal lost the entry (H33040200001\d+)", reconciliation)
    assert msgid, reconciliation
    assert re.search(rf"MISSING_AT_NATIONAL\s*│ {msgid[1]}", reconciliation)
    assert "MISSING_AT_INSURED" not in reconciliation  # the Qinghai node asked Jiaxing and confirmed it
    assert (
        "asked the Jiaxing node, which had recorded the settlement: confirmed, not voided" in reconciliation
    )
    assert (
        "✓ the hole is found" in reconciliation and "✓ reconciled again: no difference open" in reconciliation
    )
    assert "RepairDiscrepancies: 1 repaired, 0 left for an operator" in reconciliation

    clearing = _ending(out, "Monthly clearing (清算) ·", "The seed stories")
    period = re.search(
        r"RunClearing (\d{4}-\d{2}): run \S+ JOB_STATE_SUCCEEDED, 5 journal entries counted", clearing
    )
    assert period, clearing
    for province in ("110000", "120000", "140000", "330000", "440000", "630000"):
        assert f"Statement {period[1]}/{province} · issued" in clearing
    assert f"Statement {period[1]}/130000 · confirmed" in clearing
    assert "✓ Hebei confirms its statement within its confirmation days" in clearing
    qinghai_pays = clearing.split(f"Statement {period[1]}/630000", 1)[1]
    assert re.search(r"630000 → 330000\s*│ payable\s*│\s*1 │", qinghai_pays)
    assert re.search(r"│ all provinces\s*│.*│\s*0\.00 │", clearing)
    assert "✓ the net positions sum to zero" in clearing and "✓ the ledger sums to zero" in clearing

    summary = out.split("The seed stories", 1)[1]
    assert re.search(r"│ 1 │.*│ settled\s*│\s*48\.89 │\s*15\.40 │ 110000", summary)
    assert re.search(r"│ 3 │.*│ refused NOT_FILED → settled", summary)
    assert re.search(r"│ 6 │.*│ refused INSTITUTION_SUSPENDED", summary)
    assert re.search(r"│ 7 │.*│ ticket opened, answered, closed \(3 messages\)", summary)
    assert re.search(r"│ 8 │.*│ refused NOT_FILED → reimbursed online\s*│\s*[1-9][\d.]* │", summary)
    assert re.search(
        r"│ jiaxing\s*│ H33040200001 │\s*2 │\s*1 │\s*0 │\s*1 │\s*50\.00% │ NOT_FILED \(manual\) 1", out
    )
    assert re.search(r"│ reconciliation [\d-]+.*│ 1 differences found, 1 repaired, none left", summary)
    assert re.search(rf"│ clearing {period[1]}\s*│ 7 statements, nets sum to 0\.00\s*│", summary)
    assert "every story behaved as the domain brief says it must" in out
    assert "reconciliation found and repaired the Qinghai hole, and the month cleared to zero" in out
    assert "✗" not in out
    for certno in ("131000195402270170", "440300195603120118", "140100195811040153"):
        assert certno not in out, "ID numbers are printed masked"
    assert (tmp_path / "data" / "110000-beijing" / "settlement.db").exists()


def test_demo_insecure_still_plays_everything_with_a_warning(tmp_path: Path) -> None:
    run = subprocess.run(
        [str(YIDI), "demo", "--insecure"], capture_output=True, text=True, timeout=300, env=ENV
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr
    assert "warning: --insecure" in run.stdout and "insecure: plaintext" in run.stdout
    assert "every story behaved as the domain brief says it must" in run.stdout and "✗" not in run.stdout


def test_demo_refuses_certificates_lacking_its_holders(tmp_path: Path) -> None:
    made = subprocess.run(
        [str(YIDI), "certs", "init", "--out", str(tmp_path / "pki"), "--node", "000000"],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )
    assert made.returncode == 0, made.stderr
    run = subprocess.run(
        [str(YIDI), "demo", "--certs", str(tmp_path / "pki")],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )
    assert run.returncode == 2
    said = " ".join(run.stdout.split())  # the console wraps a long path onto the next line
    assert f"yidi certs init --demo --out {tmp_path / 'pki'}" in said


def test_demo_refuses_a_data_dir_already_in_use(tmp_path: Path) -> None:
    (tmp_path / "leftover.db").write_bytes(b"")
    run = subprocess.run(
        [str(YIDI), "demo", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60, env=ENV
    )
    assert run.returncode == 2
    assert "is not empty" in run.stdout


def test_keep_running_leaves_the_federation_up_for_a_his_with_its_certificate_until_interrupted(
    tmp_path: Path,
) -> None:
    certs = tmp_path / "certs"
    made = subprocess.run(
        [str(YIDI), "certs", "init", "--demo", "--out", str(certs)],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )
    assert made.returncode == 0, made.stderr
    base = free_base_port(NODES)
    log = (tmp_path / "demo.log").open(
        "w"
    )  # a file, not a pipe: an unread pipe would fill and block the demo
    demo = subprocess.Popen(
        [
            *(str(YIDI), "demo", "--keep-running", "--base-port", str(base)),
            *("--data-dir", str(tmp_path / "data"), "--certs", str(certs)),
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=ENV,
    )
    try:
        assert demo.stdout is not None
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
        out = "".join(lines)
        hint = re.search(rf"examples/his_client\.py --address 127\.0\.0\.1:{base + 1} (.*)", out)
        assert hint, out[-3000:]
        assert f"Certificates: {certs}" in out
        assert hint[1].split() == [
            *("--institution", "H11010100001"),
            *("--cert", str(certs / "institutions" / "H11010100001.pem")),
            *("--key", str(certs / "institutions" / "H11010100001.key")),
            *("--ca", str(certs / "ca.pem")),
        ]
        with socket.create_connection(("127.0.0.1", base), timeout=5):
            pass  # the national node still listens
        his = subprocess.run(
            [sys.executable, str(HIS_CLIENT), "--address", f"127.0.0.1:{base + 1}", *hint[1].split()],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert his.returncode == 0, his.stdout + his.stderr
        assert re.search(r"settled 110000\w{24}", his.stdout)
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 0
        assert "stopping the federation" in demo.stdout.read()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        log.close()
