"""Builders for the filing tests: a settable clock, valid ID numbers, persons, rules and applications."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import grpc
import pytest
from google.type import date_pb2

from yidi.filing.v1 import filing_pb2 as pb
from yidi.filing.v1 import filing_service_pb2 as api
from yidi.filing.v1 import filing_service_pb2_grpc as api_grpc
from yidi.filing.v1 import insured_person_pb2 as person_pb
from yidi.type.v1 import filing_category_pb2 as category_pb
from yidi_testing import error_details

CST = timezone(timedelta(hours=8))
_ids = itertools.count(1)
_weights = [pow(2, 17 - i, 11) for i in range(17)]

SHENZHEN, NANCHANG, TAIYUAN, LANGFANG, QINGHAI, GUIYANG = (
    "440300",
    "360100",
    "140100",
    "131000",
    "630000",
    "520100",
)
BEIJING, SHANGHAI, HANGZHOU = "110000", "310000", "330100"

RETIREE = category_pb.FILING_CATEGORY_RETIREE_RESETTLED
RESIDENT = category_pb.FILING_CATEGORY_LONG_TERM_RESIDENT
POSTED = category_pb.FILING_CATEGORY_POSTED_EMPLOYEE
REFERRAL = category_pb.FILING_CATEGORY_REFERRAL
EMERGENCY = category_pb.FILING_CATEGORY_EMERGENCY
TEMPORARY = category_pb.FILING_CATEGORY_TEMPORARY_OTHER

APP = pb.FILING_CHANNEL_NATIONAL_APP
MINI_PROGRAM = pb.FILING_CHANNEL_NATIONAL_MINI_PROGRAM
WINDOW = pb.FILING_CHANNEL_WINDOW
HOSPITAL = pb.FILING_CHANNEL_HOSPITAL

APPROVED = pb.FILING_STATE_APPROVED
PENDING = pb.FILING_STATE_PENDING_REVIEW


@dataclass
class Clock:
    """The node's clock in a test: "today" is whatever the test says, at 09:00 in China."""

    now: datetime = field(default_factory=lambda: datetime(2026, 3, 2, 1, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def set(self, day: str, at: str = "09:00") -> None:
        """Move to ``day`` (yyyy-mm-dd) at ``at`` China time."""
        self.now = datetime.combine(date.fromisoformat(day), time.fromisoformat(at), CST).astimezone(UTC)


def request_id() -> str:
    """A fresh message id."""
    return f"000000000000{datetime.now(UTC):%Y%m%d%H%M%S}{next(_ids) % 10000:04d}"


def day(text: str) -> date_pb2.Date:
    parsed = date.fromisoformat(text)
    return date_pb2.Date(year=parsed.year, month=parsed.month, day=parsed.day)


def iso(value: date_pb2.Date) -> str:
    return date(value.year, value.month, value.day).isoformat() if value.year else ""


def certno(region: str, serial: int, born: str = "19580101") -> str:
    """A valid 18-character ID number (check digit computed) for a person born in ``region``."""
    body = f"{region}{born}{serial % 1000:03d}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, _weights, strict=True)) % 11]


def person(
    number: str,
    region: str,
    name: str = "张三丰",
    insutype: str = "310",
    psn_type: str = "1201",
    **fields: Any,
) -> person_pb.InsuredPerson:
    values: dict[str, Any] = {"credential_activated": True, **fields}
    return person_pb.InsuredPerson(
        certno=number, psn_name=name, insuplc_admdvs=region, insutype=insutype, psn_type=psn_type, **values
    )


def enrol(stub: api_grpc.FilingServiceStub, *persons: person_pb.InsuredPerson) -> list[str]:
    answer = stub.ImportInsuredPersons(
        api.ImportInsuredPersonsRequest(request_id=request_id(), persons=list(persons))
    )
    return list(answer.psn_nos)


def set_rules(stub: api_grpc.FilingServiceStub, region: str, **fields: Any) -> pb.FilingRules:
    """Rules for ``region``: the national-minimum defaults plus ``fields``."""
    values: dict[str, Any] = {
        "review_deadline_working_days": 3,
        "temporary_validity_months": 6,
        "commitment_accepted": True,
        "effective_date": day("2026-01-01"),
        **fields,
    }
    rules = pb.FilingRules(insuplc_admdvs=region, **values)
    return stub.SetFilingRules(api.SetFilingRulesRequest(request_id=request_id(), rules=rules)).rules


def by_certno(number: str) -> person_pb.PersonLookup:
    return person_pb.PersonLookup(certno=number)


def application(
    number: str,
    insured: str,
    treatment: str,
    category: int = TEMPORARY,
    channel: int = APP,
    **fields: Any,
) -> api.CreateFilingRequest:
    return api.CreateFilingRequest(
        request_id=fields.pop("request_id", None) or request_id(),
        person=by_certno(number),
        insuplc_admdvs=insured,
        treatment_admdvs=treatment,
        category=category,  # type: ignore[arg-type]
        channel=channel,  # type: ignore[arg-type]
        **fields,
    )


def eligibility(
    number: str, insured: str, treatment: str, on: str, med_type: str = "21", **fields: Any
) -> api.CheckEligibilityRequest:
    return api.CheckEligibilityRequest(
        person=by_certno(number),
        insuplc_admdvs=insured,
        treatment_admdvs=treatment,
        service_date=day(on),
        med_type=med_type,
        **fields,
    )


def refusal(call: Any) -> tuple[grpc.StatusCode, str, list[str], str]:
    """Call and expect a refusal: its status code, reason, violated fields and message."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    details = error_details(caught.value)
    bad = details.get("BadRequest")
    fields = [violation.field for violation in bad.field_violations] if bad else []
    return caught.value.code(), details["ErrorInfo"].reason, fields, caught.value.details() or ""
