"""A federation of node processes: wired from generated configurations, settling, surviving kill -9.

Each node is `yidi serve` in its own process (insecure on SQLite files, its links through
the delay proxy; mutual TLS on PostgreSQL, direct links), the samples load through the stubs as into the in-process federation, a HIS
settles a visit one hop away, and the insured node, killed with SIGKILL mid-life, comes back
on the same port with its data and settles again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from yidi.filing.v1 import filing_pb2
from yidi.type.v1 import filing_category_pb2
from yidi_core.codes import NATIONAL_REGION
from yidi_harness.federation import NodeSpec, Topology, init_demo_pki, load_sample_data
from yidi_harness.polling import eventually
from yidi_harness.processes import ProcessFederation
from yidi_harness.stories import LANGFANG_RETIREE, BillLine, Encounter, Stage, StoryResult, file_for, treat
from yidi_runtime.config import Role
from yidi_testing import health_of

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = Topology(
    (
        NodeSpec(NATIONAL_REGION, Role.NATIONAL, "national"),
        NodeSpec("130000", Role.PROVINCE, "hebei", NATIONAL_REGION),
        NodeSpec("131000", Role.CITY, "langfang", "130000"),
    )
)
SHIJIAZHUANG_HOSPITAL = "H13010500001"


@pytest.fixture(
    params=[
        pytest.param("insecure-sqlite"),
        pytest.param("mtls-postgresql", marks=pytest.mark.postgres),
    ]
)
def federation(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProcessFederation]:
    secure = request.param.startswith("mtls")
    pki = init_demo_pki(tmp_path / "certs", TOPOLOGY) if secure else None
    databases: Callable[[], str] | None = (
        request.getfixturevalue("postgres_databases") if request.param.endswith("postgresql") else None
    )
    delay_ms = 0.0 if secure else 5.0
    with ProcessFederation(TOPOLOGY, tmp_path, databases, pki=pki, hop_delay_ms=delay_ms) as started:
        load_sample_data(started)
        yield started


def settle_in_shijiazhuang(stage: Stage, *, file: bool) -> StoryResult:
    """The Langfang retiree's short stay in a Shijiazhuang hospital, verify to settle (filed first if asked)."""
    result = StoryResult(0, "", "", LANGFANG_RETIREE, SHIJIAZHUANG_HOSPITAL)
    if file:
        file_for(
            stage,
            result,
            treatment_admdvs="130000",
            category=filing_category_pb2.FILING_CATEGORY_TEMPORARY_OTHER,
            channel=filing_pb2.FILING_CHANNEL_NATIONAL_APP,
        )
    stay = Encounter(
        patient=LANGFANG_RETIREE,
        fixmedins_code=SHIJIAZHUANG_HOSPITAL,
        med_type="21",
        service_date=stage.today,
        begin_time=stage.earlier_today(2),
        end_time=stage.now,
        diagnoses=("I10.x00",),
        bill=(BillLine("001102000010000", "床位费", "1", "60.00"),),
    )
    treat(stage, result, stay)
    return result


def settle_once_the_link_is_back(federation: ProcessFederation, within_s: float = 40.0) -> StoryResult:
    """A stay settled as soon as Hebei's link to the restarted node carries calls again (bounded).

    Hebei saw its peer vanish: until its reconnect backoff and circuit breaker let calls
    through again, it answers UNAVAILABLE, and the HIS tries the visit again.
    """

    def settled() -> StoryResult | None:
        try:
            return settle_in_shijiazhuang(Stage(federation, datetime.now(UTC)), file=False)
        except grpc.RpcError as error:
            if error.code() is not grpc.StatusCode.UNAVAILABLE:  # type: ignore[attr-defined]
                raise
            return None

    return eventually(
        settled, within_s=within_s, interval_s=0.5, what="Hebei's link to the node carries calls"
    )


def test_a_node_killed_with_sigkill_restarts_on_its_port_with_its_data(federation: ProcessFederation) -> None:
    stage = Stage(federation, datetime.now(UTC))
    first = settle_in_shijiazhuang(stage, file=True)
    assert first.ok and first.settlement is not None, first.failure or first.steps
    langfang = federation.pid("131000")

    assert federation.kill("131000") == -signal.SIGKILL
    assert not federation.processes["131000"].running
    federation.restart("131000")

    assert federation.pid("131000") != langfang
    assert health_of(federation.channel("131000"), "") == health_pb2.HealthCheckResponse.SERVING
    # The filing made before the kill is still there: the second stay settles without one.
    second = settle_once_the_link_is_back(federation)
    assert second.ok and second.settlement is not None, second.failure or second.steps
    assert second.settlement.setl_id != first.settlement.setl_id


def test_stop_ends_every_node_gracefully(tmp_path: Path) -> None:
    federation = ProcessFederation(TOPOLOGY, tmp_path, log_level="info").start()
    processes = [node.process for node in federation.processes.values()]
    federation.stop()
    assert [process.returncode if process else None for process in processes] == [0, 0, 0]
    assert "stop requested" in federation.log_of(NATIONAL_REGION).read_text()


def bench_script(name: str, *arguments: str, timeout_s: float = 110) -> subprocess.CompletedProcess[str]:
    """Run a script of ``bench/`` to its end, its output captured."""
    return subprocess.run(
        [sys.executable, str(REPO / "bench" / name), *arguments],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


@pytest.mark.timeout(120)
def test_the_settle_benchmark_prints_ratios_and_writes_json(tmp_path: Path) -> None:
    written = tmp_path / "settle.json"
    run = bench_script(
        "settle_bench.py",
        *("--quick", "--count", "3", "--concurrency", "1", "--echo-count", "20", "--json", str(written)),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "p99 ratio" in run.stdout and "echo chain" in run.stdout
    assert "Handler CPU per settlement" in run.stdout
    report = json.loads(written.read_text())
    assert set(report["routes"]) == {"1-hop", "2-hop", "4-hop"}
    for route in report["routes"].values():
        figure = route["c1"]
        assert figure["settle"]["completed"] == 3 and not figure["settle"]["refused"]
        assert figure["settle"]["prepare"]["completed"] == 3 and not figure["settle"]["prepare"]["refused"]
        assert figure["ratios"]["throughput"] > 0 and figure["ratios"]["settle_p99"] > 0
    by_node = report["routes"]["4-hop"]["c1"]["settle"]["handler_cpu_ms_per_call"]
    assert by_node["jiaxing"]["Settle"] > 0 and by_node["langfang"]["ApplySettlement"] > 0
    assert by_node["zhejiang"]["ApplySettlement"] > 0  # relayed on the way


@pytest.mark.timeout(120)
def test_the_soak_reports_memory_and_latency_drift_per_window(tmp_path: Path) -> None:
    written = tmp_path / "soak.json"
    run = bench_script(
        "soak.py",
        *("--minutes", "0.2", "--window", "4", "--concurrency", "3", "--persons", "3"),
        *("--insecure", "--json", str(written)),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "soak drift" in run.stdout
    report = json.loads(written.read_text())
    assert len(report["windows"]) >= 2
    assert all(not window["refused"] for window in report["windows"])
    assert sum(window["calls"].get("visit 1-hop", 0) for window in report["windows"]) > 0
    assert set(report["drift"]["memory"]) == {
        "national",
        "hebei",
        "zhejiang",
        "guangdong",
        "langfang",
        "jiaxing",
    }


def test_a_profiled_federation_leaves_a_speedscope_profile_per_node(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    with ProcessFederation(TOPOLOGY, tmp_path, profile_dir=profiles) as federation:
        pids = {region: federation.pid(region) for region in federation.processes}
        for pid in pids.values():  # the node itself, not its profiler
            assert "serve" in Path(f"/proc/{pid}/cmdline").read_text()
    written = sorted(profiles.glob("*.speedscope.json"))
    assert [path.name.split("-")[0] for path in written] == sorted(pids)
    for path in written:
        assert json.loads(path.read_text())["profiles"][0]["samples"]


def worktrees() -> set[str]:
    """The checkout's worktrees now (other comparisons may run beside this one)."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "worktree", "list", "--porcelain"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.removeprefix("worktree ") for line in listed.splitlines() if line.startswith("worktree ")}


@pytest.mark.timeout(240)
def test_comparing_two_revisions_alternates_their_own_benches_and_prints_the_change() -> None:
    inside = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, check=False)
    if inside.returncode != 0:
        pytest.skip("comparing revisions needs a git checkout")
    before = worktrees()
    run = bench_script(
        "compare_revisions.py",
        *("HEAD~0", "HEAD", "--rounds", "1", "--count", "3", "--concurrency", "1", "--echo-count", "20"),
        timeout_s=230,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "round 1: HEAD~0 measured" in run.stdout and "round 1: HEAD measured" in run.stdout
    assert "all nodes" in run.stdout and "settlements/s" in run.stdout
    assert not [tree for tree in worktrees() - before if "yidi-compare-" in tree]  # both checkouts removed
