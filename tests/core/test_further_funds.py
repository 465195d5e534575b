"""The further funds through the case format: refusals name the policy's field, the explanation
names each fund's rule, and 门诊共济 pays only where the policy allows it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from yidi_core.case_format import explanation_document, parse_case, result_document
from yidi_core.errors import DomainError

GOLDEN = Path(__file__).resolve().parents[2] / "examples" / "cases" / "golden"
CASE: dict[str, Any] = json.loads(
    (GOLDEN / "cap-reached-supplementary-civil-servant-family-account.json").read_text(encoding="utf-8")
)["case"]


def _case(**funds: Any) -> dict[str, Any]:
    case = copy.deepcopy(CASE)
    for name, value in funds.items():
        case["policy"]["funds"][name] = value
    return case


@pytest.mark.parametrize(
    ("fund", "value", "field"),
    [
        ("supplementary", {"ratio": "1.50", "cap": "300000.00"}, "policy.funds.supplementary.ratio"),
        ("assistance", {"ratio": "0.70", "categories": []}, "policy.funds.assistance.categories"),
        (
            "serious_illness",
            {"threshold": "100.00", "segments": [{"from": "10.00", "ratio": "0.5"}]},
            "policy.funds.serious_illness.segments[0].from",
        ),
        (
            "serious_illness",
            {
                "threshold": "100.00",
                "segments": [{"from": "0.00", "ratio": "0.5"}],
                "low_income": {"ratio_bonus": "-0.1"},
            },
            "policy.funds.serious_illness.low_income.ratio_bonus",
        ),
        (
            "civil_servant",
            {"deductible_ratio": "0.5", "selfpay_ratio": "2"},
            "policy.funds.civil_servant.selfpay_ratio",
        ),
    ],
)
def test_a_bad_fund_is_invalid_policy_naming_its_field(fund: str, value: Any, field: str) -> None:
    with pytest.raises(DomainError) as refused:
        parse_case(_case(**{fund: value}))
    assert refused.value.reason_code == "INVALID_POLICY"
    assert [v.field for v in refused.value.violations] == [field]


def test_a_negative_fund_cap_is_refused_as_a_rules_cap_is() -> None:
    with pytest.raises(DomainError) as refused:
        parse_case(_case(assistance={"ratio": "0.70", "cap": "-1.00", "categories": ["dibao"]}))
    assert refused.value.reason_code == "INVALID_ARGUMENT"
    assert [v.field for v in refused.value.violations] == ["policy.funds.assistance.cap"]


def test_the_explanation_names_each_funds_rule() -> None:
    settled = parse_case(CASE).settle()
    why = explanation_document(settled)
    assert [(step["fund"], step["paid"]) for step in why["funds"]] == [
        ("supplementary", "16000.00"),
        ("serious_illness", "3000.00"),
        ("civil_servant", "800.00"),
    ]
    text = "\n".join(why["text"])
    assert "ratio 0.90 above the basic cap" in text and "threshold 15000.00" in text
    assert (
        "门诊共济" in text and "After the further funds, the patient's share (个人负担) is 1200.00." in text
    )


def test_the_family_account_pays_only_where_the_policy_allows_it() -> None:
    case = copy.deepcopy(CASE)
    case["policy"]["family_account"] = False
    result = result_document(parse_case(case).settle())
    assert result["acct_mulaid_pay"] == "0.00"
    assert result["psn_cash_pay"] == "1100.00"  # 1200.00 less the own account's 100.00
