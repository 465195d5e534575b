"""What a HIS may not send, refused with the field on SQLite and PostgreSQL alike: a time or date
not come yet, a person number the credential does not name, amounts beyond MAX_AMOUNT_FEN.

A Beijing hospital, on the worked example's morning (2022-07-01 10:00 in China): every
node's settlement service runs on a clock the test sets.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.type.date_pb2 import Date
from loading import BEIJING, LANGFANG, SERVICE_DAY, beijing_tree, psn_no_of
from treatment_his import DRUGS, diabetes_visit, envelope, id_card, lines, msgid, refusal, upload

from yidi.settlement.v1 import settlement_pb2
from yidi.settlement.v1 import settlement_service_pb2 as api
from yidi.settlement.v1 import settlement_service_pb2_grpc as api_grpc
from yidi.type.v1 import fee_item_pb2, visit_pb2
from yidi_core.money import MAX_AMOUNT_FEN
from yidi_runtime.config import NodeSettings
from yidi_runtime.server import Node, create_server
from yidi_services.node import groups_for

NOW = datetime(2022, 7, 1, 2, 0, tzinfo=UTC)  # 10:00 in China, half an hour after the visit began
RESIDENT_CERTNO = "131000198309180289"  # 样例廊二: insured in Langfang, filed nowhere
BAD = (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def _on_clock(settings: NodeSettings, clock: Callable[[], datetime]) -> Node:
    groups = [
        replace(group, register=functools.partial(group.register, clock=clock))
        if group.name == "settlement"
        else group
        for group in groups_for(settings)
    ]
    return create_server(settings, groups)


@pytest.fixture
def his(
    tmp_path: Path, database_factory: Callable[[], str | None]
) -> Iterator[tuple[api_grpc.SettlementServiceStub, str]]:
    """The Beijing node's HIS stub, and the Langfang retiree's person number."""
    start = functools.partial(_on_clock, clock=lambda: NOW)
    with (
        beijing_tree(tmp_path, database_factory, start=start) as nodes,
        grpc.insecure_channel(nodes[BEIJING].address) as channel,
    ):
        yield api_grpc.SettlementServiceStub(channel), psn_no_of(nodes)


def test_times_and_dates_not_come_yet_are_refused_naming_the_field(
    his: tuple[api_grpc.SettlementServiceStub, str],
) -> None:
    stub, psn_no = his
    tomorrow = Date(year=2022, month=7, day=2)
    verify = api.VerifyPersonRequest(envelope=envelope(), credential=id_card(), service_date=tomorrow)
    assert refusal(lambda: stub.VerifyPerson(verify, timeout=20)) == (*BAD, ["service_date"])

    early = diabetes_visit(psn_no, begin_time=stamp(NOW + timedelta(minutes=6)))
    assert refusal(lambda: stub.RegisterVisit(early, timeout=20)) == (*BAD, ["begin_time"])
    planned = diabetes_visit(
        psn_no, facts=visit_pb2.VisitFacts(med_type="11", service_date=tomorrow, diagnoses=["E11.900"])
    )
    assert refusal(lambda: stub.RegisterVisit(planned, timeout=20)) == (*BAD, ["facts.service_date"])
    fast_clock = diabetes_visit(psn_no, begin_time=stamp(NOW + timedelta(minutes=4)))  # within 5 minutes
    visit = stub.RegisterVisit(fast_clock, timeout=20).visit

    items = lines()
    items[1].fee_ocur_time.CopyFrom(stamp(NOW + timedelta(hours=1)))
    assert refusal(lambda: upload(stub, visit.mdtrt_id, items=items)) == (*BAD, ["items[1].fee_ocur_time"])
    items[1].fee_ocur_time.CopyFrom(stamp(NOW))
    assert len(upload(stub, visit.mdtrt_id, items=items).results) == 2

    admission = diabetes_visit(psn_no, facts=visit_pb2.VisitFacts(med_type="21", diagnoses=["E11.900"]))
    stay = stub.RegisterVisit(admission, timeout=20).visit
    discharge = api.DischargeVisitRequest(
        request_id=msgid(),
        envelope=envelope(),
        mdtrt_id=stay.mdtrt_id,
        end_time=stamp(NOW + timedelta(days=1)),
    )
    assert refusal(lambda: stub.DischargeVisit(discharge, timeout=20)) == (*BAD, ["end_time"])
    discharge.end_time.CopyFrom(stamp(NOW))
    assert stub.DischargeVisit(discharge, timeout=20).visit.state == settlement_pb2.VISIT_STATE_DISCHARGED

    bill = _bill(service_date=tomorrow)
    assert refusal(lambda: _upload_bill(stub, bill)) == (*BAD, ["bill.service_date"])


def test_a_person_number_the_credential_does_not_name_is_refused(
    his: tuple[api_grpc.SettlementServiceStub, str],
) -> None:
    stub, retiree = his
    someone_else = diabetes_visit(retiree, credential=id_card(RESIDENT_CERTNO))
    assert refusal(lambda: stub.RegisterVisit(someone_else, timeout=20)) == (*BAD, ["psn_no"])
    nobody = diabetes_visit(retiree, credential=id_card("131000199001010018"))
    assert refusal(lambda: stub.RegisterVisit(nobody, timeout=20))[:2] == (
        grpc.StatusCode.NOT_FOUND,
        "PERSON_NOT_FOUND",
    )
    assert stub.RegisterVisit(diabetes_visit(retiree), timeout=20).visit.psn_no == retiree


def test_a_person_not_filed_may_still_be_registered_under_their_own_number(
    tmp_path: Path, database_factory: Callable[[], str | None]
) -> None:
    """Registration asks who the credential names, not whether they may settle (出院结算前补办备案)."""
    start = functools.partial(_on_clock, clock=lambda: NOW)
    with (
        beijing_tree(tmp_path, database_factory, start=start) as nodes,
        grpc.insecure_channel(nodes[BEIJING].address) as channel,
    ):
        resident = psn_no_of(nodes, RESIDENT_CERTNO)
        admission = diabetes_visit(
            resident,
            insutype="390",
            credential=id_card(RESIDENT_CERTNO),
            facts=visit_pb2.VisitFacts(med_type="21", diagnoses=["E11.900"]),
        )
        visit = api_grpc.SettlementServiceStub(channel).RegisterVisit(admission, timeout=20).visit
        assert (visit.psn_no, visit.insuplc_admdvs) == (resident, LANGFANG)


def test_amounts_beyond_the_maximum_are_refused_and_a_visit_never_totals_more(
    his: tuple[api_grpc.SettlementServiceStub, str],
) -> None:
    stub, psn_no = his
    visit = stub.RegisterVisit(diabetes_visit(psn_no), timeout=20).visit
    code = DRUGS[0][1]
    huge_line = [
        fee_item_pb2.FeeItem(
            feedetl_sn="1", med_list_codg=code, cnt="1", pric="1", det_item_fee_sumamt_fen=2**63 - 1
        )
    ]
    assert refusal(lambda: upload(stub, visit.mdtrt_id, items=huge_line)) == (
        *BAD,
        ["items[0].det_item_fee_sumamt_fen"],
    )
    product = [fee_item_pb2.FeeItem(feedetl_sn="1", med_list_codg=code, cnt="999999999999999", pric="999999")]
    assert refusal(lambda: upload(stub, visit.mdtrt_id, items=product)) == (*BAD, ["items[0].cnt"])

    # Each line below the maximum, two of them beyond it together: refused, in one upload or two.
    big = (code, "600000", "1000000")  # 600 billion yuan
    assert refusal(lambda: upload(stub, visit.mdtrt_id, rows=[("1", *big), ("2", *big)])) == (*BAD, ["items"])
    first = upload(stub, visit.mdtrt_id, rows=[("1", *big)])
    assert upload(stub, visit.mdtrt_id, rows=[("1", *big)]) == first  # the same line again counts once
    assert refusal(lambda: upload(stub, visit.mdtrt_id, rows=[("2", *big)])) == (*BAD, ["items"])
    cancel = api.CancelFeeItemsRequest(
        request_id=msgid(), envelope=envelope(), mdtrt_id=visit.mdtrt_id, feedetl_sns=["1"]
    )
    stub.CancelFeeItems(cancel, timeout=20)
    assert (
        upload(stub, visit.mdtrt_id, rows=[("2", *big)]).results[0].det_item_fee_sumamt_fen
        == 60_000_000_000_000
    )

    settle = api.SettleRequest(
        request_id=msgid(), envelope=envelope(), mdtrt_id=visit.mdtrt_id, medfee_sumamt_fen=MAX_AMOUNT_FEN + 1
    )
    assert refusal(lambda: stub.Settle(settle, timeout=20)) == (*BAD, ["medfee_sumamt_fen"])
    assert refusal(lambda: _upload_bill(stub, _bill(rows=[("1", *big), ("2", *big)]))) == (
        *BAD,
        ["bill.items"],
    )


def _bill(rows: Any = DRUGS, **fields: Any) -> settlement_pb2.SelfPayBill:
    items = lines(rows)
    values: dict[str, Any] = {
        "credential": id_card(),
        "insuplc_admdvs": LANGFANG,
        "facts": visit_pb2.VisitFacts(med_type="14", diagnoses=["E11.900"], chronic_disease="M01600"),
        "items": items,
        "medfee_sumamt_fen": 0,
        "service_date": SERVICE_DAY,
        **fields,
    }
    return settlement_pb2.SelfPayBill(**values)


def _upload_bill(stub: api_grpc.SettlementServiceStub, bill: settlement_pb2.SelfPayBill) -> Any:
    request = api.UploadSelfPayBillRequest(request_id=msgid(), envelope=envelope(), bill=bill)
    return stub.UploadSelfPayBill(request, timeout=20)
