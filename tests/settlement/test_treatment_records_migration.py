"""settlement_0008 converts records kept as protobuf bytes: read back, and answered, as before; and back.

Rows are written as the schema of settlement_0007 held them (a visit, its lines, a
settlement and its reversal, two self-pay bills), then migrated. GetSettlement and
GetSelfPayBill answer exactly what the code of that schema answered from the bytes, and a
downgrade writes the very bytes again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp
from google.type.date_pb2 import Date
from treatment_his import HOSPITAL, TREATMENT_AREA

from yidi.settlement.v1 import settlement_pb2
from yidi.settlement.v1 import settlement_service_pb2 as api
from yidi.settlement.v1 import settlement_service_pb2_grpc as api_grpc
from yidi.type.v1 import fee_item_pb2, person_pb2, settlement_result_pb2, visit_pb2
from yidi_codec.documents import item_result_from_columns
from yidi_core.codes import mask_id_number
from yidi_runtime.config import NodeSettings
from yidi_runtime.db import Database, service_url
from yidi_runtime.migrate import downgrade, upgrade
from yidi_runtime.wire import timestamp_message
from yidi_services.node import GROUPS, start_node
from yidi_services.settlement.treatment.fees import active_items
from yidi_services.settlement.treatment.models import FeeLineRow, VisitRow
from yidi_services.settlement.treatment.records import reversed_result
from yidi_services.settlement.treatment.visits import facts_of
from yidi_testing import settings_for

LEGACY = "settlement_0007"
GROUP = GROUPS["settlement"]
MDTRT_ID = "110000000000000000000000000001"
SETL_ID, REVERSAL_ID = "110000000000000000000000000002", "110000000000000000000000000003"
AT = datetime(2022, 7, 3, 2, 0, tzinfo=UTC)

FACTS = visit_pb2.VisitFacts(
    med_type="21",
    service_date=Date(year=2022, month=7, day=3),
    institution_level="3",
    diagnoses=["I10.X00", "E11.900"],
    emergency=True,
    fixmedins_code=HOSPITAL,
    mdtrtarea_admvs=TREATMENT_AREA,
)
ITEMS = (
    fee_item_pb2.FeeItem(
        feedetl_sn="0001",
        med_list_codg="XA10BFA022A001010100001",
        medins_list_codg="HIS-XA10BFA022",
        cnt="2",
        pric="16.26",
        det_item_fee_sumamt_fen=3252,
        fee_ocur_time=Timestamp(seconds=1_656_810_000, nanos=123_456_789),
        chrg_bchno="B7",
        rxno="RX-1",
    ),
    fee_item_pb2.FeeItem(feedetl_sn="0002", med_list_codg="XA10BXR023A001010100002", cnt="1", pric="31.77"),
)
LINES = (
    fee_item_pb2.ItemResult(
        feedetl_sn="0001",
        med_list_codg="XA10BFA022A001010100001",
        det_item_fee_sumamt_fen=3252,
        chrgitm_lv="01",
        selfpay_prop="0",
        inscp_scp_amt_fen=3252,
    ),
    fee_item_pb2.ItemResult(
        feedetl_sn="0002",
        med_list_codg="XA10BXR023A001010100002",
        det_item_fee_sumamt_fen=3177,
        chrgitm_lv="02",
        selfpay_prop="0.1",
        pric_uplmt_amt="30.00",
        overlmt_amt_fen=177,
        preselfpay_amt_fen=300,
        inscp_scp_amt_fen=2700,
        self_pay_reasons=[
            fee_item_pb2.SELF_PAY_REASON_OVER_PRICE_CEILING,
            fee_item_pb2.SELF_PAY_REASON_FIRST_SELF_PAY,
        ],
        memo="超限价部分自付；乙类先行自付",
    ),
)
RESULT = settlement_result_pb2.SettlementResult(
    amounts=settlement_result_pb2.SettlementAmounts(
        medfee_sumamt_fen=6429,
        overlmt_selfpay_fen=177,
        preselfpay_amt_fen=300,
        inscp_scp_amt_fen=5952,
        hifp_pay_fen=5357,
        pool_prop_selfpay="0.9000",
        fund_pay_sumamt_fen=5357,
        psn_part_amt_fen=1072,
        acct_pay_fen=1072,
        balc_fen=8928,
    ),
    fund_lines=[
        settlement_result_pb2.FundPayLine(
            fund_pay_type="310100",
            fund_pay_type_name="职工基本医疗保险统筹基金",
            inscp_scp_amt_fen=5952,
            fund_payamt_fen=5357,
            setl_proc_info="med_types 21 · psn_types retired · levels * → 90%",
            unlimited=True,
        ),
        settlement_result_pb2.FundPayLine(
            fund_pay_type="310200", inscp_scp_amt_fen=1072, crt_payb_lmt_amt_fen=10000, fund_payamt_fen=1072
        ),
    ],
    items=LINES,
    accumulator_changes=[
        settlement_result_pb2.AccumulatorChange(
            kind=settlement_result_pb2.ACCUMULATOR_KIND_SEGMENT,
            key="inpatient",
            year=2022,
            before_fen=100,
            delta_fen=5952,
            after_fen=6052,
        ),
        settlement_result_pb2.AccumulatorChange(
            kind=settlement_result_pb2.ACCUMULATOR_KIND_ACCOUNT, year=2022, before_fen=10000, delta_fen=-1072
        ),
    ],
    explanation=settlement_result_pb2.Explanation(
        rule_index=2,
        rule_summary="med_types 21 · psn_types retired · levels * → 90%",
        deductible_scope="per_visit",
        segments=[
            settlement_result_pb2.SegmentExplanation(
                open_ended=True, base_ratio="0.9", adjusted_ratio="0.9", amount_fen=5952, fund_raw="5356.8"
            )
        ],
        account_used=True,
        lines=["统筹基金支付 53.57 元", "个人账户支付 10.72 元"],
    ),
    catalogue_version="110000@2022-01-01#1",
    policy_version="131000/310@2022-01-01#1",
)
REVERSAL = reversed_result(
    RESULT, [settlement_result_pb2.AccumulatorChange(key="inpatient", delta_fen=-5952)], SETL_ID
)
CREDENTIAL = person_pb2.Credential(mdtrt_cert_type="02", mdtrt_cert_no="131000195402270170")
BILL = settlement_pb2.SelfPayBill(
    fixmedins_code=HOSPITAL,
    insuplc_admdvs="131000",
    facts=visit_pb2.VisitFacts(med_type="11", diagnoses=["E11.900"], fixmedins_code=HOSPITAL),
    items=ITEMS,
    medfee_sumamt_fen=6429,
    invoice_numbers=["F-1", "F-2"],
    direct_settlement_failure_reason="NOT_FILED",
    service_date=Date(year=2022, month=7, day=1),
)
NO_DAY = settlement_pb2.SelfPayBill(
    fixmedins_code=HOSPITAL,
    insuplc_admdvs="131000",
    facts=visit_pb2.VisitFacts(med_type="11", service_date=Date(year=2022, month=2, day=30)),
)
"""A bill whose facts' service date is no day: accepted before settlement_0008, it keeps none."""
BILL_ID, NO_DAY_ID = "110000000000000000000000000004", "110000000000000000000000000005"


def _encoded(message: Any) -> bytes:
    return bytes(message.SerializeToString(deterministic=True))


def _settlement_row(
    key: int, setl_id: str, result: settlement_result_pb2.SettlementResult, **rest: Any
) -> dict[str, Any]:
    return {
        "id": key,
        "setl_id": setl_id,
        "medins_setl_id": f"{HOSPITAL}2022070310000000{key:02d}",
        "insured_request_id": f"{HOSPITAL}/{HOSPITAL}2022070310000000{key:02d}:apply",
        "mdtrt_id": MDTRT_ID,
        "psn_no": "131000000000000000000000000001",
        "fixmedins_code": HOSPITAL,
        "mdtrtarea_admvs": TREATMENT_AREA,
        "insuplc_admdvs": "131000",
        "insutype": "310",
        "med_type": "21",
        "clr_type": "21",
        "pay_loc": "4",
        "invono": "INV-1",
        "setl_time": AT,
        "result": _encoded(result),
        "audit_flag": False,
        **rest,
    }


LEGACY_ROWS: dict[str, list[dict[str, Any]]] = {
    "settlement_visits": [
        {
            "mdtrt_id": MDTRT_ID,
            "request_id": f"{HOSPITAL}20220701093000000001",
            "fixmedins_code": HOSPITAL,
            "mdtrtarea_admvs": TREATMENT_AREA,
            "insuplc_admdvs": "131000",
            "psn_no": "131000000000000000000000000001",
            "insutype": "310",
            "facts": _encoded(FACTS),
            "ipt_otp_no": "ZY-1",
            "dept_code": "A03",
            "atddr_no": "",
            "begin_time": datetime(2022, 7, 1, 1, 30, tzinfo=UTC),
            "end_time": AT,
            "state": "settled",
            "setl_id": SETL_ID,
            "created_at": datetime(2022, 7, 1, 1, 30, tzinfo=UTC),
        }
    ],
    "settlement_fee_lines": [
        {
            "id": index,
            "mdtrt_id": MDTRT_ID,
            "feedetl_sn": item.feedetl_sn,
            "upload_request_id": f"{HOSPITAL}20220701100000000001",
            "fingerprint": f"{index:064d}",
            "item": _encoded(item),
            "result": _encoded(line),
            "catalogue_version": RESULT.catalogue_version,
            "active": True,
            "created_at": AT,
        }
        for index, (item, line) in enumerate(zip(ITEMS, LINES, strict=True), start=1)
    ],
    "settlement_settlements": [
        _settlement_row(1, SETL_ID, RESULT, reversed=True, reverses_setl_id=None),
        _settlement_row(2, REVERSAL_ID, REVERSAL, reversed=False, reverses_setl_id=SETL_ID),
    ],
    "settlement_self_pay_bills": [
        {
            "bill_id": bill_id,
            "request_id": f"{HOSPITAL}2022070110000000{bill_id[-2:]}",
            "fixmedins_code": HOSPITAL,
            "insuplc_admdvs": "131000",
            "mdtrt_cert_type": CREDENTIAL.mdtrt_cert_type,
            "mdtrt_cert_no": CREDENTIAL.mdtrt_cert_no,
            "card_sn": "",
            "bill": _encoded(bill),
            "upload_time": AT,
        }
        for bill_id, bill in ((BILL_ID, BILL), (NO_DAY_ID, NO_DAY))
    ],
}
ENCODED = {
    "settlement_visits": ("mdtrt_id", ("facts",)),
    "settlement_fee_lines": ("id", ("item", "result")),
    "settlement_settlements": ("id", ("result",)),
    "settlement_self_pay_bills": ("bill_id", ("bill",)),
}


def _tables(database: Database) -> dict[str, sa.Table]:
    metadata = sa.MetaData()
    return {name: sa.Table(name, metadata, autoload_with=database.engine) for name in LEGACY_ROWS}


def _encodings(database: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row's key and bytes, table by table."""
    tables = _tables(database)
    with database.engine.connect() as connection:
        return {
            name: [
                tuple(row)
                for row in connection.execute(
                    sa.select(tables[name].c[key], *(tables[name].c[column] for column in columns)).order_by(
                        tables[name].c[key]
                    )
                )
            ]
            for name, (key, columns) in ENCODED.items()
        }


def _legacy_settlement(row: dict[str, Any]) -> settlement_pb2.Settlement:
    """What GetSettlement answered from the row before settlement_0008 (treatment/records.py then)."""
    return settlement_pb2.Settlement(
        setl_id=row["setl_id"],
        medins_setl_id=row["medins_setl_id"],
        mdtrt_id=row["mdtrt_id"],
        psn_no=row["psn_no"],
        fixmedins_code=row["fixmedins_code"],
        mdtrtarea_admvs=row["mdtrtarea_admvs"],
        insuplc_admdvs=row["insuplc_admdvs"],
        insutype=row["insutype"],
        med_type=row["med_type"],
        clr_type=row["clr_type"],
        pay_loc=row["pay_loc"],
        setl_time=timestamp_message(row["setl_time"]),
        result=settlement_result_pb2.SettlementResult.FromString(row["result"]),
        audit_flag=row["audit_flag"],
        reversed=row["reversed"],
        reverses_setl_id=row["reverses_setl_id"] or "",
    )


def _legacy_bill(row: dict[str, Any]) -> settlement_pb2.SelfPayBill:
    """What GetSelfPayBill answered from the row before settlement_0008 (treatment/bills.py then)."""
    bill = settlement_pb2.SelfPayBill.FromString(row["bill"])
    bill.bill_id = row["bill_id"]
    bill.upload_time.CopyFrom(timestamp_message(row["upload_time"]))
    bill.credential.CopyFrom(
        person_pb2.Credential(
            mdtrt_cert_type=row["mdtrt_cert_type"], mdtrt_cert_no=mask_id_number(row["mdtrt_cert_no"])
        )
    )
    return bill


@pytest.fixture
def legacy(tmp_path: Path, empty_database_url: str | None) -> Iterator[tuple[NodeSettings, Database]]:
    """A settlement database at settlement_0007 holding :data:`LEGACY_ROWS`, and the settings of a node on it."""
    settings = settings_for(tmp_path, empty_database_url, auto_migrate=True)
    database = Database.open("settlement", service_url(settings, "settlement"))
    upgrade(database, GROUP.versions, GROUP.metadata, LEGACY)
    tables = _tables(database)
    with database.engine.begin() as connection:
        for name, rows in LEGACY_ROWS.items():
            connection.execute(sa.insert(tables[name]), rows)
    yield settings, database
    database.dispose()


def test_records_kept_as_bytes_are_converted_read_back_and_answered_as_before(
    legacy: tuple[NodeSettings, Database],
) -> None:
    settings, database = legacy
    before = _encodings(database)
    repaired = settlement_pb2.SelfPayBill()
    repaired.CopyFrom(NO_DAY)
    repaired.facts.ClearField("service_date")
    upgrade(database, GROUP.versions, GROUP.metadata)
    with database.unit_of_work() as uow:
        visit = uow.session.get(VisitRow, MDTRT_ID)
        assert visit is not None and facts_of(visit) == FACTS
        assert (visit.service_date, visit.diagnoses) == (
            date(2022, 7, 3),
            {"v": 1, "codes": ["I10.X00", "E11.900"]},
        )
        assert active_items(uow.session, MDTRT_ID) == list(ITEMS)
        lines = uow.session.scalars(sa.select(FeeLineRow).order_by(FeeLineRow.id)).all()
        assert [item_result_from_columns(line) for line in lines] == list(LINES)
        assert sum(line.det_item_fee_sumamt_fen for line in lines) == RESULT.amounts.medfee_sumamt_fen

    downgrade(database, GROUP.versions, GROUP.metadata, LEGACY)
    assert _encodings(database) == {
        **before,
        "settlement_self_pay_bills": [
            (key, _encoded(repaired) if key == NO_DAY_ID else encoded)
            for key, encoded in before["settlement_self_pay_bills"]
        ],
    }
    upgrade(database, GROUP.versions, GROUP.metadata)

    node = start_node(settings)
    try:
        with grpc.insecure_channel(node.address) as channel:
            stub = api_grpc.SettlementServiceStub(channel)
            for row in LEGACY_ROWS["settlement_settlements"]:
                answer = stub.GetSettlement(api.GetSettlementRequest(setl_id=row["setl_id"]), timeout=20)
                assert answer.settlement == _legacy_settlement(row)
            reversal = stub.GetSettlement(
                api.GetSettlementRequest(setl_id=REVERSAL_ID), timeout=20
            ).settlement
            assert reversal.result.amounts.medfee_sumamt_fen == -6429
            for row in LEGACY_ROWS["settlement_self_pay_bills"]:
                answer = stub.GetSelfPayBill(api.GetSelfPayBillRequest(bill_id=row["bill_id"]), timeout=20)
                expected = _legacy_bill(row)
                if row["bill_id"] == NO_DAY_ID:
                    expected.facts.ClearField("service_date")
                assert answer.bill == expected
    finally:
        node.stop(0)
