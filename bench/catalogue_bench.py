"""Catalogue service: a 100,000-item catalogue import, and 50-line LookupItems latency.

Starts one node in process (catalogue service only) on SQLite in a temporary directory,
or on ``--database-url`` (e.g. a PostgreSQL database), imports a generated national base
of 100,000 items through the streamed RPC, then times LookupItems of 50 codes: the first
call (read from the database) and repeated calls (served from the per-version cache).
Prints the machine and the figures and writes them to bench/results/catalogue_bench.json.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from google.type.date_pb2 import Date

from measure import against_baseline, bare_grpc_baseline, bench_node, database_name, machine, timed
from yidi.catalogue.v1 import catalogue_pb2, catalogue_service_pb2, catalogue_service_pb2_grpc

ITEMS = 100_000
LOOKUP_LINES = 50
LOOKUP_REPEATS = 500
CHUNK = 64 * 1024
RESULTS = Path(__file__).resolve().parent / "results"
HEADER = "code,name,kind,chrgitm_lv,selfpay_prop,pric_uplmt_amt,restriction_med_types,restriction_diagnosis_prefixes,valid_from,valid_to\n"


def _code(index: int) -> str:
    return f"XA10BX{index:017d}"


def _catalogue() -> bytes:
    lines = [HEADER]
    for index in range(ITEMS):
        level = ("01", "02", "03")[index % 3]
        ratio = "0.10" if level == "02" else ""
        ceiling = f"{10 + index % 500}.50" if index % 7 == 0 else ""
        restriction = "14;21" if index % 11 == 0 else ""
        lines.append(f"{_code(index)},样例药品{index},drug,{level},{ratio},{ceiling},{restriction},,,\n")
    return "".join(lines).encode()


def _requests(content: bytes):
    header = catalogue_service_pb2.ImportCatalogueHeader(
        request_id="000000000000202601010000" + "0001",
        admdvs="000000",
        layer=catalogue_pb2.CATALOGUE_LAYER_NATIONAL_BASE,
        effective_date=Date(year=2026, month=1, day=1),
    )
    yield catalogue_service_pb2.ImportCatalogueRequest(header=header)
    for start in range(0, len(content), CHUNK):
        yield catalogue_service_pb2.ImportCatalogueRequest(csv_chunk=content[start : start + CHUNK])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", help="Database URL (default: SQLite in a temporary directory).")
    args = parser.parse_args()
    baseline = bare_grpc_baseline()
    database = database_name(args.database_url)
    content = _catalogue()
    with bench_node("catalogue", args.database_url) as channel:
        stub = catalogue_service_pb2_grpc.CatalogueServiceStub(channel)
        started = time.perf_counter()
        version = stub.ImportCatalogue(_requests(content), timeout=600).version
        import_seconds = time.perf_counter() - started
        rng = random.Random(7)
        codes = [_code(rng.randrange(ITEMS)) for _ in range(LOOKUP_LINES)]
        request = catalogue_service_pb2.LookupItemsRequest(
            admdvs="110105", codes=codes, date=Date(year=2026, month=3, day=1)
        )
        started = time.perf_counter()
        stub.LookupItems(request, timeout=10)
        cold_ms = (time.perf_counter() - started) * 1000
        warm = timed(lambda _index: stub.LookupItems(request, timeout=10), LOOKUP_REPEATS)
    figures = {
        "machine": machine(),
        "bare_grpc": baseline,
        "database": database,
        "items": version.item_count,
        "csv_mb": round(len(content) / 1e6, 1),
        "import_seconds": round(import_seconds, 2),
        "lookup_50_first_ms": round(cold_ms, 2),
        "lookup_50_cached": warm,
    }
    print(f"machine: {figures['machine']}")
    print(f"database: {database}")
    print(f"import {figures['items']:,} items ({figures['csv_mb']} MB CSV): {figures['import_seconds']} s")
    print(f"bare gRPC echo on loopback: p50 {baseline['p50_ms']} ms, p99 {baseline['p99_ms']} ms")
    print(
        f"LookupItems {LOOKUP_LINES} codes: first {figures['lookup_50_first_ms']} ms; "
        f"from the cache {against_baseline(warm, baseline)}"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"catalogue_bench_{database}.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
