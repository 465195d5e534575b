"""Settlement across the region tree, node per process: throughput and latency per route, against a bare chain.

Starts a federation of real processes (:class:`yidi_harness.processes.ProcessFederation`: each
node is `yidi serve` in its own process on loopback, SQLite files by default, mutual TLS
with a development PKI made for the run), loads the sample data, enrols and files
``--persons`` insured persons per route, then, at each concurrency, prepares visits through
the HIS stub — VerifyPerson, RegisterVisit, UploadFeeItems, DischargeVisit, timed as one
figure — and settles them, timing Settle alone: each worker settles its own patients, so
concurrent settlements do not queue on one person's row. Routes, by node-to-node hops (the HIS's call to its own
node is not a hop):

* **1 hop** (in-province) — a Langfang insured in a Shijiazhuang hospital: Hebei → Langfang;
* **2 hops** — a Shenzhen insured in Shijiazhuang: Hebei → national → Guangdong;
* **4 hops** — a Langfang insured in a Jiaxing hospital: Jiaxing → Zhejiang → national →
  Hebei → Langfang (city → province → national → province → city).

Each route runs at each ``--concurrency`` for at most ``--count`` visits and ``--seconds``
seconds. **In the same run** a bare gRPC echo chain of as many processes as the route has
nodes, with the Settle request's and response's sizes, the same transport security and the
same link delay, is measured at the same concurrency: the physical limit on this machine.
Every figure is printed with its ratio to that chain (throughput, and p99) and written as
JSON (``--json``, by default ``bench/results/settle-<time>.json``).

    .venv/bin/python bench/settle_bench.py                      # about 4 minutes on 2 cores
    .venv/bin/python bench/settle_bench.py --quick              # under a minute
    .venv/bin/python bench/settle_bench.py --hop-delay-ms 15    # a wide-area federation
    .venv/bin/python bench/settle_bench.py --database postgresql --insecure
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import grpc
from echo_chain import EchoChain, client_tls
from echo_server import ECHO_METHOD
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from measure import NO_QUOTAS, machine, percentiles
from yidi.settlement.v1 import settlement_service_pb2
from yidi_cli.node_client import open_channel
from yidi_core.codes import NATIONAL_REGION
from yidi_harness.federation import NodeSpec, Topology, init_demo_pki, load_sample_data
from yidi_harness.postgres_server import fresh_databases, postgres_server
from yidi_harness.processes import ProcessFederation
from yidi_harness.stories import BillLine, Encounter, Patient, Stage, Window, refusal_reason
from yidi_runtime.config import Role

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
TOPOLOGY = Topology(
    (
        NodeSpec(NATIONAL_REGION, Role.NATIONAL, "national"),
        NodeSpec("130000", Role.PROVINCE, "hebei", NATIONAL_REGION),
        NodeSpec("330000", Role.PROVINCE, "zhejiang", NATIONAL_REGION),
        NodeSpec("440000", Role.PROVINCE, "guangdong", NATIONAL_REGION),
        NodeSpec("131000", Role.CITY, "langfang", "130000"),
        NodeSpec("330400", Role.CITY, "jiaxing", "330000"),
    )
)
"""The nodes the three routes pass through, and no others."""
SHIJIAZHUANG_HOSPITAL = "H13010500001"
JIAXING_HOSPITAL = "H33040200001"
BILL = (
    BillLine("001102000010000", "床位费", "1", "60.00"),
    BillLine("XJ01DDT071B002010100003", "注射用头孢曲松钠", "2", "15.00"),
    BillLine("002502000010000", "血糖测定", "1", "8.00"),
)
"""A short stay's bill, in every treatment province's sample catalogue."""
_DEADLINE_S = 60.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_OUTBOX_SETTLE_S = 0.5
"""After the settlements, how long the outboxes get to deliver what they set off before handler CPU is read."""
_TOP_METHODS = 4


@dataclass(frozen=True)
class Route:
    """A settlement route: its node hops, the nodes from the HIS's node to the insured node, who and where."""

    hops: int
    path: tuple[str, ...]
    hospital: str
    insured_region: str
    filed_for: str
    first_serial: int

    @property
    def name(self) -> str:
        """``1-hop``, ``2-hop``, …"""
        return f"{self.hops}-hop"

    @property
    def label(self) -> str:
        """The path as region names, e.g. ``hebei → langfang``."""
        return " → ".join(TOPOLOGY[region].name for region in self.path)


ROUTES = (
    Route(1, ("130000", "131000"), SHIJIAZHUANG_HOSPITAL, "131000", "130000", 1000),
    Route(2, ("130000", NATIONAL_REGION, "440000"), SHIJIAZHUANG_HOSPITAL, "440300", "130000", 1000),
    Route(
        4,
        ("330400", "330000", NATIONAL_REGION, "130000", "131000"),
        JIAXING_HOSPITAL,
        "131000",
        "330400",
        5000,
    ),
)


# -- the patients ---------------------------------------------------------------------------------


def enrol_and_file(stage: Stage, route: Route, count: int) -> list[Patient]:
    """``count`` employees of the route's insured region, enrolled and filed for the treatment place."""
    return stage.enrol_and_file(route.insured_region, route.filed_for, count, route.first_serial, "bench")


def encounter(stage: Stage, route: Route, patient: Patient) -> Encounter:
    """A short inpatient stay of ``patient`` at the route's hospital, admitted today and discharged now."""
    return Encounter(
        patient=patient,
        fixmedins_code=route.hospital,
        med_type="21",
        service_date=stage.today,
        begin_time=stage.earlier_today(2),
        end_time=stage.now,
        diagnoses=("I10.x00",),
        bill=BILL,
    )


def prepare(window: Window, stay: Encounter) -> tuple[settlement_service_pb2.SettleRequest, float]:
    """A visit ready to settle — VerifyPerson, RegisterVisit, UploadFeeItems, DischargeVisit — and its ms."""
    started = time.perf_counter()
    person = window.verify(stay)
    registered = window.register(stay, person)
    window.upload(stay, registered)
    registered = window.discharge(stay, registered)
    request = window.settle_request(stay, registered, window.request_id())
    return request, (time.perf_counter() - started) * 1000


def settle_once(window: Window, request: settlement_service_pb2.SettleRequest) -> tuple[float, int]:
    """Settle a prepared visit: (ms, response bytes)."""
    started = time.perf_counter()
    response = window.stub.Settle(request, timeout=_DEADLINE_S)
    return (time.perf_counter() - started) * 1000, response.ByteSize()


# -- measuring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """How much to measure: calls at most, seconds at most, concurrent callers."""

    count: int
    seconds: float
    concurrency: int


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def drive(
    load: Load, call: Callable[[int, int], dict[str, float]], servers: Mapping[str, int]
) -> dict[str, Any]:
    """Run ``call(worker, index)`` from ``load.concurrency`` threads until the count or the time is used up.

    Each call returns its timings in milliseconds by name; the answer holds their percentiles,
    the completed calls per second, refusals by reason, and the CPU milliseconds each
    completed call cost the ``servers`` (processes by name) and this client: on a shared
    machine a steadier measure of work than time.
    """
    cpu_before = {name: cpu_seconds(pid) for name, pid in servers.items()}
    client_before = time.process_time()
    samples: dict[str, list[float]] = {}
    refused: Counter[str] = Counter()
    issued = itertools.count()
    lock = threading.Lock()
    deadline = time.monotonic() + load.seconds

    def work(worker: int) -> None:
        for index in issued:
            if index >= load.count or time.monotonic() >= deadline:
                return
            try:
                timings = call(worker, index)
            except grpc.RpcError as error:  # counted and reported: an overloaded run says so
                with lock:
                    refused[refusal_reason(error)] += 1
                continue
            with lock:
                for name, value in timings.items():
                    samples.setdefault(name, []).append(value)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=load.concurrency) as pool:
        list(pool.map(work, range(load.concurrency)))
    elapsed = time.perf_counter() - started
    completed = max((len(values) for values in samples.values()), default=0)
    per_call = 1000 / max(completed, 1)
    by_server = {
        name: round((cpu_seconds(pid) - cpu_before[name]) * per_call, 2) for name, pid in servers.items()
    }
    return {
        "concurrency": load.concurrency,
        "completed": completed,
        "seconds": round(elapsed, 2),
        "per_second": round(completed / elapsed, 1),
        "refused": dict(refused),
        "cpu_ms_per_call": {
            "servers": round(sum(by_server.values()), 2),
            "client": round((time.process_time() - client_before) * per_call, 2),
            "by_server": by_server,
        },
        **{name: percentiles(values) for name, values in samples.items()},
    }


def handler_cpu(federation: ProcessFederation) -> dict[str, dict[str, float]]:
    """CPU seconds each node's handlers have spent so far, by method (``yidi_rpc_cpu_seconds_total``)."""
    spent: dict[str, dict[str, float]] = {}
    for region in federation.processes:
        by_method = spent.setdefault(TOPOLOGY[region].name, {})
        for family in text_string_to_metric_families(federation.metrics_of(region)):
            if family.name != "yidi_rpc_cpu_seconds":
                continue
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    method = sample.labels["grpc_method"]
                    by_method[method] = by_method.get(method, 0.0) + sample.value
    return spent


def handler_cpu_per_call(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], calls: int
) -> dict[str, dict[str, float]]:
    """Milliseconds of handler CPU per call, by node and method, most first (methods under 0.05 ms left out)."""
    figures: dict[str, dict[str, float]] = {}
    for node, methods in after.items():
        spent = {
            method: round((seconds - before.get(node, {}).get(method, 0.0)) * 1000 / max(calls, 1), 2)
            for method, seconds in methods.items()
        }
        figures[node] = dict(sorted(((m, ms) for m, ms in spent.items() if ms >= 0.05), key=lambda x: -x[1]))
    return {node: methods for node, methods in figures.items() if methods}


def settle_load(
    stage: Stage, federation: ProcessFederation, route: Route, patients: list[Patient], load: Load
) -> dict[str, Any]:
    """The route's settlements at ``load``: ``load.count`` visits prepared first, then only Settle timed.

    Preparing (VerifyPerson … DischargeVisit) runs at the same concurrency and is reported as
    its own figure. Worker ``w`` settles patients w, w + c, w + 2c, …, so concurrent
    settlements do not queue on one person's row at the insured node.
    """
    window = stage.window(route.hospital)
    nodes = {TOPOLOGY[region].name: federation.pid(region) for region in federation.processes}
    ready: dict[int, list[settlement_service_pb2.SettleRequest]] = {}
    ready_lock = threading.Lock()

    def prepare_one(worker: int, index: int) -> dict[str, float]:
        request, elapsed_ms = prepare(window, encounter(stage, route, patients[index % len(patients)]))
        with ready_lock:
            ready.setdefault(index % load.concurrency, []).append(request)
        return {"prepare": elapsed_ms}

    prepared = drive(Load(load.count, _DEADLINE_S * 5, load.concurrency), prepare_one, nodes)

    def settle_one(worker: int, _index: int) -> dict[str, float]:
        with ready_lock:
            queue = ready.get(worker) or next((q for q in ready.values() if q), [])
            if not queue:
                raise LookupError("no prepared visit left")
            request = queue.pop()
        elapsed_ms, _ = settle_once(window, request)
        return {"settle": elapsed_ms}

    total = sum(len(queue) for queue in ready.values())
    spent_before = handler_cpu(federation)
    settled = drive(Load(total, load.seconds, load.concurrency), settle_one, nodes)
    time.sleep(_OUTBOX_SETTLE_S)  # the confirmations and journal entries Settle set off are delivered
    by_method = handler_cpu_per_call(spent_before, handler_cpu(federation), settled["completed"])
    return {**settled, "prepare": prepared, "handler_cpu_ms_per_call": by_method}


def chain_load(chain: EchoChain, client: grpc.Channel, request_bytes: int, load: Load) -> dict[str, Any]:
    """Echo calls through ``chain`` at ``load``, with a Settle request's size."""
    echo = client.unary_unary(ECHO_METHOD)
    payload = b"x" * request_bytes
    for _ in range(20):
        echo(payload, timeout=_DEADLINE_S)

    def one(_worker: int, _index: int) -> dict[str, float]:
        started = time.perf_counter()
        echo(payload, timeout=_DEADLINE_S)
        return {"call": (time.perf_counter() - started) * 1000}

    return drive(load, one, {f"echo-{index}": pid for index, pid in enumerate(chain.pids)})


def ratios(settle: dict[str, Any], chain: dict[str, Any]) -> dict[str, float]:
    """Settlements per second as a share of chain calls per second; Settle's p99 as a multiple of the chain's."""
    if "settle" not in settle or "call" not in chain:
        return {}
    return {
        "throughput": round(settle["per_second"] / chain["per_second"], 3),
        "settle_p99": round(settle["settle"]["p99_ms"] / chain["call"]["p99_ms"], 2),
        "server_cpu": round(
            settle["cpu_ms_per_call"]["servers"] / max(chain["cpu_ms_per_call"]["servers"], 0.01), 1
        ),
    }


def measure_route(
    stage: Stage,
    federation: ProcessFederation,
    route: Route,
    patients: list[Patient],
    loads: list[Load],
    chain_loads: list[Load],
) -> dict[str, Any]:
    """The route's visits at each load, then the echo chain of its shape at the same concurrencies."""
    window = stage.window(route.hospital)
    request, _ = prepare(window, encounter(stage, route, patients[-1]))  # warm-up
    _, response_bytes = settle_once(window, request)
    request_bytes = request.ByteSize()
    figures: dict[str, Any] = {
        "path": [TOPOLOGY[region].name for region in route.path],
        "request_bytes": request_bytes,
        "response_bytes": response_bytes,
    }
    settles = {load.concurrency: settle_load(stage, federation, route, patients, load) for load in loads}
    pki = federation.pki
    his = pki.institution(route.hospital) if pki is not None else None
    with (
        EchoChain(
            len(route.path),
            response_bytes,
            tls=[pki.node(region) for region in route.path] if pki is not None else None,
            delay_ms=federation.hop_delay_ms,
        ) as chain,
        open_channel(chain.address, client_tls(his)) as client,
    ):
        for load in chain_loads:
            chain_figure = chain_load(chain, client, request_bytes, load)
            settle = settles[load.concurrency]
            figures[f"c{load.concurrency}"] = {
                "settle": settle,
                "chain": chain_figure,
                "ratios": ratios(settle, chain_figure),
            }
    return figures


# -- reporting ---------------------------------------------------------------------------------


def _ms(figure: dict[str, Any], name: str, key: str) -> str:
    if name not in figure:
        return "-"
    value = figure[name][key]
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def handler_table(routes: dict[str, dict[str, Any]]) -> Table:
    """Where each node's CPU goes at each route's highest concurrency: its costliest handlers per settlement."""
    grid = Table(
        title="Handler CPU per settlement (ms), at each route's highest concurrency",
        caption="yidi_rpc_cpu_seconds_total of each node: the handler's own thread, in-process calls "
        "to the node's own services counted in their caller's too; gRPC's threads are not counted.",
    )
    for heading in ("route", "node", "handlers"):
        grid.add_column(heading)
    for name, route in routes.items():
        blocks = [key for key in route if key.startswith("c") and key[1:].isdigit()]
        if not blocks:
            continue
        by_node = route[blocks[-1]]["settle"].get("handler_cpu_ms_per_call", {})
        for number, (node, methods) in enumerate(by_node.items()):
            top = list(methods.items())[:_TOP_METHODS]
            grid.add_row(
                f"{name} c{blocks[-1][1:]}" if number == 0 else "",
                node,
                ", ".join(f"{method} {ms:.2f}" for method, ms in top),
            )
    return grid


def table(routes: dict[str, dict[str, Any]]) -> Table:
    """Per route and concurrency: Settle, the visit's preparation, the bare chain; Settle's ratios to the chain."""
    grid = Table(
        title="Settle through the HIS stub against a bare gRPC echo chain",
        caption="; ".join(f"{name}: {' → '.join(route['path'])}" for name, route in routes.items())
        + ". /s: settlements, prepared visits (VerifyPerson … DischargeVisit) or echo calls per second; "
        "latencies in ms; ratios: Settle ÷ chain; CPU ms: CPU time all server processes spent per call.",
    )
    headings = (
        "route",
        "c",
        "timed",
        "/s",
        "p50",
        "p95",
        "p99",
        "/s ratio",
        "p99 ratio",
        "CPU ms",
        "refused",
    )
    for heading in headings:
        grid.add_column(heading, justify="left" if heading in ("route", "timed", "refused") else "right")
    for name, route in routes.items():
        blocks = [key for key in route if key.startswith("c") and key[1:].isdigit()]
        for number, key in enumerate(blocks):
            settle, chain, ratio = route[key]["settle"], route[key]["chain"], route[key]["ratios"]
            refused = ", ".join(f"{reason} {n}" for reason, n in settle["refused"].items()) or "0"
            grid.add_row(
                name if number == 0 else "",
                key[1:],
                "Settle",
                f"{settle['per_second']:.1f}",
                *(_ms(settle, "settle", p) for p in ("p50_ms", "p95_ms", "p99_ms")),
                f"{ratio.get('throughput', 0):.1%}",
                f"{ratio.get('settle_p99', 0):.1f}×",
                f"{settle['cpu_ms_per_call']['servers']:.1f}",
                refused,
            )
            prepared = settle["prepare"]
            grid.add_row(
                "",
                "",
                "prepare",
                f"{prepared['per_second']:.1f}",
                *(_ms(prepared, "prepare", p) for p in ("p50_ms", "p95_ms", "p99_ms")),
                "",
                "",
                f"{prepared['cpu_ms_per_call']['servers']:.1f}",
                ", ".join(f"{reason} {n}" for reason, n in prepared["refused"].items()) or "0",
            )
            grid.add_row(
                "",
                "",
                "chain",
                f"{chain['per_second']:.0f}",
                *(_ms(chain, "call", p) for p in ("p50_ms", "p95_ms", "p99_ms")),
                "",
                "",
                f"{chain['cpu_ms_per_call']['servers']:.2f}",
                "",
                end_section=number == len(blocks) - 1,
            )
    return grid


# -- the run -------------------------------------------------------------------------------------


@contextmanager
def databases(kind: str, server_url: str | None) -> Iterator[Callable[[], str | None] | None]:
    """A fresh PostgreSQL database per node (on ``server_url``, or a server started here), or None: SQLite."""
    if kind == "sqlite":
        yield None
        return
    with ExitStack() as stack:
        if server_url is None:
            subprocess.run([str(REPO / "scripts" / "ensure-postgres")], check=True)
        url = server_url or stack.enter_context(postgres_server(max_connections=400)).url
        yield stack.enter_context(fresh_databases(url, "yidi_bench"))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smaller run, under a minute")
    parser.add_argument("--count", type=int, help="visits per measurement at most (default 300; quick 20)")
    parser.add_argument(
        "--echo-count", type=int, help="echo calls per measurement at most (default 3000; quick 300)"
    )
    parser.add_argument(
        "--seconds", type=float, help="seconds per measurement at most (default 10; quick 1.5)"
    )
    parser.add_argument(
        "--concurrency", default="1,16,64", help="comma-separated concurrencies (default 1,16,64)"
    )
    parser.add_argument("--routes", default="1,2,4", help="comma-separated hop counts among 1,2,4")
    parser.add_argument("--persons", type=int, help="patients per route (default: the highest concurrency)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--postgres-url", help="an existing PostgreSQL server (no database name) for --database postgresql"
    )
    parser.add_argument(
        "--insecure", action="store_true", help="plaintext nodes and chain instead of mutual TLS"
    )
    parser.add_argument("--hop-delay-ms", type=float, default=0.0, help="one-way delay per node-to-node link")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    parser.add_argument(
        "--profile",
        type=Path,
        help="run every node under py-spy and write its speedscope profile to this folder "
        "(sampling slows the nodes: read where the time goes, not the figures)",
    )
    parser.add_argument(
        "--json", type=Path, help="where to write the figures (default bench/results/settle-<time>.json)"
    )
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    count = min(args.count or (20 if args.quick else 300), 20_000)
    echo_count = min(args.echo_count or (300 if args.quick else 3000), 200_000)
    seconds = min(args.seconds or (1.5 if args.quick else 10.0), 120.0)
    concurrencies = sorted({max(1, min(int(c), 256)) for c in args.concurrency.split(",")})
    wanted = {int(hops) for hops in args.routes.split(",")}
    routes = [route for route in ROUTES if route.hops in wanted]
    persons = max(args.persons or max(concurrencies), 1)
    loads = [Load(count, seconds, c) for c in concurrencies]
    chain_loads = [Load(echo_count, seconds, c) for c in concurrencies]
    console = Console(width=None if sys.stdout.isatty() else 110)  # a log file gets the whole table
    facts = {
        "machine": machine(),
        "grpcio": version("grpcio"),
        "database": args.database,
        "transport": "insecure" if args.insecure else "mutual TLS",
        "hop_delay_ms": args.hop_delay_ms,
        "count": count,
        "echo_count": echo_count,
        "seconds": seconds,
        "persons_per_route": persons,
        "node_log_level": args.log_level,
    }
    console.print(", ".join(f"{key} {value}" for key, value in facts.items()), highlight=False)
    figures: dict[str, dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="yidi-settle-bench-") as folder,
        databases(args.database, args.postgres_url) as database_url_for,
    ):
        pki = None if args.insecure else init_demo_pki(Path(folder) / "certs", TOPOLOGY)
        started = time.perf_counter()
        with ProcessFederation(
            TOPOLOGY,
            Path(folder),
            database_url_for,
            pki=pki,
            hop_delay_ms=args.hop_delay_ms,
            log_level=args.log_level,
            profile_dir=args.profile,
            metrics=True,
            config=NO_QUOTAS,
        ) as federation:
            console.print(
                f"{len(TOPOLOGY.nodes)} node processes serving in {time.perf_counter() - started:.1f} s"
            )
            load_sample_data(federation)
            # A minute back, so no visit made during the run is discharged before it was admitted.
            stage = Stage(federation, datetime.now(UTC) - timedelta(minutes=1))
            for route in routes:
                patients = enrol_and_file(stage, route, persons)
                figures[route.name] = measure_route(stage, federation, route, patients, loads, chain_loads)
                console.print(f"{route.name} measured")
    console.print(table(figures))
    console.print(handler_table(figures))
    target = args.json or RESULTS / f"settle-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({**facts, "routes": figures}, indent=2, ensure_ascii=False))
    console.print(f"written to {target}")
    if args.profile is not None:
        console.print(f"node profiles (open in https://www.speedscope.app) in {args.profile}")


if __name__ == "__main__":
    main()
