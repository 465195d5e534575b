"""PolicyService through its generated stub: policy versions, validation, and estimates equal to `yidi calc`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import grpc
import pytest
from conftest import HEADER, ImportCsv, ImportPolicy, day

from yidi.catalogue.v1 import policy_service_pb2
from yidi.type.v1 import fee_item_pb2, filing_category_pb2, visit_pb2
from yidi_core.codes import check_item_code
from yidi_core.money import parse_money, to_fen
from yidi_testing import error_details

CASES = sorted((Path(__file__).resolve().parents[2] / "examples" / "cases" / "golden").glob("*.json"))
REPO = Path(__file__).resolve().parents[2]
CHRONIC = json.dumps(
    {
        "rules": [
            {
                "med_types": ["14"],
                "psn_types": ["retired"],
                "institution_levels": ["*"],
                "deductible": "0.00",
                "deductible_scope": "annual",
                "deductible_key": "chronic",
                "ratio": "0.80",
                "cap": "5000.00",
                "cap_key": "chronic:M01600",
            }
        ]
    }
)
TOTALS = (
    "medfee_sumamt",
    "fulamt_ownpay_amt",
    "overlmt_selfpay",
    "preselfpay_amt",
    "inscp_scp_amt",
    "act_pay_dedc",
    "hifp_pay",
    "fund_pay_sumamt",
    "psn_part_amt",
    "acct_pay",
    "psn_cash_pay",
)


def get(policy, region: str, insutype: str, on: str):
    return policy.GetPolicy(
        policy_service_pb2.GetPolicyRequest(insuplc_admdvs=region, insutype=insutype, date=day(on)),
        timeout=10,
    )


def test_get_policy_uses_the_version_in_force_and_refuses_gaps_and_overlaps(
    policy, import_policy: ImportPolicy
) -> None:
    first = import_policy("131000", "310", "2025-01-01", CHRONIC, end="2025-12-31").policy
    toml = '[[rules]]\nmed_types = ["14"]\npsn_types = ["*"]\ninstitution_levels = ["*"]\nratio = "0.75"\n'
    second = import_policy("131000", "310", "2026-03-01", toml, toml=True).policy
    assert first.version_id.startswith("131000/310@2025-01-01#")
    assert first.rules[0].cap_fen == 500000 and first.rules[0].has_cap and first.rules[0].ratio == "0.80"
    assert get(policy, "131000", "310", "2025-06-30").policy.version_id == first.version_id
    assert get(policy, "131000", "310", "2027-01-01").policy.rules[0].ratio == "0.75"
    assert get(policy, "131000", "310", "2026-03-01").policy.version_id == second.version_id
    for gap in ("2026-01-15", "2024-12-31"):
        with pytest.raises(grpc.RpcError) as refused:
            get(policy, "131000", "310", gap)
        assert error_details(refused.value)["ErrorInfo"].reason == "NO_POLICY_VERSION"
    for effective, end in (("2025-06-01", None), ("2025-12-31", "2026-01-31"), ("2026-01-01", "2026-03-01")):
        with pytest.raises(grpc.RpcError) as overlap:
            import_policy("131000", "310", effective, CHRONIC, end=end)
        details = error_details(overlap.value)
        assert details["ErrorInfo"].reason == "INVALID_POLICY"
        assert details["BadRequest"].field_violations[0].field == "effective_date"
    import_policy("131000", "310", "2026-01-01", CHRONIC, end="2026-02-28")
    import_policy("131000", "390", "2025-06-01", CHRONIC)
    pages, token = [], ""
    while True:
        page = policy.ListPolicyVersions(
            policy_service_pb2.ListPolicyVersionsRequest(
                insuplc_admdvs="131000", page_size=2, page_token=token
            ),
            timeout=10,
        )
        pages.append([p.effective_date.month for p in page.policies])
        token = page.next_page_token
        if not token:
            break
    assert pages == [[3, 1], [6, 1]]
    only_390 = policy.ListPolicyVersions(
        policy_service_pb2.ListPolicyVersionsRequest(insuplc_admdvs="131000", insutype="390"), timeout=10
    )
    assert [p.insutype for p in only_390.policies] == ["390"]


@pytest.mark.parametrize(
    ("document", "reason", "field"),
    [
        (
            '{"rules": [{"med_types": ["14"], "psn_types": ["*"], "institution_levels": ["*"], "ratio": "1.2"}]}',
            "INVALID_POLICY",
            "document.rules[0].segments[0].ratio",
        ),
        (
            '{"rules": [{"med_types": ["21"], "psn_types": ["*"], "institution_levels": ["*"], "segments": '
            '[{"from": "0.00", "ratio": "0.8"}, {"from": "0.00", "ratio": "0.9"}]}]}',
            "INVALID_POLICY",
            "document.rules[0].segments[1].from",
        ),
        (
            '{"rules": [{"med_types": ["21"], "psn_types": ["*"], "institution_levels": ["*"], "ratio": "0.8", '
            '"deductible_scope": "annual"}]}',
            "INVALID_POLICY",
            "document.rules[0].deductible_key",
        ),
        ("{not json", "INVALID_POLICY", "document"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(
    import_policy: ImportPolicy, document, reason, field
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        import_policy("131000", "310", "2026-01-01", document)
    details = error_details(refused.value)
    assert details["ErrorInfo"].reason == reason
    assert field in [v.field for v in details["BadRequest"].field_violations]


_RULE = '[{"med_types": ["21"], "psn_types": ["*"], "institution_levels": ["*"], "ratio": "0.05"}]'


BEYOND_LIMITS = [
    ('"ratio_adjustments": {"long_term_resident": "-0.50"}', "document.ratio_adjustments.long_term_resident"),
    ('"ratio_adjustments": {"retiree_resettled": "-0.01"}', "document.ratio_adjustments.retiree_resettled"),
    ('"ratio_adjustments": {"posted_employee": "-0.01"}', "document.ratio_adjustments.posted_employee"),
    ('"ratio_adjustments": {"referral": "-0.11"}', "document.ratio_adjustments.referral"),
    ('"ratio_adjustments": {"emergency": "-0.101"}', "document.ratio_adjustments.emergency"),
    ('"ratio_adjustments": {"temporary_other": "-0.21"}', "document.ratio_adjustments.temporary_other"),
    ('"unfiled_factors": {"unreferred": "0"}', "document.unfiled_factors.unreferred"),
]


def test_a_policy_beyond_the_national_limits_is_refused_naming_the_field(
    policy, import_policy: ImportPolicy
) -> None:
    for limits, field in BEYOND_LIMITS:
        with pytest.raises(grpc.RpcError) as refused:
            import_policy("131000", "310", "2026-01-01", f'{{"rules": {_RULE}, {limits}}}')
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        details = error_details(refused.value)
        assert details["ErrorInfo"].reason == "POLICY_LIMIT_EXCEEDED", limits
        assert [v.field for v in details["BadRequest"].field_violations] == [field]
    assert not policy.ListPolicyVersions(
        policy_service_pb2.ListPolicyVersionsRequest(insuplc_admdvs="131000"), timeout=10
    ).policies


def test_a_policy_at_the_national_limits_imports_and_keeps_its_unfiled_direct_flag(
    policy, import_policy: ImportPolicy
) -> None:
    at_limits = (
        '{"referral": "-0.10", "emergency": "-0.10", "temporary_other": "-0.20", '
        '"long_term_resident": "0", "retiree_resettled": "0.05"}'
    )
    import_policy(
        "131000",
        "310",
        "2026-01-01",
        f'{{"rules": {_RULE}, "ratio_adjustments": {at_limits}, '
        '"unfiled_factors": {"unreferred": "0.50"}, "unfiled_direct": true}',
    )
    stored = get(policy, "131000", "310", "2026-03-01").policy
    assert stored.unfiled_direct and stored.ratio_adjustments["temporary_other"] == "-0.20"
    with pytest.raises(grpc.RpcError) as refused:
        import_policy("131000", "310", "2026-06-01", f'{{"rules": {_RULE}, "unfiled_direct": true}}')
    details = error_details(refused.value)
    assert details["ErrorInfo"].reason == "INVALID_POLICY"
    assert [v.field for v in details["BadRequest"].field_violations] == [
        "document.unfiled_factors.unreferred"
    ]


def _catalogue_csv(entries: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for entry in entries:
        restriction = entry.get("restriction") or {}
        writer.writerow(
            [
                entry["code"],
                entry.get("name") or "item",
                check_item_code(entry["code"])[1].value,
                {"A": "01", "B": "02", "C": "03"}.get(entry["class"], entry["class"]),
                entry.get("selfpay_ratio", ""),
                entry.get("price_ceiling", ""),
                ";".join(restriction.get("med_types", [])),
                ";".join(restriction.get("diagnosis_prefixes", [])),
                "",
                "",
            ]
        )
    return out.getvalue()


def _estimate_request(case: dict, insured: str, treatment: str) -> policy_service_pb2.EstimateRequest:
    visit, person = case["visit"], case["person"]
    service_date = visit["service_date"]
    accumulators = case.get("accumulators") or {}
    category = person.get("filing_category")
    return policy_service_pb2.EstimateRequest(
        insuplc_admdvs=insured,
        insutype=person["insutype"],
        psn_type=person["psn_type"],
        filing_category=filing_category_pb2.FilingCategory.Value(f"FILING_CATEGORY_{category.upper()}")
        if category
        else 0,
        visit=visit_pb2.VisitFacts(
            med_type=visit["med_type"],
            service_date=day(service_date),
            institution_level=visit["institution_level"],
            diagnoses=visit.get("diagnoses", []),
            chronic_disease=visit.get("chronic_disease") or "",
            emergency=bool(visit.get("emergency")),
            mdtrtarea_admvs=treatment,
            stay_deductible_paid_fen=to_fen(parse_money(visit.get("deductible_paid_in_stay", "0"), "paid")),
        ),
        items=[
            fee_item_pb2.FeeItem(
                feedetl_sn=str(item["sn"]),
                med_list_codg=item["code"],
                cnt=item["qty"],
                pric=item["price"],
                det_item_fee_sumamt_fen=to_fen(parse_money(item["amount"], "amount"))
                if "amount" in item
                else 0,
            )
            for item in case["items"]
        ],
        accumulators=policy_service_pb2.AccumulatorSnapshot(
            **{
                f"{kind}_fen": {
                    key: to_fen(parse_money(v, key)) for key, v in (accumulators.get(kind) or {}).items()
                }
                for kind in ("deductible", "segment", "cap", "fund")
            }
        ),
        low_income=bool(person.get("low_income")),
        civil_servant=bool(person.get("civil_servant")),
        assistance_category=person.get("assistance_category") or "",
        family_account_balance_fen=to_fen(parse_money(person.get("family_account_balance", "0"), "balance")),
        use_family_account=bool(person.get("use_family_account")),
        account_balance_fen=to_fen(parse_money(person.get("account_balance", "0.00"), "balance")),
        use_account=bool(person.get("use_account")),
    )


def test_estimate_equals_the_core_for_every_golden_case(
    policy, import_csv: ImportCsv, import_policy: ImportPolicy
) -> None:
    assert CASES, "no golden cases found"
    mismatches = []
    for index, path in enumerate(CASES):
        golden = json.loads(path.read_text(encoding="utf-8"))
        case, expected = golden["case"], golden["expected"]
        treatment, insured = f"{21 + index:02d}0000", f"{21 + index:02d}0100"
        import_csv(treatment, "2020-01-01", _catalogue_csv(case["catalogue"]))
        try:  # a policy the core refuses is refused on import already, with the case's reason
            import_policy(insured, case["person"]["insutype"], "2020-01-01", json.dumps(case["policy"]))
            result = policy.Estimate(_estimate_request(case, insured, treatment), timeout=10).result
        except grpc.RpcError as error:
            got = {"error": error_details(error)["ErrorInfo"].reason}
            if got != {"error": expected.get("error", {}).get("reason")}:
                mismatches.append((path.name, got))
            continue
        if "error" in expected:
            mismatches.append((path.name, "estimated a refused case"))
            continue
        amounts = result.amounts
        got_totals = {name: getattr(amounts, f"{name}_fen") for name in TOTALS}
        want_totals = {name: to_fen(parse_money(expected[name], name)) for name in TOTALS}
        got_items = [
            (
                i.feedetl_sn,
                i.det_item_fee_sumamt_fen,
                i.fulamt_ownpay_amt_fen,
                i.overlmt_amt_fen,
                i.preselfpay_amt_fen,
                i.inscp_scp_amt_fen,
            )
            for i in result.items
        ]
        want_items = [
            (
                str(i["sn"]),
                *(
                    to_fen(parse_money(i[p], p))
                    for p in ("amount", "fulamt_ownpay", "overlmt_selfpay", "preselfpay", "inscp")
                ),
            )
            for i in expected.get("items", [])
        ]
        if got_totals != want_totals or (want_items and got_items != want_items):
            mismatches.append((path.name, got_totals, want_totals))
        assert result.catalogue_version.startswith(f"{treatment}@2020-01-01#")
        assert result.policy_version.startswith(f"{insured}/")
    assert mismatches == []


def test_the_sample_data_reproduce_the_worked_example(
    policy, catalogue, import_csv: ImportCsv, import_policy: ImportPolicy
) -> None:
    data = REPO / "examples" / "data"
    rows = (data / "catalogues" / "110000-beijing.csv").read_text(encoding="utf-8").split("\n", 1)[1]
    assert (data / "catalogues" / "110000-beijing.csv").read_text(encoding="utf-8").startswith(HEADER)
    import_csv("110000", "2022-01-01", rows)
    import_policy(
        "131000", "310", "2022-01-01", (data / "policies" / "131000-310-langfang.toml").read_text(), toml=True
    )
    case = json.loads((REPO / "examples" / "cases" / "langfang-retiree-diabetes-beijing.json").read_text())
    result = policy.Estimate(_estimate_request(case, "131000", "110105"), timeout=10).result
    assert (result.amounts.hifp_pay_fen, result.amounts.psn_part_amt_fen) == (4889, 1540)


def test_estimate_names_bad_fields_by_their_proto_path(policy) -> None:
    request = policy_service_pb2.EstimateRequest(
        insuplc_admdvs="000000",
        insutype="320",
        psn_type="worker",
        visit=visit_pb2.VisitFacts(med_type="14", institution_level="3", mdtrtarea_admvs="110000"),
        items=[fee_item_pb2.FeeItem(feedetl_sn="1", med_list_codg="XA1", cnt="1", pric="-2")],
    )
    with pytest.raises(grpc.RpcError) as refused:
        policy.Estimate(request, timeout=10)
    fields = {v.field for v in error_details(refused.value)["BadRequest"].field_violations}
    assert {"insuplc_admdvs", "visit.service_date", "items[0].med_list_codg"} <= fields
