"""A bounded soak: mixed hospital load on a federation of node processes, and how it drifts.

Starts the settle bench's federation (a process per node, SQLite by default, mutual TLS),
files ``--persons`` patients per route, then for ``--minutes`` (10 by default, never more
than 60) runs ``--concurrency`` hospital windows doing a mix of work:

* whole visits (verify, register, upload, discharge, settle) over 1, 2 and 4 node hops;
* a pre-settlement before some of them, and a refund (ReverseSettlement) of some settled ones;
* reads: GetSettlement and ListSettlements of what was settled.

Every ``--window`` seconds it records each node process's resident memory, the calls done
and their latency percentiles. At the end it prints the windows and the drift — memory
(first window to last, and the slope per 10 minutes) and latency (the last window's p50 and
p99 against the first's) — and writes everything as JSON (``--json``, by default
``bench/results/soak-<time>.json``). A refusal or error is counted by reason, never hidden.

    .venv/bin/python bench/soak.py                         # 10 minutes
    .venv/bin/python bench/soak.py --minutes 1 --window 10 # a short look
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console
from rich.table import Table
from settle_bench import RESULTS, ROUTES, TOPOLOGY, Route, databases, encounter, enrol_and_file

from measure import NO_QUOTAS, machine, percentiles
from yidi.settlement.v1 import settlement_pb2, settlement_service_pb2
from yidi_harness.federation import init_demo_pki, load_sample_data
from yidi_harness.processes import ProcessFederation
from yidi_harness.stories import Patient, Stage, Window, refusal_reason

_DEADLINE_S = 60.0
_MAX_MINUTES = 60.0


@dataclass
class Tally:
    """What the workers did in one window: latencies by operation, refusals by reason."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)

    def add(self, operation: str, milliseconds: float) -> None:
        self.latencies.setdefault(operation, []).append(milliseconds)


def resident_mb(pid: int) -> float:
    """A process's resident memory (``VmRSS``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Mix:
    """One hospital window's work: each call picks a visit, a read or a refund by weight."""

    def __init__(self, stage: Stage, route: Route, patients: list[Patient], seed: int) -> None:
        self.window: Window = stage.window(route.hospital)
        self.stays = [encounter(stage, route, patient) for patient in patients]
        self.settled: list[settlement_pb2.Settlement] = []
        self.random = random.Random(seed)
        self.route = route

    def timed(self, tally: Tally, operation: str, call: Any) -> Any:
        started = time.perf_counter()
        result = call()
        tally.add(operation, (time.perf_counter() - started) * 1000)
        return result

    def step(self, tally: Tally) -> None:
        """Do one thing; a refusal is counted, not raised."""
        roll = self.random.random()
        try:
            if self.settled and roll < 0.25:
                self.read(tally)
            elif self.settled and roll < 0.30:
                self.refund(tally)
            else:
                self.visit(tally, pre_settle=roll < 0.5)
        except grpc.RpcError as error:
            tally.refused[f"{refusal_reason(error)}: {error.details()[:80]}"] += 1

    def visit(self, tally: Tally, *, pre_settle: bool) -> None:
        stay = self.random.choice(self.stays)
        window = self.window
        started = time.perf_counter()
        person = window.verify(stay)
        registered = window.register(stay, person)
        window.upload(stay, registered)
        registered = window.discharge(stay, registered)
        if pre_settle:
            self.timed(tally, "pre_settle", lambda: window.pre_settle(stay, registered))
        request = window.settle_request(stay, registered, window.request_id())
        settled = self.timed(
            tally, f"settle {self.route.name}", lambda: window.stub.Settle(request, timeout=_DEADLINE_S)
        )
        tally.add(f"visit {self.route.name}", (time.perf_counter() - started) * 1000)
        self.settled.append(settled.settlement)

    def read(self, tally: Tally) -> None:
        window = self.window
        setl_id = self.random.choice(self.settled).setl_id
        self.timed(
            tally,
            "get_settlement",
            lambda: window.stub.GetSettlement(
                settlement_service_pb2.GetSettlementRequest(envelope=window.envelope(), setl_id=setl_id),
                timeout=_DEADLINE_S,
            ),
        )
        self.timed(
            tally,
            "list_settlements",
            lambda: window.stub.ListSettlements(
                settlement_service_pb2.ListSettlementsRequest(envelope=window.envelope(), page_size=20),
                timeout=_DEADLINE_S,
            ),
        )

    def refund(self, tally: Tally) -> None:
        window = self.window
        settled = self.settled.pop(self.random.randrange(len(self.settled)))
        self.timed(
            tally,
            "reverse",
            lambda: window.stub.ReverseSettlement(
                settlement_service_pb2.ReverseSettlementRequest(
                    request_id=window.request_id(),
                    envelope=window.envelope(settled.insuplc_admdvs),
                    setl_id=settled.setl_id,
                    mdtrt_id=settled.mdtrt_id,
                    psn_no=settled.psn_no,
                ),
                timeout=_DEADLINE_S,
            ),
        )


def soak(
    federation: ProcessFederation, mixes: list[Mix], minutes: float, window_s: float, console: Console
) -> list[dict[str, Any]]:
    """Run the mixes until the time is up; one record per window."""
    deadline = time.monotonic() + minutes * 60
    lock = threading.Lock()
    current = Tally()
    stop = threading.Event()
    failures: list[BaseException] = []

    def work(mix: Mix) -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            tally = Tally()
            try:
                mix.step(tally)
            except Exception as error:  # a defect of the soak itself: stop everything and say so
                failures.append(error)
                stop.set()
                raise
            with lock:
                for operation, values in tally.latencies.items():
                    current.latencies.setdefault(operation, []).extend(values)
                current.refused.update(tally.refused)

    workers = [threading.Thread(target=work, args=(mix,), daemon=True) for mix in mixes]
    for worker in workers:
        worker.start()
    windows: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        for index in itertools.count():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or stop.is_set():
                break
            time.sleep(min(window_s, remaining))
            with lock:
                done, current = current, Tally()
            record = {
                "window": index,
                "elapsed_s": round(time.monotonic() - started, 1),
                "memory_mb": {
                    TOPOLOGY[region].name: round(resident_mb(federation.pid(region)), 1)
                    for region in federation.processes
                },
                "calls": {operation: len(values) for operation, values in done.latencies.items()},
                "latency_ms": {
                    operation: percentiles(values) for operation, values in done.latencies.items()
                },
                "refused": dict(done.refused),
            }
            windows.append(record)
            visits = sum(count for name, count in record["calls"].items() if name.startswith("visit"))
            console.print(
                f"window {index}: {visits} visits, {sum(record['memory_mb'].values()):.0f} MB in the nodes, "
                f"refused {record['refused'] or 'none'}",
                highlight=False,
            )
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=_DEADLINE_S)
    if failures:
        raise RuntimeError("a soak worker failed") from failures[0]
    return windows


def drift(windows: list[dict[str, Any]], minutes: float) -> dict[str, Any]:
    """Memory and latency of the last window against the first (the first is a warm-up, so both are shown)."""
    if len(windows) < 2:
        return {}
    first, last = windows[0], windows[-1]
    span_min = max((last["elapsed_s"] - first["elapsed_s"]) / 60, 1e-9)
    memory = {
        node: {
            "first_mb": first["memory_mb"][node],
            "last_mb": last["memory_mb"][node],
            "mb_per_10_min": round((last["memory_mb"][node] - first["memory_mb"][node]) / span_min * 10, 2),
        }
        for node in first["memory_mb"]
    }
    latency = {}
    for operation, figures in last["latency_ms"].items():
        before = first["latency_ms"].get(operation)
        if before:
            latency[operation] = {
                f"{key.removesuffix('_ms')}_ratio": round(figures[key] / before[key], 2)
                if before[key]
                else None
                for key in ("p50_ms", "p99_ms")
            }
    return {"minutes": minutes, "memory": memory, "latency": latency}


def report(windows: list[dict[str, Any]], summary: dict[str, Any]) -> Table:
    """The drift as a table: memory per node, then latency ratios per operation."""
    grid = Table("what", "first window", "last window", "drift", title="soak drift (last window vs first)")
    for node, figures in summary.get("memory", {}).items():
        grid.add_row(
            f"{node} memory",
            f"{figures['first_mb']:.1f} MB",
            f"{figures['last_mb']:.1f} MB",
            f"{figures['mb_per_10_min']:+.2f} MB / 10 min",
        )
    for operation, ratios in summary.get("latency", {}).items():
        first = windows[0]["latency_ms"][operation]
        last = windows[-1]["latency_ms"][operation]
        grid.add_row(
            f"{operation} p50 / p99",
            f"{first['p50_ms']:.1f} / {first['p99_ms']:.1f} ms",
            f"{last['p50_ms']:.1f} / {last['p99_ms']:.1f} ms",
            f"×{ratios['p50_ratio']} / ×{ratios['p99_ratio']}",
        )
    return grid


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="how long to load (default 10, at most 60)"
    )
    parser.add_argument("--window", type=float, default=60.0, help="seconds per measured window (default 60)")
    parser.add_argument(
        "--concurrency", type=int, default=6, help="hospital windows working at once (default 6)"
    )
    parser.add_argument("--persons", type=int, default=12, help="patients per route (default 12)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", help="an existing PostgreSQL server for --database postgresql")
    parser.add_argument("--insecure", action="store_true", help="plaintext nodes instead of mutual TLS")
    parser.add_argument(
        "--json", type=Path, help="where to write the figures (default bench/results/soak-<time>.json)"
    )
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    minutes = min(max(args.minutes, 0.05), _MAX_MINUTES)
    window_s = min(max(args.window, 1.0), minutes * 60)
    concurrency = min(max(args.concurrency, 1), 64)
    console = Console(width=None if sys.stdout.isatty() else 110)
    facts = {
        "machine": machine(),
        "database": args.database,
        "transport": "insecure" if args.insecure else "mutual TLS",
        "minutes": minutes,
        "window_s": window_s,
        "concurrency": concurrency,
        "persons_per_route": args.persons,
    }
    console.print(", ".join(f"{key} {value}" for key, value in facts.items()), highlight=False)
    with (
        tempfile.TemporaryDirectory(prefix="yidi-soak-") as folder,
        databases(args.database, args.postgres_url) as database_url_for,
    ):
        pki = None if args.insecure else init_demo_pki(Path(folder) / "certs", TOPOLOGY)
        with ProcessFederation(
            TOPOLOGY, Path(folder), database_url_for, pki=pki, log_level="warning", config=NO_QUOTAS
        ) as federation:
            load_sample_data(federation)
            stage = Stage(federation, datetime.now(UTC) - timedelta(minutes=1))
            patients = {route.name: enrol_and_file(stage, route, args.persons) for route in ROUTES}
            # Each window keeps to its own patients, so no two windows queue on one person's row.
            mixes = []
            for worker in range(concurrency):
                route = ROUTES[worker % len(ROUTES)]
                mine = patients[route.name][worker // len(ROUTES) :: max(concurrency // len(ROUTES), 1)]
                mixes.append(Mix(stage, route, mine or patients[route.name], seed=worker))
            windows = soak(federation, mixes, minutes, window_s, console)
    summary = drift(windows, minutes)
    console.print(report(windows, summary))
    target = args.json or RESULTS / f"soak-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        json.dumps({**facts, "windows": windows, "drift": summary}, indent=2, ensure_ascii=False)
    )
    console.print(f"written to {target}")


if __name__ == "__main__":
    main()
