"""Every golden case in examples/cases/golden/ (read at test time, so new cases are picked up),
through the core's API and through `yidi calc` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from yidi_core.case_format import error_document, parse_case, result_document
from yidi_core.errors import DomainError

REPO = Path(__file__).resolve().parents[2]
CASES = sorted((REPO / "examples" / "cases" / "golden").glob("*.json"))
YIDI = Path(sys.executable).with_name("yidi")


def load(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    document = json.loads(path.read_text(encoding="utf-8"))
    return document["case"], document["expected"]


def assert_matches(result: dict[str, Any], expected: dict[str, Any]) -> None:
    """Every key of ``expected`` must be in the result with the same value (extra keys are fine)."""
    if "error" in expected:
        assert "error" in result, result
        assert result["error"]["reason"] == expected["error"]["reason"]
        return
    for key, value in expected.items():
        assert result.get(key) == value, f"{key}: got {result.get(key)!r}, expected {value!r}"


def test_the_shared_cases_are_there() -> None:
    assert len(CASES) >= 6, "expected the public golden cases in examples/cases/golden"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case_through_the_library(path: Path) -> None:
    case, expected = load(path)
    try:
        result = result_document(parse_case(case).settle())
    except DomainError as error:
        result = error_document(error)
    assert_matches(result, expected)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_case_through_yidi_calc(path: Path, tmp_path: Path) -> None:
    case, expected = load(path)
    case_file = tmp_path / "case.json"
    case_file.write_text(json.dumps(case, ensure_ascii=False), encoding="utf-8")
    run = subprocess.run([str(YIDI), "calc", str(case_file)], capture_output=True, text=True, timeout=60)
    assert run.returncode == (2 if "error" in expected else 0), run.stderr
    assert_matches(json.loads(run.stdout), expected)


def test_calc_reads_standard_input_and_explains() -> None:
    case, expected = load(
        REPO / "examples" / "cases" / "golden" / "inpatient-deductible-segments-account.json"
    )
    run = subprocess.run(
        [str(YIDI), "calc", "--explain", "-"],
        input=json.dumps(case),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert_matches(result, expected)
    why = result["explanation"]
    assert why["rule"]["index"] == 0
    assert why["deductible"] == {
        "scope": "per_visit",
        "key": None,
        "deductible": "1300.00",
        "counted_before": "0.00",
        "paid_now": "1300.00",
    }
    steps = [(s["from"], s["amount"], s["ratio"]) for s in why["segments"]["steps"]]
    assert steps == [("0.00", "25000.00", "0.85"), ("30000.00", "8016.00", "0.90")]
    assert why["cap"]["room_before"] == "288000.00" and why["cap"]["room_after"] == "259535.60"
    reasons = {item["sn"]: item["selfpay_reasons"] for item in why["items"]}
    assert reasons["2"] == ["OVER_PRICE_CEILING", "FIRST_SELF_PAY"] and reasons["3"] == ["CLASS_C"]
    assert any("CLASS_C" not in line and "class C" in line for line in why["text"])
    assert result["setldetail"] == [
        {"fund_pay_type": "310100", "fund_name": "pooled fund (统筹基金)", "fund_payamt": "28464.40"},
        {"fund_pay_type": "310200", "fund_name": "personal account (个人账户)", "fund_payamt": "2000.00"},
    ]


@pytest.mark.parametrize(
    ("mutate", "reason", "field"),
    [
        (lambda c: c["visit"].update(med_type="99"), "INVALID_CODE", "visit.med_type"),
        (lambda c: c["items"][0].update(price=12.5), "INVALID_ARGUMENT", "items[0].price"),
        (lambda c: c["items"][0].update(qty="0"), "INVALID_ARGUMENT", "items[0].qty"),
        (lambda c: c["items"][0].update(code="XA 10"), "INVALID_CODE", "items[0].code"),
        (lambda c: c["visit"].update(diagnoses=["diabetes"]), "INVALID_CODE", "visit.diagnoses[0]"),
        (lambda c: c["person"].update(filing_category="tourist"), "INVALID_CODE", "person.filing_category"),
        (
            lambda c: c["policy"]["rules"][0].update(ratio="1.20"),
            "INVALID_POLICY",
            "policy.rules[0].segments[0].ratio",
        ),
        (lambda c: c.pop("items"), "INVALID_ARGUMENT", "case.items"),
        (
            lambda c: c["policy"]["rules"][0].update(deductible_scope=[]),
            "INVALID_POLICY",
            "policy.rules[0].deductible_scope",
        ),
        (
            lambda c: c["policy"]["rules"].append(c["policy"]["rules"][0] | {"cap": "10.00"}),
            "INVALID_POLICY",
            "policy.rules[1].cap",
        ),
        (lambda c: c["items"][0].update(qty="10000000000000"), "INVALID_ARGUMENT", "items[0].qty"),
    ],
)
def test_calc_refuses_bad_input_naming_the_field(
    mutate: Any, reason: str, field: str, tmp_path: Path
) -> None:
    case, _ = load(REPO / "examples" / "cases" / "golden" / "seed-chronic-outpatient-beijing.json")
    mutate(case)
    run = subprocess.run(
        [str(YIDI), "calc", "-"], input=json.dumps(case), capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2
    error = json.loads(run.stdout)["error"]
    assert error["reason"] == reason
    assert field in [violation["field"] for violation in error["field_violations"]]


def test_calc_refuses_a_file_that_is_not_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    run = subprocess.run([str(YIDI), "calc", str(bad)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert json.loads(run.stdout)["error"]["reason"] == "INVALID_ARGUMENT"


def test_whole_json_numbers_are_exact_and_accepted_where_decimal_strings_are_expected() -> None:
    case, expected = load(REPO / "examples" / "cases" / "golden" / "seed-chronic-outpatient-beijing.json")
    case["items"][0]["qty"] = 1
    assert_matches(result_document(parse_case(case).settle()), expected)


@pytest.mark.parametrize("path", [p for p in CASES if "error" not in load(p)[1]], ids=lambda p: p.stem)
def test_a_case_may_name_its_items_with_its_own_codes(path: Path) -> None:
    """A case's catalogue defines its codes: renamed to short ones (``XA01``), the case settles the same."""
    case, expected = load(path)
    names = {entry["code"]: f"XA{index:02d}" for index, entry in enumerate(case["catalogue"], start=1)}
    renamed = json.loads(json.dumps(case))
    for entry in renamed["catalogue"]:
        entry["code"] = names[entry["code"]]
    for item in renamed["items"]:
        item["code"] = names.get(item["code"], "ZZ99")  # a code the catalogue lacks stays unknown
    assert_matches(result_document(parse_case(renamed).settle()), expected)
