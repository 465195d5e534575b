"""Builders for the registry tests: institutions, dates and calls through the generated stub."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import grpc
from google.protobuf import timestamp_pb2
from google.type import date_pb2

from yidi.registry.v1 import institution_pb2 as pb
from yidi.registry.v1 import institution_registry_service_pb2 as api
from yidi.registry.v1 import institution_registry_service_pb2_grpc as api_grpc
from yidi_testing import error_details

_ids = itertools.count(1)

INPATIENT = pb.SERVICE_KIND_INPATIENT
OUTPATIENT = pb.SERVICE_KIND_GENERAL_OUTPATIENT
CHRONIC = pb.SERVICE_KIND_CHRONIC_OUTPATIENT
SPECIAL = pb.SERVICE_KIND_SPECIAL_DRUGS
PURCHASE = pb.SERVICE_KIND_PHARMACY_PURCHASE


def request_id() -> str:
    """A fresh message id."""
    return f"110000000000{datetime.now(UTC):%Y%m%d%H%M%S}{next(_ids) % 10000:04d}"


def day(text: str) -> date_pb2.Date:
    parsed = date.fromisoformat(text)
    return date_pb2.Date(year=parsed.year, month=parsed.month, day=parsed.day)


def instant(text: str) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.fromisoformat(text))
    return stamp


def service(kind: int, opened: str = "2024-01-01", disease: str = "", closed: str = "") -> pb.OpenedService:
    message = pb.OpenedService(kind=kind, chronic_disease=disease, open_date=day(opened))  # type: ignore[arg-type]
    if closed:
        message.close_date.CopyFrom(day(closed))
    return message


def hospital(code: str, *services: pb.OpenedService, level: str = "3", **fields: object) -> pb.Institution:
    """A medical institution in the region its code names, accepting every out-of-area patient."""
    values: dict[str, object] = {
        "fixmedins_code": code,
        "fixmedins_name": f"sample hospital {code}",
        "type": pb.INSTITUTION_TYPE_MEDICAL if code.startswith("H") else pb.INSTITUTION_TYPE_PHARMACY,
        "level": level if code.startswith("H") else "",
        "admdvs": code[1:7],
        "address": "sample address",
        "status": pb.INSTITUTION_STATUS_ACTIVE,
        "services": list(services),
        "accepts_cross_province": True,
        "accepts_in_province": True,
    }
    values.update(fields)
    return pb.Institution(**values)  # type: ignore[arg-type]


def stub(channel: grpc.Channel) -> api_grpc.InstitutionRegistryServiceStub:
    return api_grpc.InstitutionRegistryServiceStub(channel)


def register(registry: api_grpc.InstitutionRegistryServiceStub, *institutions: pb.Institution) -> None:
    for institution in institutions:
        registry.RegisterInstitution(
            api.RegisterInstitutionRequest(request_id=request_id(), institution=institution), timeout=10
        )


def refusal(error: grpc.RpcError) -> tuple[str, dict[str, str], list[str]]:
    """The reason, ErrorInfo metadata and violated fields of a refused call."""
    details = error_details(error)
    violations = details.get("BadRequest")
    fields = [v.field for v in violations.field_violations] if violations else []
    return details["ErrorInfo"].reason, dict(details["ErrorInfo"].metadata), fields
