"""What each HIS call asks of the treatment node, checked: the servicer's requests as commands.

The servicer turns every request into one of these, refusing every bad field at once with
its path, and the handlers take only commands. A command holds plain values and, where the
node keeps or passes on a value as the HIS sent it (a credential, the uploaded lines, a
self-pay bill), the shared wire type of ``yidi.type.v1``; never the request itself. A
mutating command carries its :class:`Call`: the request log's key and the digest a repeat
is compared by, taken from the request as sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from google.protobuf.message import Message

from yidi.settlement.v1 import settlement_pb2
from yidi.settlement.v1 import settlement_service_pb2 as api
from yidi.type.v1 import fee_item_pb2, person_pb2
from yidi_codec.fields import Violations
from yidi_core.catalogue import FeeItem
from yidi_core.codes import check_institution, check_region
from yidi_core.errors import invalid
from yidi_core.money import MAX_AMOUNT_FEN
from yidi_runtime.idempotency import fingerprint
from yidi_runtime.wire import china_day, day_of, ensure_not_future, moment_of
from yidi_services.settlement.treatment import bills, direct_rate, fees, visits
from yidi_services.settlement.treatment.catalogue import fee_items
from yidi_services.settlement.treatment.checks import (
    Caller,
    check_request_id,
    insured_region,
    required_text,
)

GENERAL_OUTPATIENT = "11"
"""The medical type a VerifyPerson without one is checked for (1101 names none)."""


@dataclass(frozen=True)
class Call:
    """A mutating call as the request log knows it: whose id, which method, and what it said."""

    owner: str
    request_id: str
    method: str
    digest: str
    """The request's fingerprint without the envelope's sending time (a HIS stamps each retry anew)."""


def call_of(request: Message, method: str, caller: Caller) -> Call:
    """The call of ``caller``'s request (its ``request_id`` checked)."""
    request_id = check_request_id(request.request_id)  # type: ignore[attr-defined]
    content = type(request)()
    content.CopyFrom(request)
    if content.DESCRIPTOR.fields_by_name.get("envelope") is not None:
        content.envelope.ClearField("inf_time")  # type: ignore[attr-defined]
    return Call(caller.owner, request_id, method, fingerprint([content]))


@dataclass(frozen=True)
class VerifyPerson:
    """1101: who the person is and whether they may settle the planned visit, asked of the insured node."""

    caller: Caller
    insuplc_admdvs: str
    credential: person_pb2.Credential
    service_date: date
    med_type: str
    emergency: bool
    chronic_disease: str


def verify_person(request: api.VerifyPersonRequest, caller: Caller, now: datetime) -> VerifyPerson:
    insured = insured_region(request, caller)
    day = day_of(request.service_date, "service_date") or china_day(now)
    ensure_not_future(day, now, "service_date")
    return VerifyPerson(
        caller=caller,
        insuplc_admdvs=insured,
        credential=request.credential,
        service_date=day,
        med_type=request.med_type or GENERAL_OUTPATIENT,
        emergency=request.emergency,
        chronic_disease=request.chronic_disease,
    )


@dataclass(frozen=True)
class RegisterVisit:
    """2201 / 2401: a visit to open, its facts completed from the envelope."""

    call: Call
    caller: Caller
    visit: visits.Registration
    credential: person_pb2.Credential


def register_visit(request: api.RegisterVisitRequest, caller: Caller, now: datetime) -> RegisterVisit:
    call = call_of(request, "RegisterVisit", caller)
    return RegisterVisit(call, caller, visits.registration(request, caller, now), request.credential)


@dataclass(frozen=True)
class DischargeVisit:
    """2402: an inpatient stay ends (its service date becomes the discharge day)."""

    call: Call
    caller: Caller
    mdtrt_id: str
    end_time: datetime
    diagnoses: tuple[str, ...]


def discharge_visit(request: api.DischargeVisitRequest, caller: Caller, now: datetime) -> DischargeVisit:
    call = call_of(request, "DischargeVisit", caller)
    problems = Violations()
    problems.check(lambda: required_text(request.mdtrt_id, "mdtrt_id"))
    end_time = moment_of(request, "end_time")
    if end_time is None:
        problems.add(invalid("INVALID_ARGUMENT", "end_time", "is required"))
    problems.check(lambda: ensure_not_future(end_time, now, "end_time"))
    diagnoses = problems.check(lambda: visits.checked_diagnoses(list(request.diagnoses)))
    problems.raise_any()
    assert end_time is not None and diagnoses is not None
    return DischargeVisit(call, caller, request.mdtrt_id, end_time, tuple(diagnoses))


@dataclass(frozen=True)
class CancelVisit:
    """2202 / 2404: an unsettled visit cancelled."""

    call: Call
    caller: Caller
    mdtrt_id: str


def cancel_visit(request: api.CancelVisitRequest, caller: Caller) -> CancelVisit:
    call = call_of(request, "CancelVisit", caller)
    required_text(request.mdtrt_id, "mdtrt_id")
    return CancelVisit(call, caller, request.mdtrt_id)


@dataclass(frozen=True)
class UploadFeeItems:
    """2204 / 2301: fee lines for an open visit, as sent (``lines``) and as the core reads them (``items``)."""

    call: Call
    caller: Caller
    mdtrt_id: str
    lines: tuple[fee_item_pb2.FeeItem, ...]
    items: tuple[FeeItem, ...]


def upload_fee_items(request: api.UploadFeeItemsRequest, caller: Caller, now: datetime) -> UploadFeeItems:
    call = call_of(request, "UploadFeeItems", caller)
    required_text(request.mdtrt_id, "mdtrt_id")
    items = fee_items(request.items)
    fees.ensure_times_past(request.items, now)
    return UploadFeeItems(call, caller, request.mdtrt_id, tuple(request.items), tuple(items))


@dataclass(frozen=True)
class CancelFeeItems:
    """2205 / 2302: the named serials cancelled, or every line (``everything``)."""

    call: Call
    caller: Caller
    mdtrt_id: str
    serials: tuple[str, ...]
    everything: bool


def cancel_fee_items(request: api.CancelFeeItemsRequest, caller: Caller) -> CancelFeeItems:
    call = call_of(request, "CancelFeeItems", caller)
    required_text(request.mdtrt_id, "mdtrt_id")
    if request.all == bool(request.feedetl_sns):
        raise invalid("INVALID_ARGUMENT", "feedetl_sns", "name the serials to cancel, or set all (not both)")
    return CancelFeeItems(call, caller, request.mdtrt_id, tuple(request.feedetl_sns), request.all)


@dataclass(frozen=True)
class PreSettle:
    """2206 / 2303: what settling the visit now would give; ``medfee_sumamt_fen`` 0 when not stated.

    ``mid_stay``: the lines so far of an inpatient stay that goes on (中途结算, ``mid_setl_flag``).
    """

    caller: Caller
    mdtrt_id: str
    medfee_sumamt_fen: int
    use_account: bool
    mid_stay: bool


def pre_settle(request: api.PreSettleRequest, caller: Caller) -> PreSettle:
    required_text(request.mdtrt_id, "mdtrt_id")
    return PreSettle(
        caller, request.mdtrt_id, request.medfee_sumamt_fen, request.acct_used_flag, request.mid_setl_flag
    )


@dataclass(frozen=True)
class Settle:
    """2207 / 2304: settle the visit, whose lines must total ``medfee_sumamt_fen``."""

    call: Call
    caller: Caller
    mdtrt_id: str
    medfee_sumamt_fen: int
    use_account: bool
    invono: str
    mid_stay: bool
    """Settle the lines so far of an inpatient stay that goes on (中途结算, ``mid_setl_flag``)."""


def settle(request: api.SettleRequest, caller: Caller) -> Settle:
    call = call_of(request, "Settle", caller)
    required_text(request.mdtrt_id, "mdtrt_id")
    if not 0 < request.medfee_sumamt_fen <= MAX_AMOUNT_FEN:
        raise invalid(
            "INVALID_ARGUMENT",
            "medfee_sumamt_fen",
            f"is required: the bill's total in fen, at most {MAX_AMOUNT_FEN}",
        )
    if len(request.invono) > 64:
        raise invalid("INVALID_ARGUMENT", "invono", "at most 64 characters")
    return Settle(
        call,
        caller,
        request.mdtrt_id,
        request.medfee_sumamt_fen,
        request.acct_used_flag,
        request.invono,
        request.mid_setl_flag,
    )


@dataclass(frozen=True)
class ReverseSettlement:
    """2208 / 2305: a recorded settlement reversed for a refund; the visit and person must match it."""

    call: Call
    caller: Caller
    setl_id: str
    mdtrt_id: str
    psn_no: str


def reverse_settlement(request: api.ReverseSettlementRequest, caller: Caller) -> ReverseSettlement:
    call = call_of(request, "ReverseSettlement", caller)
    problems = Violations()
    named = {
        name: problems.check(lambda name=name: required_text(getattr(request, name), name))
        for name in ("setl_id", "mdtrt_id", "psn_no")
    }
    problems.raise_any()
    return ReverseSettlement(
        call, caller, named["setl_id"] or "", named["mdtrt_id"] or "", named["psn_no"] or ""
    )


class Corrected(StrEnum):
    """The call a correction (2601) names, by the method that made it."""

    SETTLE = "Settle"
    REGISTER_VISIT = "RegisterVisit"
    UPLOAD_FEE_ITEMS = "UploadFeeItems"


_CORRECTED = {
    api.CORRECTED_OPERATION_SETTLE: Corrected.SETTLE,
    api.CORRECTED_OPERATION_REGISTER_VISIT: Corrected.REGISTER_VISIT,
    api.CORRECTED_OPERATION_UPLOAD_FEE_ITEMS: Corrected.UPLOAD_FEE_ITEMS,
}


@dataclass(frozen=True)
class Correct:
    """2601: whatever became of the call ``omsgid``, it has no effect afterwards."""

    call: Call
    caller: Caller
    omsgid: str
    operation: Corrected
    psn_no: str


def correct(request: api.CorrectRequest, caller: Caller) -> Correct:
    call = call_of(request, "Correct", caller)
    check_request_id(request.omsgid, "omsgid")
    if request.oinfno == api.CORRECTED_OPERATION_REVERSE_SETTLEMENT:
        raise invalid(
            "INVALID_ARGUMENT",
            "oinfno",
            "a reversal is not corrected: send the ReverseSettlement again with the same request_id "
            "(it takes effect once) to learn its outcome",
        )
    operation = _CORRECTED.get(request.oinfno)  # type: ignore[call-overload]
    if operation is None:
        raise invalid("INVALID_ARGUMENT", "oinfno", "name the original operation")
    return Correct(call, caller, request.omsgid, operation, request.psn_no)


@dataclass(frozen=True)
class UploadSelfPayBill:
    """A full bill for online manual reimbursement, checked and completed as it will be kept."""

    call: Call
    caller: Caller
    bill: settlement_pb2.SelfPayBill


def upload_self_pay_bill(
    request: api.UploadSelfPayBillRequest, caller: Caller, now: datetime
) -> UploadSelfPayBill:
    call = call_of(request, "UploadSelfPayBill", caller)
    return UploadSelfPayBill(call, caller, bills.checked_bill(request.bill, caller, now))


def direct_settlement_report(
    request: api.GetDirectSettlementReportRequest, reader: Caller | None
) -> direct_rate.ReportQuery:
    """The cases a report covers; an institution's report is its own whatever it asks."""
    problems = Violations()
    start = problems.check(lambda: day_of(request.start_date, "start_date", required=True))
    end = problems.check(lambda: day_of(request.end_date, "end_date", required=True))
    code = request.fixmedins_code.strip()
    if code:
        problems.check(lambda: check_institution(code, "fixmedins_code"))
    insured = request.insuplc_admdvs.strip()
    if insured:
        problems.check(lambda: check_region(insured, "insuplc_admdvs"))
    problems.raise_any()
    assert start is not None and end is not None
    if not start <= end <= start + timedelta(days=direct_rate.MAX_SPAN_DAYS - 1):
        raise invalid(
            "INVALID_ARGUMENT",
            "end_date",
            f"must lie from start_date to {direct_rate.MAX_SPAN_DAYS} days after it",
        )
    if reader is not None:
        if code:
            reader.owns(code, "the report")
        code = reader.fixmedins_code
    return direct_rate.ReportQuery(start, end, code, insured)
