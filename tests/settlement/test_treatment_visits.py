"""The treatment node before any settlement: visits, fee lines, corrections, permissions, self-pay bills.

The insured node is asked only who the credential names: a Beijing hospital registers a
Langfang retiree's visit (the HIS knows the person number from 1101), uploads and cancels
fee lines classified with Beijing's catalogue, corrects calls whose fate it does not know,
and uploads a full bill for manual reimbursement.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from google.type.date_pb2 import Date
from loading import BEIJING, LANGFANG, RETIREE_CERTNO, SERVICE_DAY, beijing_tree, psn_no_of
from treatment_his import (
    DRUGS,
    DRUGS_FEN,
    HOSPITAL,
    NEIGHBOUR,
    correct_request,
    diabetes_visit,
    envelope,
    id_card,
    lines,
    msgid,
    refusal,
    upload,
)

from yidi.settlement.v1 import settlement_pb2
from yidi.settlement.v1 import settlement_service_pb2 as api
from yidi.settlement.v1 import settlement_service_pb2_grpc as api_grpc
from yidi.type.v1 import fee_item_pb2, visit_pb2
from yidi_runtime.server import Node
from yidi_services.settlement.treatment import models as treatment_models

UNLISTED = ("3", "XA10BFA022A001010199999", "2", "5.00")
CONFLICT, FAILED, NOT_FOUND = (
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
)


def test_visits_and_fee_lines_are_idempotent_classified_and_correctable(
    tmp_path: Path, database_factory: Callable[[], str | None]
) -> None:
    with (
        beijing_tree(tmp_path, database_factory) as nodes,
        grpc.insecure_channel(nodes[BEIJING].address) as channel,
    ):
        stub = api_grpc.SettlementServiceStub(channel)
        psn_no = psn_no_of(nodes)
        register = diabetes_visit(psn_no)
        visit = stub.RegisterVisit(register, timeout=20).visit
        assert (visit.mdtrt_id[:6], len(visit.mdtrt_id), visit.state) == (
            BEIJING,
            30,
            settlement_pb2.VISIT_STATE_OPEN,
        )
        assert (visit.facts.institution_level, visit.facts.fixmedins_code, visit.insuplc_admdvs) == (
            "3",
            HOSPITAL,
            LANGFANG,
        )
        assert stub.RegisterVisit(register, timeout=20).visit == visit
        changed = api.RegisterVisitRequest()
        changed.CopyFrom(register)
        changed.ipt_otp_no = "MZ-OTHER"
        assert refusal(lambda: stub.RegisterVisit(changed))[:2] == (CONFLICT, "DUPLICATE_REQUEST")
        dialysis = diabetes_visit(psn_no, facts=visit_pb2.VisitFacts(med_type="14", chronic_disease="M07800"))
        assert refusal(lambda: stub.RegisterVisit(dialysis))[1] == "SERVICE_NOT_ENABLED"
        assert refusal(lambda: stub.RegisterVisit(diabetes_visit(" ", insutype="999")))[2] == [
            "psn_no",
            "insutype",
        ]

        first = upload(stub, visit.mdtrt_id, (*DRUGS, UNLISTED))
        acarbose, repaglinide, unlisted = first.results
        assert (acarbose.chrgitm_lv, acarbose.inscp_scp_amt_fen) == ("01", 3252)
        assert (repaglinide.preselfpay_amt_fen, repaglinide.inscp_scp_amt_fen) == (318, 2859)
        assert unlisted.self_pay_reasons == [fee_item_pb2.SELF_PAY_REASON_NOT_IN_CATALOGUE]
        assert first.catalogue_version.startswith(BEIJING)
        again = upload(stub, visit.mdtrt_id, (DRUGS[0], ("4", "002502000010000", "1", "8.00")))
        assert again.results[0] == acarbose  # the same line again is a no-op
        changed_line = (("1", DRUGS[0][1], "2", DRUGS[0][3]),)
        code, reason, _ = refusal(lambda: upload(stub, visit.mdtrt_id, changed_line))
        assert (code, reason) == (CONFLICT, "DUPLICATE_REQUEST")
        bad = (("5", "NOT-A-CODE", "1", "1.00"), ("6", DRUGS[0][1], "0", "1.00"))
        assert refusal(lambda: upload(stub, visit.mdtrt_id, bad))[2] == [
            "items[0].med_list_codg",
            "items[1].cnt",
        ]
        mismatch = fee_item_pb2.FeeItem(feedetl_sn="7", med_list_codg=DRUGS[0][1], cnt="1", pric="1.00")
        mismatch.det_item_fee_sumamt_fen = 500
        assert refusal(lambda: upload(stub, visit.mdtrt_id, items=[mismatch]))[1:] == (
            "AMOUNT_MISMATCH",
            ["items[0].det_item_fee_sumamt_fen"],
        )

        def cancel_lines(*serials: str) -> int:
            request = api.CancelFeeItemsRequest(
                request_id=msgid(), envelope=envelope(), mdtrt_id=visit.mdtrt_id, feedetl_sns=serials
            )
            return stub.CancelFeeItems(request, timeout=20).cancelled_count

        assert (cancel_lines("3"), cancel_lines("3")) == (1, 0)
        assert refusal(lambda: cancel_lines("99"))[:2] == (NOT_FOUND, "NOT_FOUND")

        # 冲正 of an upload that took effect, of one that never arrived, and twice.
        took_effect = msgid()
        upload(stub, visit.mdtrt_id, (("8", "002502000010000", "2", "8.00"),), request_id=took_effect)
        undone = stub.Correct(
            correct_request(took_effect, api.CORRECTED_OPERATION_UPLOAD_FEE_ITEMS), timeout=20
        )
        assert undone.outcome == api.CORRECTION_OUTCOME_REVERSED
        lost = msgid()
        first_correction = correct_request(lost, api.CORRECTED_OPERATION_UPLOAD_FEE_ITEMS)
        assert stub.Correct(first_correction).outcome == api.CORRECTION_OUTCOME_NOTHING_TO_UNDO
        assert stub.Correct(first_correction).outcome == api.CORRECTION_OUTCOME_NOTHING_TO_UNDO
        assert refusal(lambda: upload(stub, visit.mdtrt_id, request_id=lost))[:2] == (FAILED, "CORRECTED")
        second = correct_request(lost, api.CORRECTED_OPERATION_UPLOAD_FEE_ITEMS)
        assert stub.Correct(second).outcome == api.CORRECTION_OUTCOME_ALREADY_CORRECTED
        wrong = correct_request(took_effect, api.CORRECTED_OPERATION_REGISTER_VISIT)
        assert refusal(lambda: stub.Correct(wrong))[2] == ["oinfno"]

        cancelled = stub.CancelVisit(
            api.CancelVisitRequest(request_id=msgid(), envelope=envelope(), mdtrt_id=visit.mdtrt_id),
            timeout=20,
        ).visit
        assert (cancelled.state, cancelled.fee_item_count) == (settlement_pb2.VISIT_STATE_CANCELLED, 3)
        assert refusal(lambda: upload(stub, visit.mdtrt_id))[:2] == (NOT_FOUND, "NOT_FOUND")

        # 冲正 of a registration: the visit is cancelled; a registration that never arrived is barred.
        registered = msgid()
        second_visit = stub.RegisterVisit(diabetes_visit(psn_no, registered), timeout=20).visit
        correction = correct_request(registered, api.CORRECTED_OPERATION_REGISTER_VISIT)
        assert stub.Correct(correction, timeout=20).outcome == api.CORRECTION_OUTCOME_REVERSED
        assert refusal(lambda: upload(stub, second_visit.mdtrt_id))[1] == "NOT_FOUND"
        never = msgid()
        correction = correct_request(never, api.CORRECTED_OPERATION_REGISTER_VISIT)
        assert stub.Correct(correction, timeout=20).outcome == api.CORRECTION_OUTCOME_NOTHING_TO_UNDO
        assert refusal(lambda: stub.RegisterVisit(diabetes_visit(psn_no, never)))[:2] == (FAILED, "CORRECTED")


def test_callers_act_only_within_their_region_and_institution_and_bills_are_masked(
    tmp_path: Path, database_factory: Callable[[], str | None]
) -> None:
    with (
        beijing_tree(tmp_path, database_factory) as nodes,
        grpc.insecure_channel(nodes[BEIJING].address) as channel,
    ):
        stub = api_grpc.SettlementServiceStub(channel)
        psn_no = psn_no_of(nodes)
        denied = grpc.StatusCode.PERMISSION_DENIED
        tianjin_area = diabetes_visit(psn_no, envelope=envelope(area="120101"))
        assert refusal(lambda: stub.RegisterVisit(tianjin_area))[:2] == (denied, "PERMISSION_DENIED_REGION")
        tianjin_hospital = diabetes_visit(psn_no, envelope=envelope(institution="H12011200001"))
        assert refusal(lambda: stub.RegisterVisit(tianjin_hospital))[1] == "PERMISSION_DENIED_REGION"
        malformed = diabetes_visit(psn_no, envelope=envelope(institution="H1101"))
        assert refusal(lambda: stub.RegisterVisit(malformed))[1:] == (
            "INVALID_CODE",
            ["envelope.fixmedins_code"],
        )
        visit = stub.RegisterVisit(diabetes_visit(psn_no), timeout=20).visit
        neighbour = envelope(institution=NEIGHBOUR)
        assert (
            refusal(lambda: upload(stub, visit.mdtrt_id, envelope=neighbour))[1] == "PERMISSION_DENIED_REGION"
        )

        bill = settlement_pb2.SelfPayBill(
            credential=id_card(),
            insuplc_admdvs=LANGFANG,
            facts=visit_pb2.VisitFacts(med_type="14", diagnoses=["E11.900"], chronic_disease="M01600"),
            items=lines(),
            medfee_sumamt_fen=DRUGS_FEN,
            invoice_numbers=["FP20220701001"],
            direct_settlement_failure_reason="NOT_FILED",
            service_date=SERVICE_DAY,
        )
        request = api.UploadSelfPayBillRequest(request_id=msgid(), envelope=envelope(), bill=bill)
        stored = stub.UploadSelfPayBill(request, timeout=20).bill
        assert (stored.bill_id[:6], len(stored.bill_id), stored.fixmedins_code) == (BEIJING, 30, HOSPITAL)
        assert stored.credential.mdtrt_cert_no == RETIREE_CERTNO[:6] + "********" + RETIREE_CERTNO[-4:]
        assert [item.det_item_fee_sumamt_fen for item in stored.items] == [3252, 3177]
        assert stub.UploadSelfPayBill(request, timeout=20).bill == stored
        read = stub.GetSelfPayBill(api.GetSelfPayBillRequest(bill_id=stored.bill_id), timeout=20).bill
        assert read == stored
        foreign = api.GetSelfPayBillRequest(envelope=neighbour, bill_id=stored.bill_id)
        assert refusal(lambda: stub.GetSelfPayBill(foreign))[1] == "PERMISSION_DENIED_REGION"
        assert (
            refusal(lambda: stub.GetSelfPayBill(api.GetSelfPayBillRequest(bill_id="nope")))[1] == "NOT_FOUND"
        )
        short = settlement_pb2.SelfPayBill()
        short.CopyFrom(bill)
        short.medfee_sumamt_fen = DRUGS_FEN - 1
        wrong_total = api.UploadSelfPayBillRequest(request_id=msgid(), envelope=envelope(), bill=short)
        assert refusal(lambda: stub.UploadSelfPayBill(wrong_total))[1:] == (
            "AMOUNT_MISMATCH",
            ["bill.medfee_sumamt_fen"],
        )
        no_day = settlement_pb2.SelfPayBill()
        no_day.CopyFrom(bill)
        no_day.facts.service_date.CopyFrom(Date(year=2022, month=2, day=30))
        impossible = api.UploadSelfPayBillRequest(request_id=msgid(), envelope=envelope(), bill=no_day)
        assert refusal(lambda: stub.UploadSelfPayBill(impossible))[1:] == (
            "INVALID_ARGUMENT",
            ["bill.facts.service_date"],
        )

        assert refusal(lambda: stub.GetSettlement(api.GetSettlementRequest(setl_id="x")))[1] == "NOT_FOUND"
        listed = stub.ListSettlements(api.ListSettlementsRequest(envelope=envelope()), timeout=20)
        assert list(listed.settlements) == []
        other = api.ListSettlementsRequest(envelope=envelope(), fixmedins_code=NEIGHBOUR)
        assert refusal(lambda: stub.ListSettlements(other))[1] == "PERMISSION_DENIED_REGION"


def test_the_migration_creates_the_treatment_tables_the_models_map(node: Node) -> None:
    [service] = [service for service in node.services if service.group.name == "settlement"]
    tables = {
        model.__tablename__
        for model in (
            treatment_models.VisitRow,
            treatment_models.FeeLineRow,
            treatment_models.OutcomeRow,
            treatment_models.SettlementRow,
            treatment_models.AuditCaseRow,
            treatment_models.SelfPayBillRow,
        )
    }
    with service.database.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_object": lambda item, name, kind, *_: (
                    (item if kind == "table" else item.table).name in tables
                ),
            },
        )
        assert compare_metadata(context, treatment_models.Base.metadata) == []
