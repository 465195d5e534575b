"""Care without a filing counts on its segment scale to the fen: the ledger keeps whole fen, and a
factor can leave a fraction of one (61.11 at 50% is 30.555)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from yidi_core.accumulators import AccumulatorKind
from yidi_core.case_format import parse_case, result_document

GOLDEN = (
    Path(__file__).resolve().parents[2] / "examples" / "cases" / "golden" / "unfiled-emergency-factor.json"
)


def test_the_scale_grows_by_the_reduced_amount_rounded_half_up_to_the_fen() -> None:
    case = json.loads(GOLDEN.read_text(encoding="utf-8"))["case"]
    case["visit"]["emergency"] = False  # unreferred: 50%
    case["policy"]["rules"][0] = {
        "med_types": ["21"],
        "psn_types": ["*"],
        "institution_levels": ["*"],
        "deductible_scope": "annual",
        "deductible_key": "inpatient",
        "ratio": "0.75",
    }
    case["items"][0]["price"] = "61.11"
    settlement = parse_case(case).settle()
    scale = next(change for change in settlement.changes if change.kind is AccumulatorKind.SEGMENT)
    assert scale.delta == Decimal("30.56")  # 30.555 half up
    document = result_document(settlement)
    assert (document["hifp_pay"], document["accumulators_after"]["segment"]) == (
        "22.92",
        {"inpatient": "30.56"},
    )
