"""Visits (就诊, ``mdtrt_id``) at the treatment node: register (2201/2401), discharge (2402), cancel.

A visit belongs to the institution that registered it; its facts (medical type, service
date, level, diagnoses, chronic disease) decide the catalogue in force and the insured
rule. For an inpatient stay the service date is the discharge date, so discharge moves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from yidi.settlement.v1 import settlement_pb2
from yidi.settlement.v1 import settlement_service_pb2 as api
from yidi.type.v1 import visit_pb2
from yidi_codec.documents import diagnoses_document, visit_facts_columns, visit_facts_from_columns
from yidi_codec.fields import Violations
from yidi_core.codes import check_chronic_disease, check_diagnosis, check_region
from yidi_core.dictionaries import NATIONAL
from yidi_core.errors import DomainError, invalid
from yidi_core.placement import is_inpatient
from yidi_runtime.db import row_by_key
from yidi_runtime.wire import (
    as_utc,
    china_day,
    date_message,
    day_of,
    ensure_not_future,
    moment_of,
    timestamp_message,
)
from yidi_services.settlement.treatment.checks import Caller, check_credential, required_text
from yidi_services.settlement.treatment.models import FeeLineRow, VisitRow, VisitState

_UNSET_TIME = datetime(1970, 1, 1, tzinfo=UTC)
"""What an unset ``begin_time`` has always meant (the Timestamp default)."""
_STATES = {
    VisitState.OPEN: settlement_pb2.VISIT_STATE_OPEN,
    VisitState.DISCHARGED: settlement_pb2.VISIT_STATE_DISCHARGED,
    VisitState.SETTLED: settlement_pb2.VISIT_STATE_SETTLED,
    VisitState.CANCELLED: settlement_pb2.VISIT_STATE_CANCELLED,
}


@dataclass(frozen=True)
class Registration:
    """A checked RegisterVisit: the visit as it will be stored (facts completed from the envelope)."""

    insuplc_admdvs: str
    psn_no: str
    insutype: str
    facts: visit_pb2.VisitFacts
    ipt_otp_no: str
    dept_code: str
    atddr_no: str
    begin_time: datetime
    trauma_no_third_party: bool


_TRAUMA_INPATIENT = "22"
"""外伤住院: an inpatient stay for an injury, whether or not the HIS sets ``trauma``."""


def _ensure_declared(request: api.RegisterVisitRequest, med_type: str) -> bool:
    """Whether the visit treats an injury; one without the patient's declaration that no third
    party is liable is refused (THIRD_PARTY_NOT_DECLARED), the fund never paying for another's liability."""
    trauma = request.trauma or med_type == _TRAUMA_INPATIENT
    if request.no_third_party_declared and not trauma:
        raise invalid("INVALID_ARGUMENT", "no_third_party_declared", "only for an injury (trauma)")
    if trauma and not request.no_third_party_declared:
        raise DomainError(
            "THIRD_PARTY_NOT_DECLARED",
            "an injury is settled only with the patient's declaration that no third party is liable",
            metadata={"field": "no_third_party_declared"},
        )
    return trauma


def registration(request: api.RegisterVisitRequest, caller: Caller, now: datetime) -> Registration:
    """The request checked field by field; the facts take the envelope's institution and region.

    The admission time and service date may not lie in the future (``now``, wire.CLOCK_TOLERANCE).
    """
    problems = Violations()
    insured = problems.check(lambda: check_region(caller.insuplc_admdvs, "envelope.insuplc_admdvs"))
    psn_no = problems.check(lambda: required_text(request.psn_no, "psn_no"))
    insutype = request.insutype.strip()
    entry = problems.check(lambda: NATIONAL.check("insutype", insutype, "insutype"))
    if entry is not None and entry.attributes.get("person") != "true":
        problems.add(invalid("INVALID_CODE", "insutype", f"{insutype} is not a person's insurance type"))
    problems.check(lambda: check_credential(request.credential))
    ipt_otp_no = problems.check(lambda: required_text(request.ipt_otp_no, "ipt_otp_no"))
    if not request.HasField("begin_time"):
        problems.add(invalid("INVALID_ARGUMENT", "begin_time", "is required"))
    problems.check(lambda: ensure_not_future(moment_of(request, "begin_time"), now, "begin_time"))
    facts = problems.check(lambda: _facts(request, caller, now))
    problems.raise_any()
    assert insured and psn_no and ipt_otp_no and facts is not None
    trauma = _ensure_declared(request, facts.med_type)
    return Registration(
        insuplc_admdvs=insured,
        psn_no=psn_no,
        insutype=insutype,
        facts=facts,
        ipt_otp_no=ipt_otp_no,
        dept_code=request.dept_code.strip()[:30],
        atddr_no=request.atddr_no.strip()[:30],
        begin_time=moment_of(request, "begin_time") or _UNSET_TIME,
        trauma_no_third_party=trauma,
    )


def _facts(request: api.RegisterVisitRequest, caller: Caller, now: datetime) -> visit_pb2.VisitFacts:
    given = request.facts
    problems = Violations()
    med_type = given.med_type.strip()
    problems.check(
        lambda: NATIONAL.check("med_type", med_type, "facts.med_type", region=caller.mdtrtarea_admvs)
    )
    day = problems.check(lambda: day_of(given.service_date, "facts.service_date"))
    problems.check(lambda: ensure_not_future(day, now, "facts.service_date"))
    if given.institution_level:
        problems.check(
            lambda: NATIONAL.check("institution_level", given.institution_level, "facts.institution_level")
        )
    diagnoses = problems.check(lambda: checked_diagnoses(list(given.diagnoses), "facts.diagnoses"))
    chronic = given.chronic_disease.strip()
    if med_type == "14" or chronic:
        problems.check(lambda: check_chronic_disease(chronic, "facts.chronic_disease"))
    for name, expected in (
        ("fixmedins_code", caller.fixmedins_code),
        ("mdtrtarea_admvs", caller.mdtrtarea_admvs),
    ):
        if getattr(given, name) and getattr(given, name) != expected:
            problems.add(
                invalid(
                    "INVALID_ARGUMENT", f"facts.{name}", f"must equal the envelope's {expected} when given"
                )
            )
    problems.raise_any()
    if day is None and request.HasField("begin_time"):
        day = china_day(moment_of(request, "begin_time") or _UNSET_TIME)
    return visit_pb2.VisitFacts(
        med_type=med_type,
        service_date=date_message(day),
        institution_level=given.institution_level,
        diagnoses=diagnoses,
        chronic_disease=chronic,
        emergency=given.emergency,
        fixmedins_code=caller.fixmedins_code,
        mdtrtarea_admvs=caller.mdtrtarea_admvs,
    )


def register(
    session: Session, mdtrt_id: str, request_id: str, visit: Registration, now: datetime
) -> VisitRow:
    """Store a new open visit."""
    row = VisitRow(
        mdtrt_id=mdtrt_id,
        request_id=request_id,
        insuplc_admdvs=visit.insuplc_admdvs,
        psn_no=visit.psn_no,
        insutype=visit.insutype,
        **visit_facts_columns(visit.facts),
        ipt_otp_no=visit.ipt_otp_no,
        dept_code=visit.dept_code,
        atddr_no=visit.atddr_no,
        begin_time=visit.begin_time,
        trauma_no_third_party=visit.trauma_no_third_party,
        state=VisitState.OPEN,
        created_at=now,
    )
    session.add(row)
    return row


def facts_of(row: VisitRow) -> visit_pb2.VisitFacts:
    """The visit's facts as stored."""
    return visit_facts_from_columns(row)


def load(session: Session, mdtrt_id: str, caller: Caller, *, lock: bool = False) -> VisitRow:
    """The caller's visit (NOT_FOUND, or PERMISSION_DENIED_REGION for another institution's)."""
    row = row_by_key(session, VisitRow, mdtrt_id.strip(), lock=lock) if mdtrt_id.strip() else None
    if row is None:
        raise DomainError(
            "NOT_FOUND", f"no visit {mdtrt_id[:40]!r} on this node", metadata={"mdtrt_id": mdtrt_id[:40]}
        )
    caller.owns(row.fixmedins_code, f"visit {row.mdtrt_id}")
    return row


def already_settled(row: VisitRow) -> DomainError:
    """The refusal of a change to a settled visit."""
    return DomainError(
        "ALREADY_SETTLED",
        f"visit {row.mdtrt_id} is settled ({row.setl_id})",
        metadata={"mdtrt_id": row.mdtrt_id, "setl_id": row.setl_id or ""},
    )


def ensure_open(row: VisitRow) -> None:
    """Fees and settlement need a visit neither settled (ALREADY_SETTLED) nor cancelled (NOT_FOUND)."""
    if row.state == VisitState.SETTLED:
        raise already_settled(row)
    if row.state == VisitState.CANCELLED:
        raise DomainError(
            "NOT_FOUND",
            f"visit {row.mdtrt_id} was cancelled",
            metadata={"mdtrt_id": row.mdtrt_id, "state": row.state},
        )


def discharge(row: VisitRow, end_time: datetime, diagnoses: list[str]) -> None:
    """Discharge (2402): the stay ends, its service date becomes the discharge day, diagnoses replaced if given."""
    ensure_open(row)
    if not is_inpatient(row.med_type):
        raise invalid("INVALID_ARGUMENT", "mdtrt_id", f"visit {row.mdtrt_id} is not an inpatient stay")
    if end_time < as_utc(row.begin_time):
        raise invalid("INVALID_ARGUMENT", "end_time", "must not be before the admission time")
    row.service_date = china_day(end_time)
    if diagnoses:
        row.diagnoses = diagnoses_document(diagnoses)
    row.end_time = end_time
    row.state = VisitState.DISCHARGED


def checked_diagnoses(codes: list[str], field_path: str = "diagnoses") -> list[str]:
    """Diagnosis codes (ICD-10 医保版), every bad one named."""
    problems = Violations()
    checked = [
        problems.check(lambda c=c, i=i: check_diagnosis(c, f"{field_path}[{i}]")) for i, c in enumerate(codes)
    ]
    problems.raise_any()
    return [code for code in checked if code is not None]


def cancel(row: VisitRow) -> None:
    """Cancel (2202 / 2404) an unsettled visit; cancelling a cancelled one changes nothing."""
    if row.state != VisitState.CANCELLED:
        ensure_open(row)
        row.state = VisitState.CANCELLED


def fee_item_count(session: Session, mdtrt_id: str) -> int:
    """Lines uploaded and not cancelled."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(FeeLineRow)
            .where(FeeLineRow.mdtrt_id == mdtrt_id, FeeLineRow.active)
        )
        or 0
    )


def visit_message(session: Session, row: VisitRow) -> settlement_pb2.Visit:
    """The visit for the wire, with its live line count."""
    return settlement_pb2.Visit(
        mdtrt_id=row.mdtrt_id,
        psn_no=row.psn_no,
        insutype=row.insutype,
        insuplc_admdvs=row.insuplc_admdvs,
        facts=facts_of(row),
        ipt_otp_no=row.ipt_otp_no,
        dept_code=row.dept_code,
        atddr_no=row.atddr_no,
        begin_time=timestamp_message(row.begin_time),
        end_time=timestamp_message(row.end_time),
        state=_STATES[VisitState(row.state)],
        fee_item_count=fee_item_count(session, row.mdtrt_id),
        setl_id=row.setl_id or "",
        trauma_no_third_party=row.trauma_no_third_party,
    )
