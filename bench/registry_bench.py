"""Institution registry at national scale: bulk-load 200,000 institutions, then time filtered list pages.

Starts a registry-only node in process (SQLite in a temporary folder by default, or
``--database-url`` for PostgreSQL), imports a generated CSV through ImportInstitutions (the
bulk-load time is end to end: streaming, parsing, validation and bulk inserts), then calls
ListInstitutions through the generated stub with typical filters and reports p50/p99
latency per query. Prints the machine's details and writes bench/results/registry_bench_<database>.json.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from measure import against_baseline, bare_grpc_baseline, bench_node, database_name, machine, timed
from yidi.registry.v1 import institution_pb2 as pb
from yidi.registry.v1 import institution_registry_service_pb2 as api
from yidi.registry.v1 import institution_registry_service_pb2_grpc as api_grpc

RESULTS = Path(__file__).resolve().parent / "results"
PROVINCES = [
    f"{p}0000"
    for p in (
        11,
        12,
        13,
        14,
        15,
        21,
        22,
        23,
        31,
        32,
        33,
        34,
        35,
        36,
        37,
        41,
        42,
        43,
        44,
        45,
        46,
        50,
        51,
        52,
        53,
        54,
        61,
        62,
        63,
        64,
        65,
    )
]
DISEASES = ("M03900", "M01600", "M00500", "M07800", "M08300")
HEADER = (
    "fixmedins_code,fixmedins_name,type,level,admdvs,address,status,"
    "accepts_cross_province,accepts_in_province,services\n"
)
CHUNK = 256 * 1024


def generated_csv(count: int, seed: int = 7) -> bytes:
    """``count`` institutions spread over 31 provinces × 10 cities × 10 counties (deterministic)."""
    rng = random.Random(seed)
    counties = [f"{p[:2]}{c:02d}{d:02d}" for p in PROVINCES for c in range(1, 11) for d in range(1, 11)]
    out = io.StringIO()
    out.write(HEADER)
    for index in range(count):
        county = counties[index % len(counties)]
        sequence = index // len(counties) + 1
        pharmacy = rng.random() < 0.2
        services = []
        if pharmacy:
            services.append("pharmacy_purchase@2021-01-01")
            if rng.random() < 0.3:
                services.append("special_drugs@2023-01-01")
        else:
            if rng.random() < 0.6:
                services.append("inpatient@2019-01-01")
            if rng.random() < 0.7:
                services.append("general_outpatient@2021-06-01")
            services += [f"chronic_outpatient:{d}@2022-01-01" for d in DISEASES if rng.random() < 0.15]
        letter, kind, level = ("P", "pharmacy", "") if pharmacy else ("H", "medical", rng.choice("123"))
        status = "closed" if rng.random() < 0.05 else "active"
        out.write(
            f"{letter}{county}{sequence:05d},institution {index},{kind},{level},{county},sample,{status},"
            f"true,true,{';'.join(services)}\n"
        )
    return out.getvalue().encode()


def import_messages(data: bytes) -> Iterator[api.ImportInstitutionsRequest]:
    yield api.ImportInstitutionsRequest(
        header=api.ImportInstitutionsHeader(request_id="000000000000202601010000000001", admdvs="000000")
    )
    for start in range(0, len(data), CHUNK):
        yield api.ImportInstitutionsRequest(csv_chunk=data[start : start + CHUNK])


QUERIES: dict[str, dict[str, Any]] = {
    "province + medical + outpatient + active": {
        "admdvs": "330000",
        "type": pb.INSTITUTION_TYPE_MEDICAL,
        "service": pb.SERVICE_KIND_GENERAL_OUTPATIENT,
        "status": pb.INSTITUTION_STATUS_ACTIVE,
    },
    "county + chronic M08300": {"admdvs": "440305", "chronic_disease": "M08303"},
    "province + level 3 + chronic family M00500": {
        "admdvs": "520000",
        "levels": ["3"],
        "chronic_disease": "M00500",
    },
    "whole country, active, page 2": {"status": pb.INSTITUTION_STATUS_ACTIVE, "second_page": True},
}


def list_page(
    stub: api_grpc.InstitutionRegistryServiceStub, filters: dict[str, Any], repeats: int
) -> dict[str, float]:
    filters = dict(filters)
    token = ""
    if filters.pop("second_page", False):
        token = stub.ListInstitutions(api.ListInstitutionsRequest(**filters)).next_page_token
    request = api.ListInstitutionsRequest(page_token=token, **filters)
    rows = len(stub.ListInstitutions(request).institutions)
    return {"rows": rows, **timed(lambda _index: stub.ListInstitutions(request), repeats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default: SQLite in a temp dir)")
    parser.add_argument("--institutions", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    baseline = bare_grpc_baseline()
    print(f"bare gRPC echo on loopback: p50 {baseline['p50_ms']} ms, p99 {baseline['p99_ms']} ms")
    database = database_name(args.database_url)
    data = generated_csv(args.institutions)
    with bench_node("registry", args.database_url) as channel:
        stub = api_grpc.InstitutionRegistryServiceStub(channel)
        started = time.perf_counter()
        result = stub.ImportInstitutions(import_messages(data), timeout=3600)
        load_s = time.perf_counter() - started
        print(
            f"{database}: bulk-loaded {result.created_count} institutions "
            f"({len(data) / 1e6:.1f} MB CSV) in {load_s:.1f} s"
        )
        figures = {name: list_page(stub, filters, args.repeats) for name, filters in QUERIES.items()}
    for name, figure in figures.items():
        print(f"  ListInstitutions [{name}]: {figure['rows']} rows, {against_baseline(figure, baseline)}")
    RESULTS.mkdir(exist_ok=True)
    document = {
        "machine": machine(),
        "bare_grpc": baseline,
        "database": database,
        "institutions": args.institutions,
        "bulk_load_s": round(load_s, 2),
        "list": figures,
    }
    (RESULTS / f"registry_bench_{database}.json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
