"""Settlement-core throughput on one core: settlements per second for bills of 5, 50 and 500 lines.

Each bill mixes class A, class B with a price ceiling, class C, restricted and
uncatalogued lines under a segmented inpatient rule with a deductible, a cap and a filing
adjustment, so every step of settlement-rules.md runs. ``settle`` is timed alone (the hot
path a node calls with parsed inputs); ``parse+settle`` adds reading the calc JSON format.
Prints the machine's details and writes the figures to bench/results/core_bench.json.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from yidi_core.case_format import parse_case

SIZES = (5, 50, 500)
REPEATS = 5
MIN_SECONDS = 0.5
RESULTS = Path(__file__).resolve().parent / "results"

CATALOGUE = [
    {"code": "001102000010000", "name": "床位费", "class": "A"},
    {
        "code": "XJ01DDT071B002010100003",
        "name": "头孢曲松",
        "class": "B",
        "selfpay_ratio": "0.10",
        "price_ceiling": "12.00",
    },
    {"code": "C0203010340000000001", "name": "自费支架", "class": "C"},
    {
        "code": "XA10ABG047B002010100004",
        "name": "胰岛素",
        "class": "A",
        "restriction": {"diagnosis_prefixes": ["E11"]},
    },
    {"code": "003106050020000", "name": "支架置入术", "class": "B", "selfpay_ratio": "0.05"},
]
CODES = [entry["code"] for entry in CATALOGUE] + ["XN02BEB999A001010100099"]


def bill(lines: int) -> dict[str, Any]:
    """A deterministic inpatient case with ``lines`` fee lines cycling through every kind of item."""
    items = []
    for index in range(lines):
        price = Decimal(1500 + (index * 7919) % 4000) / 100
        qty = 1 + index % 3
        item = {"sn": str(index + 1), "code": CODES[index % len(CODES)], "qty": str(qty), "price": str(price)}
        if index % 2:
            item["amount"] = str((price * qty).quantize(Decimal("0.01")))
        items.append(item)
    return {
        "visit": {
            "med_type": "21",
            "service_date": "2026-03-18",
            "institution_level": "3",
            "diagnoses": ["I21.000"],
        },
        "person": {
            "insutype": "310",
            "psn_type": "employed",
            "filing_category": "temporary_other",
            "account_balance": "800.00",
            "use_account": True,
        },
        "accumulators": {"segment": {"inpatient": "5000.00"}, "cap": {"pool": "12000.00"}},
        "catalogue": CATALOGUE,
        "policy": {
            "rules": [
                {
                    "med_types": ["21"],
                    "psn_types": ["*"],
                    "institution_levels": ["*"],
                    "deductible": "1300.00",
                    "deductible_scope": "per_visit",
                    "segments": [{"from": "0.00", "ratio": "0.85"}, {"from": "30000.00", "ratio": "0.90"}],
                    "segment_key": "inpatient",
                    "cap": "300000.00",
                    "cap_key": "pool",
                }
            ],
            "ratio_adjustments": {"temporary_other": "-0.10"},
        },
        "items": items,
    }


def rate(action: Any) -> float:
    """Calls per second: the median of REPEATS runs, each at least MIN_SECONDS long."""
    rates = []
    for _ in range(REPEATS):
        calls, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < MIN_SECONDS:
            action()
            calls += 1
        rates.append(calls / elapsed)
    return statistics.median(rates)


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor() or "unknown",
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": platform.platform(),
    }


def main() -> None:
    """Measure every bill size and print one line each."""
    details = machine()
    print("machine: " + ", ".join(f"{key} {value}" for key, value in details.items()))
    figures = []
    for lines in SIZES:
        document = bill(lines)
        case = parse_case(document)
        settle_rate = rate(case.settle)
        full_rate = rate(lambda document=document: parse_case(document).settle())
        figures.append(
            {"lines": lines, "settle_per_s": round(settle_rate), "parse_settle_per_s": round(full_rate)}
        )
        print(
            f"{lines:>4}-line bills: settle {settle_rate:>9,.0f}/s ({1e6 / settle_rate:,.0f} µs each); "
            f"parse+settle {full_rate:>9,.0f}/s ({1e6 / full_rate:,.0f} µs each)"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "core_bench.json").write_text(json.dumps({"machine": details, "figures": figures}, indent=2))


if __name__ == "__main__":
    main()
