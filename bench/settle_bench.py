"""Settlement across the region tree: Settle latency and throughput per route length, against a bare chain.

Starts the demo federation in process (ten nodes on loopback, SQLite files in a temporary
folder), loads the sample data and plays the seed stories (which file the patients), then
prepares visits (register, upload, discharge — untimed) and times only ``Settle`` through
the HIS stub, for two routes:

* **4-hop** — the Qinghai resident discharged in Jiaxing: HIS → Jiaxing city → Zhejiang →
  national → Qinghai, and the answer back the same way;
* **2-hop** — the Shenzhen retiree in Shijiazhuang: HIS → Hebei → national → Guangdong.

Each route runs at concurrency 1 and at ``--concurrency`` for a bounded number of calls,
and **in the same run** a bare gRPC chain with one server per node passed and the same payload
is timed: the physical limit on this machine. Every figure is printed with its ratio to
that chain, and all of them are written to bench/results/settle_bench.json.

    .venv/bin/python bench/settle_bench.py                 # 200 calls per measurement
    .venv/bin/python bench/settle_bench.py --count 500 --concurrency 16
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from measure import bare_grpc_chain, machine, timed_concurrently
from yidi.settlement.v1 import settlement_pb2, settlement_service_pb2
from yidi_cli.federation import DEMO_TOPOLOGY, load_sample_data, start_federation
from yidi_cli.stories import (
    QINGHAI_RESIDENT,
    SHENZHEN_RETIREE,
    BillLine,
    Encounter,
    Stage,
    Window,
    play_all,
    refusal_reason,
)
from yidi_runtime.logs import configure_logging

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Route:
    """A settlement route to measure: its name, the nodes it passes through and a representative encounter."""

    name: str
    nodes: int
    encounter: Encounter


def _routes(stage: Stage) -> list[Route]:
    today, now = stage.today, stage.now
    jiaxing = Encounter(
        patient=QINGHAI_RESIDENT,
        fixmedins_code="H33040200001",
        med_type="21",
        service_date=today,
        begin_time=stage.earlier_today(6),
        end_time=now,
        diagnoses=("I21.000",),
        bill=(
            BillLine("001102000010000", "床位费", "3", "60.00"),
            BillLine("XJ01DDT071B002010100003", "注射用头孢曲松钠", "4", "15.00"),
            BillLine("C0203010340000000001", "冠脉支架(自费型号)", "1", "1200.00"),
        ),
    )
    shijiazhuang = Encounter(
        patient=SHENZHEN_RETIREE,
        fixmedins_code="H13010500001",
        med_type="11",
        service_date=today,
        begin_time=stage.earlier_today(1),
        diagnoses=("E11.900",),
        bill=(
            BillLine("002502000010000", "血糖测定", "1", "8.00"),
            BillLine("XA10BFA022A001010100001", "阿卡波糖片", "3", "32.52"),
        ),
    )
    return [Route("4-hop", 5, jiaxing), Route("2-hop", 3, shijiazhuang)]


def _prepared(
    stage: Stage, encounter: Encounter, count: int
) -> tuple[Window, list[settlement_service_pb2.SettleRequest]]:
    """``count`` visits registered, uploaded and (inpatient) discharged, each with its Settle request."""
    window = stage.window(encounter.fixmedins_code)
    person = window.verify(encounter)
    requests = []
    for _ in range(count):
        visit: settlement_pb2.Visit = window.register(encounter, person)
        window.upload(encounter, visit)
        if encounter.inpatient:
            visit = window.discharge(encounter, visit)
        requests.append(window.settle_request(encounter, visit, window.request_id()))
    return window, requests


def _ratio(figure: dict[str, float], chain: dict[str, float]) -> str:
    return (
        f"{figure['per_second']:>7.1f}/s ({figure['per_second'] / chain['per_second']:.0%} of the chain), "
        f"p50 {figure['p50_ms']} ms, p95 {figure['p95_ms']} ms, p99 {figure['p99_ms']} ms "
        f"({figure['p99_ms'] / chain['p99_ms']:.1f}× the chain's p99)"
    )


def _measure(stage: Stage, route: Route, count: int, concurrency: int) -> dict[str, object]:
    """Settle ``count`` prepared visits of ``route`` at ``concurrency``, then the bare chain alike."""
    window, requests = _prepared(stage, route.encounter, count)
    payload = len(requests[0].SerializeToString())
    refusals: list[str] = []

    def settle(index: int) -> None:
        try:
            window.settle(requests[index])
        except grpc.RpcError as error:  # counted and reported: an overloaded run says so
            refusals.append(refusal_reason(error))

    figure = timed_concurrently(settle, count, concurrency)
    figure["refused"] = len(refusals)
    chain = bare_grpc_chain(route.nodes, payload, count, concurrency)
    print(f"{route.name} Settle, concurrency {concurrency:>2}: {_ratio(figure, chain)}")
    if refusals:
        print(f"{'':>5} {len(refusals)} of {count} refused: {sorted(set(refusals))}")
    print(
        f"{'':>5} bare {route.nodes}-server chain: {chain['per_second']:>7.1f}/s, "
        f"p50 {chain['p50_ms']} ms, p99 {chain['p99_ms']} ms"
    )
    return {"settle": figure, "bare_chain": chain, "payload_bytes": payload}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200, help="Settle calls per measurement (bounded)")
    parser.add_argument("--concurrency", type=int, default=16, help="the concurrent measurement's threads")
    args = parser.parse_args()
    count = max(10, min(args.count, 5_000))
    configure_logging("warning")
    routes: dict[str, dict[str, object]] = {}
    print(machine())
    with (
        tempfile.TemporaryDirectory(prefix="yidi-settle-bench-") as folder,
        start_federation(DEMO_TOPOLOGY, Path(folder), log_level="warning") as federation,
    ):
        load_sample_data(federation)
        failed = [story.short for story in play_all(federation) if not story.ok]
        if failed:
            raise SystemExit(f"the seed stories must pass before measuring; failed: {failed}")
        # A minute back, so no visit prepared during the run is dated after its discharge.
        stage = Stage(federation, datetime.now(UTC) - timedelta(minutes=1))
        for route in _routes(stage):
            routes[route.name] = {
                f"c{concurrency}": _measure(stage, route, count, concurrency)
                for concurrency in (1, args.concurrency)
            }
    RESULTS.mkdir(exist_ok=True)
    report = {"machine": machine(), "count": count, "routes": routes}
    (RESULTS / "settle_bench.json").write_text(json.dumps(report, indent=2))
    print(f"written to {RESULTS / 'settle_bench.json'}")


if __name__ == "__main__":
    main()
