"""The treatment side's stored forms are exact: a message stored as columns and documents, and
read back, compares equal, whatever its fields hold; the documents are plain JSON."""

from __future__ import annotations

import json
from datetime import date
from types import SimpleNamespace
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.type.date_pb2 import Date
from hypothesis import given
from hypothesis import strategies as st

from yidi.settlement.v1 import settlement_pb2
from yidi.type.v1 import fee_item_pb2, settlement_result_pb2, visit_pb2
from yidi_codec import documents

int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
texts = st.text(max_size=12)
days = st.dates(date(1, 1, 1), date(9999, 12, 31)).map(
    lambda day: Date(year=day.year, month=day.month, day=day.day)
)
moments = st.builds(
    Timestamp,
    seconds=st.integers(-62_135_596_800, 253_402_300_799),  # 0001-01-01 to 9999-12-31, Timestamp's range
    nanos=st.integers(0, 999_999_999),
)


def enum_numbers(enum: Any) -> st.SearchStrategy[int]:
    """An enum's numbers, and numbers it does not name (a newer peer's)."""
    return st.sampled_from(enum.values()) | int32


def stored(columns: dict[str, Any]) -> SimpleNamespace:
    """The columns as a row reads them back: each document through JSON text."""
    return SimpleNamespace(
        **{
            name: json.loads(json.dumps(value)) if isinstance(value, dict) else value
            for name, value in columns.items()
        }
    )


def facts(service_dates: st.SearchStrategy[Date | None]) -> st.SearchStrategy[visit_pb2.VisitFacts]:
    return st.builds(
        visit_pb2.VisitFacts,
        med_type=texts,
        service_date=service_dates,
        institution_level=texts,
        diagnoses=st.lists(texts, max_size=3),
        chronic_disease=texts,
        emergency=st.booleans(),
        fixmedins_code=texts,
        mdtrtarea_admvs=texts,
    )


fee_items = st.builds(
    fee_item_pb2.FeeItem,
    feedetl_sn=texts,
    med_list_codg=texts,
    medins_list_codg=texts,
    cnt=texts,
    pric=texts,
    det_item_fee_sumamt_fen=int64,
    fee_ocur_time=st.none() | moments,
    chrg_bchno=texts,
    rxno=texts,
    bilg_dept_codg=texts,
    bilg_dr_codg=texts,
)
item_results = st.builds(
    fee_item_pb2.ItemResult,
    feedetl_sn=texts,
    med_list_codg=texts,
    det_item_fee_sumamt_fen=int64,
    chrgitm_lv=texts,
    selfpay_prop=texts,
    pric_uplmt_amt=texts,
    fulamt_ownpay_amt_fen=int64,
    overlmt_amt_fen=int64,
    preselfpay_amt_fen=int64,
    inscp_scp_amt_fen=int64,
    self_pay_reasons=st.lists(enum_numbers(fee_item_pb2.SelfPayReason), max_size=3),
    memo=texts,
)
amounts = st.builds(
    settlement_result_pb2.SettlementAmounts,
    **{name: int64 for name in documents.AMOUNT_COLUMNS if name.endswith("_fen")},
    pool_prop_selfpay=texts,
    cap_exhausted=st.booleans(),
)
explanations = st.builds(
    settlement_result_pb2.Explanation,
    rule_index=int32,
    rule_summary=texts,
    deductible_fen=int64,
    deductible_scope=texts,
    deductible_key=texts,
    deductible_counted_before_fen=int64,
    filing_category=texts,
    ratio_adjustment=texts,
    segments=st.lists(
        st.builds(
            settlement_result_pb2.SegmentExplanation,
            from_fen=int64,
            to_fen=int64,
            open_ended=st.booleans(),
            base_ratio=texts,
            adjusted_ratio=texts,
            amount_fen=int64,
            fund_raw=texts,
        ),
        max_size=3,
    ),
    cap_key=texts,
    cap_fen=int64,
    cap_room_before_fen=int64,
    cap_room_after_fen=int64,
    account_used=st.booleans(),
    lines=st.lists(texts, max_size=3),
)
results = st.builds(
    settlement_result_pb2.SettlementResult,
    amounts=amounts,
    fund_lines=st.lists(
        st.builds(
            settlement_result_pb2.FundPayLine,
            fund_pay_type=texts,
            fund_pay_type_name=texts,
            inscp_scp_amt_fen=int64,
            crt_payb_lmt_amt_fen=int64,
            fund_payamt_fen=int64,
            setl_proc_info=texts,
            unlimited=st.booleans(),
        ),
        max_size=2,
    ),
    items=st.lists(item_results, max_size=3),
    accumulator_changes=st.lists(
        st.builds(
            settlement_result_pb2.AccumulatorChange,
            kind=enum_numbers(settlement_result_pb2.AccumulatorKind),
            key=texts,
            year=int32,
            before_fen=int64,
            delta_fen=int64,
            after_fen=int64,
        ),
        max_size=3,
    ),
    explanation=st.none() | explanations,
    catalogue_version=texts,
    policy_version=texts,
)
bills = st.builds(
    settlement_pb2.SelfPayBill,
    fixmedins_code=texts,
    insuplc_admdvs=texts,
    facts=st.none() | facts(st.none() | days),
    items=st.lists(fee_items, max_size=3),
    medfee_sumamt_fen=int64,
    invoice_numbers=st.lists(texts, max_size=3),
    direct_settlement_failure_reason=texts,
    service_date=st.none() | days,
)


@given(facts(days))
def test_a_visit_s_facts_survive_its_columns(message: visit_pb2.VisitFacts) -> None:
    assert documents.visit_facts_from_columns(stored(documents.visit_facts_columns(message))) == message


@given(fee_items)
def test_a_fee_line_as_uploaded_survives_its_document(message: fee_item_pb2.FeeItem) -> None:
    document = json.loads(json.dumps(documents.fee_item_document(message)))
    assert documents.fee_item_from_document(document) == message


@given(item_results)
def test_a_fee_line_s_classification_survives_its_columns(message: fee_item_pb2.ItemResult) -> None:
    assert documents.item_result_from_columns(stored(documents.item_result_columns(message))) == message


@given(results)
def test_a_settlement_result_survives_its_columns(message: settlement_result_pb2.SettlementResult) -> None:
    columns = documents.settlement_result_columns(message)
    assert documents.settlement_result_from_columns(stored(columns)) == message


@given(bills)
def test_a_self_pay_bill_survives_its_columns(message: settlement_pb2.SelfPayBill) -> None:
    assert documents.self_pay_bill_from_columns(stored(documents.self_pay_bill_columns(message))) == message


def test_a_document_is_plain_json_in_fen_names_and_iso_times() -> None:
    line = fee_item_pb2.ItemResult(
        feedetl_sn="0001",
        det_item_fee_sumamt_fen=3000,
        chrgitm_lv="02",
        self_pay_reasons=[fee_item_pb2.SELF_PAY_REASON_FIRST_SELF_PAY, 99],
    )
    assert documents.item_result_columns(line) == {
        "det_item_fee_sumamt_fen": 3000,
        "fulamt_ownpay_amt_fen": 0,
        "overlmt_amt_fen": 0,
        "preselfpay_amt_fen": 0,
        "inscp_scp_amt_fen": 0,
        "classified": {
            "v": 1,
            "feedetl_sn": "0001",
            "med_list_codg": "",
            "chrgitm_lv": "02",
            "selfpay_prop": "",
            "pric_uplmt_amt": "",
            "memo": "",
            "self_pay_reasons": ["first_self_pay", 99],
        },
    }
    uploaded = documents.fee_item_document(
        fee_item_pb2.FeeItem(feedetl_sn="0001", fee_ocur_time=Timestamp(seconds=1_656_640_800, nanos=5))
    )
    assert uploaded["fee_ocur_time"] == "2022-07-01T02:00:00.000000005Z"
    uploaded["fee_ocur_time"] = "2022-07-01T02:00:00.5Z"  # RFC 3339 as other writers shorten it
    assert documents.fee_item_from_document(uploaded).fee_ocur_time.nanos == 500_000_000
    bill = documents.self_pay_bill_columns(
        settlement_pb2.SelfPayBill(service_date=Date(year=2022, month=7, day=1))
    )
    assert (bill["service_date"], bill["details"]["facts"]) == (date(2022, 7, 1), None)


def test_a_document_of_another_version_is_refused() -> None:
    document = documents.fee_item_document(fee_item_pb2.FeeItem(feedetl_sn="0001"))
    with pytest.raises(ValueError, match="unknown version 2"):
        documents.fee_item_from_document({**document, "v": 2})
