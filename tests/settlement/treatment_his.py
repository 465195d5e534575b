"""What a Beijing hospital's HIS sends: envelopes, msgids, visits and fee lines (the worked example)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from loading import LANGFANG, RETIREE_CERTNO, SERVICE_DAY

from yidi.settlement.v1 import settlement_pb2
from yidi.settlement.v1 import settlement_service_pb2 as api
from yidi.settlement.v1 import settlement_service_pb2_grpc as api_grpc
from yidi.type.v1 import fee_item_pb2, person_pb2, visit_pb2
from yidi_testing import error_details

HOSPITAL = "H11010100001"  # tertiary, chronic outpatient M01600 opened 2022-01-01
NEIGHBOUR = "H11010500001"  # another Beijing hospital
TREATMENT_AREA = "110101"
DRUGS = (("1", "XA10BFA022A001010100001", "1", "32.52"), ("2", "XA10BXR023A001010100002", "1", "31.77"))
"""The worked example's bill: acarbose (class A) and repaglinide (class B, 10% first self-pay)."""
DRUGS_FEN = 6429

_sequence = itertools.count(random.randrange(10_000))


def msgid(institution: str = HOSPITAL) -> str:
    """A national msgid: the institution, yyyyMMddHHmmss, a 4-digit sequence (30 characters)."""
    return f"{institution}{datetime.now(UTC):%Y%m%d%H%M%S}{next(_sequence) % 10_000:04d}"


def envelope(
    institution: str = HOSPITAL, area: str = TREATMENT_AREA, insured: str = LANGFANG
) -> settlement_pb2.Envelope:
    return settlement_pb2.Envelope(
        fixmedins_code=institution,
        mdtrtarea_admvs=area,
        insuplc_admdvs=insured,
        opter_type="1",
        opter="clerk-7",
    )


def id_card(certno: str = RETIREE_CERTNO) -> person_pb2.Credential:
    return person_pb2.Credential(mdtrt_cert_type="02", mdtrt_cert_no=certno)


def diabetes_visit(psn_no: str, request_id: str | None = None, **fields: Any) -> api.RegisterVisitRequest:
    """A chronic-disease outpatient visit (14, diabetes M01600) on the worked example's day."""
    begin = Timestamp()
    begin.FromDatetime(datetime(2022, 7, 1, 1, 30, tzinfo=UTC))
    values: dict[str, Any] = {
        "request_id": request_id or msgid(),
        "envelope": envelope(),
        "psn_no": psn_no,
        "insutype": "310",
        "credential": id_card(),
        "facts": visit_pb2.VisitFacts(
            med_type="14", service_date=SERVICE_DAY, diagnoses=["E11.900"], chronic_disease="M01600"
        ),
        "ipt_otp_no": f"MZ{next(_sequence):08d}",
        "dept_code": "A03",
        "begin_time": begin,
        **fields,
    }
    return api.RegisterVisitRequest(**values)


def lines(rows: Sequence[tuple[str, str, str, str]] = DRUGS) -> list[fee_item_pb2.FeeItem]:
    return [
        fee_item_pb2.FeeItem(feedetl_sn=sn, med_list_codg=code, cnt=cnt, pric=pric)
        for sn, code, cnt, pric in rows
    ]


def upload(
    stub: api_grpc.SettlementServiceStub,
    mdtrt_id: str,
    rows: Sequence[tuple[str, str, str, str]] = DRUGS,
    **fields: Any,
) -> api.UploadFeeItemsResponse:
    values: dict[str, Any] = {
        "request_id": msgid(),
        "envelope": envelope(),
        "mdtrt_id": mdtrt_id,
        "items": lines(rows),
    }
    return stub.UploadFeeItems(api.UploadFeeItemsRequest(**{**values, **fields}), timeout=20)


def settle_request(mdtrt_id: str, request_id: str | None = None, **fields: Any) -> api.SettleRequest:
    values: dict[str, Any] = {
        "request_id": request_id or msgid(),
        "envelope": envelope(),
        "mdtrt_id": mdtrt_id,
        "medfee_sumamt_fen": DRUGS_FEN,
        "invono": "FP0001",
        **fields,
    }
    return api.SettleRequest(**values)


def correct_request(omsgid: str, oinfno: int, **fields: Any) -> api.CorrectRequest:
    values: dict[str, Any] = {
        "request_id": msgid(),
        "envelope": envelope(),
        "omsgid": omsgid,
        "oinfno": oinfno,
    }
    return api.CorrectRequest(**{**values, **fields})


def refusal(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str, list[str]]:
    """Call and expect a refusal: its status code, stable reason and the fields it names."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    details = error_details(caught.value)
    bad = details.get("BadRequest")
    return (
        caught.value.code(),
        details["ErrorInfo"].reason,
        [violation.field for violation in bad.field_violations] if bad else [],
    )


def open_visit(stub: api_grpc.SettlementServiceStub, psn_no: str, **fields: Any) -> str:
    """A registered diabetes visit (``fields`` for RegisterVisit) with the worked example's two drugs uploaded."""
    mdtrt_id = stub.RegisterVisit(diabetes_visit(psn_no, **fields), timeout=20).visit.mdtrt_id
    upload(stub, mdtrt_id, envelope=fields.get("envelope", envelope()))
    return mdtrt_id
