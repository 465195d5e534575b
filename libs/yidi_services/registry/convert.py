"""Proto messages ↔ the registry's plain values; no decisions are made here."""

from __future__ import annotations

from google.type import date_pb2

from yidi.registry.v1 import institution_pb2 as pb
from yidi.registry.v1 import institution_registry_service_pb2 as api
from yidi_runtime.wire import date_message, moment_of, timestamp_message
from yidi_services.registry.coverage import Coverage
from yidi_services.registry.institutions import (
    Institution,
    InstitutionDraft,
    InstitutionStatus,
    InstitutionType,
    OpenedService,
    ServiceDraft,
    ServiceKind,
)
from yidi_services.registry.suspensions import Suspension, SuspensionDraft

_TYPES = {
    pb.INSTITUTION_TYPE_MEDICAL: InstitutionType.MEDICAL,
    pb.INSTITUTION_TYPE_PHARMACY: InstitutionType.PHARMACY,
}
_STATUSES = {
    pb.INSTITUTION_STATUS_ACTIVE: InstitutionStatus.ACTIVE,
    pb.INSTITUTION_STATUS_CLOSED: InstitutionStatus.CLOSED,
}
_KINDS = {
    pb.SERVICE_KIND_INPATIENT: ServiceKind.INPATIENT,
    pb.SERVICE_KIND_GENERAL_OUTPATIENT: ServiceKind.GENERAL_OUTPATIENT,
    pb.SERVICE_KIND_CHRONIC_OUTPATIENT: ServiceKind.CHRONIC_OUTPATIENT,
    pb.SERVICE_KIND_SPECIAL_DRUGS: ServiceKind.SPECIAL_DRUGS,
    pb.SERVICE_KIND_PHARMACY_PURCHASE: ServiceKind.PHARMACY_PURCHASE,
}
_TYPE_NUMBERS = {value: number for number, value in _TYPES.items()}
_STATUS_NUMBERS = {value: number for number, value in _STATUSES.items()}
_KIND_NUMBERS = {value: number for number, value in _KINDS.items()}


def _name(table: dict[int, str], number: int) -> str:
    """The value's name, '' when unspecified, the bare number when unknown (so validation names it)."""
    if number == 0:
        return ""
    return table.get(number, str(number))


def kind_name(number: int) -> str:
    """A ServiceKind as the registry's value name."""
    return _name(_KINDS, number)  # type: ignore[arg-type]


def type_name(number: int) -> str:
    """An InstitutionType as the registry's value name."""
    return _name(_TYPES, number)  # type: ignore[arg-type]


def status_name(number: int) -> str:
    """An InstitutionStatus as the registry's value name."""
    return _name(_STATUSES, number)  # type: ignore[arg-type]


def iso_date(value: date_pb2.Date) -> str:
    """``yyyy-mm-dd`` ('' when unset); impossible dates stay impossible so validation refuses them."""
    if not (value.year or value.month or value.day):
        return ""
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def draft(message: pb.Institution) -> InstitutionDraft:
    """An institution message as given, for validation (version/update time kept for sync)."""
    return InstitutionDraft(
        code=message.fixmedins_code,
        name=message.fixmedins_name,
        type=type_name(message.type),
        level=message.level,
        admdvs=message.admdvs,
        address=message.address,
        status=status_name(message.status),
        services=tuple(
            ServiceDraft(
                kind_name(service.kind),
                service.chronic_disease,
                iso_date(service.open_date),
                iso_date(service.close_date),
            )
            for service in message.services
        ),
        accepts_cross_province=message.accepts_cross_province,
        accepts_in_province=message.accepts_in_province,
        version=message.version,
        update_time=moment_of(message, "update_time"),
    )


def opened_service(service: OpenedService) -> pb.OpenedService:
    """An opened service as its message."""
    message = pb.OpenedService(
        kind=_KIND_NUMBERS[service.kind],  # type: ignore[arg-type]
        chronic_disease=service.chronic_disease,
        open_date=date_message(service.open_date),
    )
    if service.close_date is not None:
        message.close_date.CopyFrom(date_message(service.close_date))
    return message


def institution(value: Institution) -> pb.Institution:
    """A stored institution as its message."""
    message = pb.Institution(
        fixmedins_code=value.code,
        fixmedins_name=value.name,
        type=_TYPE_NUMBERS[value.type],  # type: ignore[arg-type]
        level=value.level,
        admdvs=value.admdvs,
        address=value.address,
        status=_STATUS_NUMBERS[value.status],  # type: ignore[arg-type]
        services=[opened_service(service) for service in value.services],
        accepts_cross_province=value.accepts_cross_province,
        accepts_in_province=value.accepts_in_province,
        version=value.version,
    )
    if value.update_time is not None:
        message.update_time.CopyFrom(timestamp_message(value.update_time))
    return message


def suspension(value: Suspension) -> pb.Suspension:
    """A notice as its message (the scope oneof set from whichever field is filled)."""
    message = pb.Suspension(
        suspension_id=value.suspension_id,
        start_time=timestamp_message(value.start_time),
        end_time=timestamp_message(value.end_time),
        reason=value.reason,
        revoked=value.revoked,
        publisher=value.publisher,
        origin_admdvs=value.origin_admdvs,
    )
    if value.fixmedins_code:
        message.fixmedins_code = value.fixmedins_code
    else:
        message.admdvs = value.admdvs
    return message


def suspension_draft(message: pb.Suspension) -> SuspensionDraft:
    """A notice's scope, window, reason and publisher as given (the scope oneof read as two fields)."""
    scope = message.WhichOneof("scope")
    return SuspensionDraft(
        fixmedins_code=message.fixmedins_code if scope == "fixmedins_code" else "",
        admdvs=message.admdvs if scope == "admdvs" else "",
        start_time=moment_of(message, "start_time"),
        end_time=moment_of(message, "end_time"),
        reason=message.reason,
        publisher=message.publisher,
    )


def coverage(value: Coverage) -> api.CoverageReportResponse:
    """A coverage report as its response."""
    return api.CoverageReportResponse(
        rows=[
            api.CoverageRow(
                admdvs=row.admdvs,
                region_level=row.region_level,
                institution_count=row.institution_count,
                inpatient_count=row.inpatient_count,
                general_outpatient_count=row.general_outpatient_count,
                special_drugs_count=row.special_drugs_count,
                chronic_counts=row.chronic_counts,
            )
            for row in value.rows
        ],
        counties_without_outpatient=value.counties_without_outpatient,
    )
