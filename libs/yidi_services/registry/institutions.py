"""Designated institutions (定点医药机构) as plain values, and the one validator every entry path uses.

RegisterInstitution, UpdateInstitution, the CSV import and SyncInstitutions all turn their
input into an :class:`InstitutionDraft` (every field as given, as text) and call
:func:`validate`, so a record is judged the same way however it arrives. Violations name
fields relative to the record (``services[1].open_date``); callers prefix them with the
path of their own request or with the CSV row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum
from typing import TypeVar

from yidi_core.codes import NATIONAL_REGION, check_chronic_disease, check_institution, check_region
from yidi_core.errors import DomainError, combine, invalid

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)

_LEVELS = ("1", "2", "3")
_NAME_MAX = 200
_ADDRESS_MAX = 300


class InstitutionType(StrEnum):
    """定点医疗机构 (code prefix ``H``) or 定点零售药店 (code prefix ``P``)."""

    MEDICAL = "medical"
    PHARMACY = "pharmacy"


class InstitutionStatus(StrEnum):
    """Networked (active) or withdrawn from the network (closed)."""

    ACTIVE = "active"
    CLOSED = "closed"


class ServiceKind(StrEnum):
    """A cross-region settlement service an institution opens (its CSV spelling is the value)."""

    INPATIENT = "inpatient"
    GENERAL_OUTPATIENT = "general_outpatient"
    CHRONIC_OUTPATIENT = "chronic_outpatient"
    SPECIAL_DRUGS = "special_drugs"
    PHARMACY_PURCHASE = "pharmacy_purchase"


TYPE_OF_PREFIX = {"H": InstitutionType.MEDICAL, "P": InstitutionType.PHARMACY}
PREFIX_OF_TYPE = {kind: prefix for prefix, kind in TYPE_OF_PREFIX.items()}

ONLY_AT: dict[ServiceKind, InstitutionType] = {
    ServiceKind.INPATIENT: InstitutionType.MEDICAL,
    ServiceKind.GENERAL_OUTPATIENT: InstitutionType.MEDICAL,
    ServiceKind.PHARMACY_PURCHASE: InstitutionType.PHARMACY,
}
"""Services only one type of institution can open (wards and consulting rooms, or a shop counter)."""


@dataclass(frozen=True)
class OpenedService:
    """One opened service; ``chronic_disease`` is set only for chronic outpatient (门诊慢特病)."""

    kind: ServiceKind
    chronic_disease: str
    open_date: date
    close_date: date | None = None

    def open_on(self, day: date) -> bool:
        """Whether settlement under this service is possible on ``day`` (close date exclusive)."""
        return self.open_date <= day and (self.close_date is None or day < self.close_date)


def listing_order(service: OpenedService) -> tuple[int, str]:
    """Services listed in the enum's order, then by disease code, so records compare and print stably."""
    return list(ServiceKind).index(service.kind), service.chronic_disease


@dataclass(frozen=True)
class Institution:
    """A validated institution record; ``version`` and ``update_time`` are set by the store."""

    code: str
    name: str
    type: InstitutionType
    level: str
    admdvs: str
    address: str
    status: InstitutionStatus
    services: tuple[OpenedService, ...]
    accepts_cross_province: bool
    accepts_in_province: bool
    version: int = 0
    update_time: datetime | None = None

    def same_content(self, other: Institution) -> bool:
        """Equal apart from version and update time (an import of an unchanged row changes nothing)."""
        return replace(self, version=0, update_time=None) == replace(other, version=0, update_time=None)


@dataclass(frozen=True)
class ServiceDraft:
    """An opened service as given: kind name, disease code and ISO dates ('' when absent)."""

    kind: str
    chronic_disease: str
    open_date: str
    close_date: str = ""


@dataclass(frozen=True)
class InstitutionDraft:
    """An institution as given, before validation; enums are their lower-case names or ''."""

    code: str
    name: str
    type: str
    level: str
    admdvs: str
    address: str
    status: str
    services: tuple[ServiceDraft, ...]
    accepts_cross_province: bool
    accepts_in_province: bool
    version: int = 0
    update_time: datetime | None = None


class _Collector:
    """Gathers every violation of one record so the caller sees them all at once."""

    def __init__(self) -> None:
        self.errors: list[DomainError] = []

    def run(self, check: Callable[[], T]) -> T | None:
        try:
            return check()
        except DomainError as error:
            self.errors.append(error)
            return None

    def add(self, reason: str, field: str, description: str) -> None:
        self.errors.append(invalid(reason, field, description))


def parse_enum(enum: type[E], value: str, field: str, required: bool = True) -> E | None:
    """The member named ``value`` ('' → None unless required); INVALID_ARGUMENT naming ``field`` otherwise."""
    if not value and not required:
        return None
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise invalid("INVALID_ARGUMENT", field, f"must be one of {allowed}, got {value[:40]!r}") from None


def parse_date(value: str, field: str) -> date:
    """An ISO date (``yyyy-mm-dd``), refused with INVALID_ARGUMENT naming ``field``."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise invalid("INVALID_ARGUMENT", field, f"must be a date yyyy-mm-dd, got {value[:40]!r}") from None


def _service(draft: ServiceDraft, field: str, found: _Collector) -> OpenedService | None:
    kind = found.run(lambda: parse_enum(ServiceKind, draft.kind, f"{field}.kind"))
    disease = draft.chronic_disease
    if kind is ServiceKind.CHRONIC_OUTPATIENT:
        disease = found.run(lambda: check_chronic_disease(draft.chronic_disease, f"{field}.chronic_disease"))
    elif disease:
        found.add("INVALID_ARGUMENT", f"{field}.chronic_disease", "is only allowed for chronic_outpatient")
    if not draft.open_date:
        found.add("INVALID_ARGUMENT", f"{field}.open_date", "is required")
        return None
    opened = found.run(lambda: parse_date(draft.open_date, f"{field}.open_date"))
    closed = (
        found.run(lambda: parse_date(draft.close_date, f"{field}.close_date")) if draft.close_date else None
    )
    if opened and closed and closed <= opened:
        found.add("INVALID_ARGUMENT", f"{field}.close_date", "must be after open_date")
    if kind is None or disease is None or opened is None or (draft.close_date and closed is None):
        return None
    return OpenedService(kind, disease, opened, closed)


def _services(
    drafts: tuple[ServiceDraft, ...], kind: InstitutionType | None, found: _Collector
) -> tuple[OpenedService, ...]:
    services: list[OpenedService] = []
    seen: set[tuple[ServiceKind, str]] = set()
    for index, draft in enumerate(drafts):
        field = f"services[{index}]"
        service = _service(draft, field, found)
        if service is None:
            continue
        only = ONLY_AT.get(service.kind)
        if kind is not None and only is not None and only is not kind:
            found.add(
                "INVALID_ARGUMENT",
                f"{field}.kind",
                f"{service.kind} can only be opened by a {only} institution",
            )
        if (service.kind, service.chronic_disease) in seen:
            found.add("INVALID_ARGUMENT", field, "is listed twice")
        seen.add((service.kind, service.chronic_disease))
        services.append(service)
    return tuple(sorted(services, key=listing_order))


def _consistent_code(code: str, kind: InstitutionType | None, admdvs: str | None, found: _Collector) -> None:
    """The code's letter must match the type and its digits 2-7 the region (codes.md)."""
    if kind is not None and TYPE_OF_PREFIX[code[0]] is not kind:
        found.add(
            "INVALID_CODE", "fixmedins_code", f"starts with {code[0]}, which is not a {kind} institution"
        )
    if admdvs is not None and code[1:7] != admdvs:
        found.add("INVALID_CODE", "fixmedins_code", f"digits 2-7 must equal admdvs {admdvs}, got {code[1:7]}")


def _level(level: str, kind: InstitutionType | None, found: _Collector) -> None:
    if kind is InstitutionType.MEDICAL and level not in _LEVELS:
        found.add(
            "INVALID_ARGUMENT", "level", f"must be 1, 2 or 3 for a medical institution, got {level[:10]!r}"
        )
    if kind is InstitutionType.PHARMACY and level:
        found.add("INVALID_ARGUMENT", "level", "must be empty for a pharmacy")


def _text(value: str, field: str, limit: int, required: bool, found: _Collector) -> None:
    if required and not value.strip():
        found.add("INVALID_ARGUMENT", field, "is required")
    if len(value) > limit:
        found.add("INVALID_ARGUMENT", field, f"must be at most {limit} characters, got {len(value)}")


def _region(admdvs: str, found: _Collector) -> str | None:
    region = found.run(lambda: check_region(admdvs, "admdvs"))
    if region == NATIONAL_REGION:
        found.add("INVALID_CODE", "admdvs", "must be the institution's own region, not the national 000000")
        return None
    return region


def validate(draft: InstitutionDraft) -> Institution:
    """The validated record, or one DomainError carrying every violation (relative field names)."""
    found = _Collector()
    code = found.run(lambda: check_institution(draft.code, "fixmedins_code"))
    kind = found.run(lambda: parse_enum(InstitutionType, draft.type, "type"))
    admdvs = _region(draft.admdvs, found)
    if code is not None:
        _consistent_code(code, kind, admdvs, found)
    _text(draft.name, "fixmedins_name", _NAME_MAX, True, found)
    _text(draft.address, "address", _ADDRESS_MAX, False, found)
    _level(draft.level, kind, found)
    status = found.run(lambda: parse_enum(InstitutionStatus, draft.status, "status", required=False))
    services = _services(draft.services, kind, found)
    error = combine(found.errors)
    if error is not None:
        raise error
    assert code is not None and kind is not None and admdvs is not None
    return Institution(
        code=code,
        name=draft.name.strip(),
        type=kind,
        level=draft.level,
        admdvs=admdvs,
        address=draft.address.strip(),
        status=status or InstitutionStatus.ACTIVE,
        services=services,
        accepts_cross_province=draft.accepts_cross_province,
        accepts_in_province=draft.accepts_in_province,
        version=draft.version,
        update_time=draft.update_time,
    )
