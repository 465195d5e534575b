"""Institution handlers: register, update, read, list, import, sync and the settlement check.

Each takes an open session and plain values, decides, and writes through ``store``; the
caller's unit of work commits. ``node_region`` is the region this node administers: it may
only change institutions lying in it (``PERMISSION_DENIED_REGION`` otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from yidi_codec.fields import relabel
from yidi_core.codes import (
    check_chronic_disease,
    check_institution,
    check_region,
    chronic_matches,
    province_of,
)
from yidi_core.dictionaries import NATIONAL
from yidi_core.errors import DomainError, combine, invalid
from yidi_runtime.config import region_contains
from yidi_runtime.paging import decode_token, encode_token, page_size
from yidi_runtime.regions import ensure_within, region_prefix
from yidi_services.registry import csv_import, store
from yidi_services.registry.institutions import (
    Institution,
    InstitutionDraft,
    InstitutionStatus,
    InstitutionType,
    OpenedService,
    ServiceKind,
    parse_enum,
    validate,
)
from yidi_services.registry.med_types import SERVICE_FOR_MED_TYPE
from yidi_services.registry.suspensions import covering_notice


def validated(draft: InstitutionDraft, path: str) -> Institution:
    """Validate a record, naming violations below ``path`` (e.g. ``institution``)."""
    try:
        return validate(draft)
    except DomainError as error:
        raise relabel(error, lambda field: f"{path}.{field}") from None


def register(session: Session, node_region: str, draft: InstitutionDraft, now: datetime) -> Institution:
    """A new institution at version 1; ALREADY_EXISTS when its code is taken."""
    institution = validated(draft, "institution")
    ensure_within(node_region, institution.admdvs, f"institution {institution.code}")
    if store.load(session, [institution.code]):
        raise DomainError(
            "ALREADY_EXISTS",
            f"institution {institution.code} is already registered; use UpdateInstitution",
            metadata={"fixmedins_code": institution.code},
        )
    stored = replace(institution, version=1, update_time=now)
    store.write(session, [stored], [])
    return stored


def update(session: Session, node_region: str, draft: InstitutionDraft, now: datetime) -> Institution:
    """The institution's new record, one version up; NOT_FOUND when never registered."""
    institution = validated(draft, "institution")
    ensure_within(node_region, institution.admdvs, f"institution {institution.code}")
    current = get(session, institution.code)
    stored = replace(institution, version=current.version + 1, update_time=now)
    store.write(session, [], [stored])
    return stored


def get(session: Session, code: str) -> Institution:
    """One institution; NOT_FOUND when this registry does not hold it."""
    code = check_institution(code, "fixmedins_code")
    found = store.load(session, [code]).get(code)
    if found is None:
        raise DomainError(
            "NOT_FOUND", f"institution {code} is not registered here", metadata={"fixmedins_code": code}
        )
    return found


@dataclass(frozen=True)
class ListQuery:
    """ListInstitutions' request as plain values (enums as their names, '' when unset)."""

    admdvs: str
    type: str
    levels: tuple[str, ...]
    service: str
    chronic_disease: str
    status: str
    open_on: date | None
    cross_province_only: bool
    page_size: int
    page_token: str


def _filter(query: ListQuery, today: date) -> store.InstitutionFilter:
    errors: list[DomainError] = []
    prefix = ""
    try:
        prefix = region_prefix(check_region(query.admdvs)) if query.admdvs else ""
    except DomainError as error:
        errors.append(error)
    for index, level in enumerate(query.levels):
        if level not in ("1", "2", "3"):
            errors.append(
                invalid("INVALID_ARGUMENT", f"levels[{index}]", f"must be 1, 2 or 3, got {level[:10]!r}")
            )
    kinds: dict[str, StrEnum | None] = {}
    for field, enum, value in (
        ("type", InstitutionType, query.type),
        ("service", ServiceKind, query.service),
        ("status", InstitutionStatus, query.status),
    ):
        try:
            kinds[field] = parse_enum(enum, value, field, required=False)
        except DomainError as error:
            errors.append(error)
    service = kinds.get("service")
    chronic = ""
    if query.chronic_disease:
        try:
            chronic = check_chronic_disease(query.chronic_disease)
        except DomainError as error:
            errors.append(error)
        if service not in (None, ServiceKind.CHRONIC_OUTPATIENT):
            errors.append(
                invalid(
                    "INVALID_ARGUMENT", "chronic_disease", "only applies to the chronic outpatient service"
                )
            )
        service = ServiceKind.CHRONIC_OUTPATIENT
    error = combine(errors)
    if error is not None:
        raise error
    return store.InstitutionFilter(
        prefix=prefix,
        type=kinds["type"],  # type: ignore[arg-type]
        levels=tuple(sorted(set(query.levels))),
        service=service,  # type: ignore[arg-type]
        chronic_disease=chronic,
        status=kinds["status"],  # type: ignore[arg-type]
        open_on=query.open_on or today,
        cross_province_only=query.cross_province_only,
    )


def list_institutions(session: Session, query: ListQuery, today: date) -> tuple[list[Institution], str]:
    """One page of institutions by code, and the token of the next page ('' on the last)."""
    size = page_size(query.page_size)
    where = _filter(query, today)
    filters = {**where.__dict__, "open_on": where.open_on.isoformat()}
    after = decode_token(query.page_token, filters, 1)
    found = store.list_page(session, where, after[0] if after else None, size + 1)
    if len(found) <= size:
        return found, ""
    page = found[:size]
    return page, encode_token([page[-1].code], filters)


@dataclass(frozen=True)
class ImportResult:
    """What an import did: rows read, institutions created and updated (unchanged rows count in neither)."""

    row_count: int
    created_count: int
    updated_count: int
    changed: tuple[Institution, ...] = ()
    """The records stored, for the parent."""


def _csv_checked(rows: Sequence[csv_import.CsvRow], scope: str) -> list[Institution]:
    institutions: list[Institution] = []
    errors: list[DomainError] = []
    first_row: dict[str, int] = {}
    for row in rows:
        errors.extend(row.problems)
        if row.draft is None:
            continue
        try:
            institution = validate(row.draft)
        except DomainError as error:
            column = lambda field: csv_import.cell(row.number, field.split("[")[0].split(".")[0])  # noqa: E731, B023
            errors.append(relabel(error, column))
            continue
        if not region_contains(scope, institution.admdvs):
            errors.append(
                invalid(
                    "INVALID_ARGUMENT",
                    csv_import.cell(row.number, "admdvs"),
                    f"lies outside the import's region {scope}",
                )
            )
        if institution.code in first_row:
            errors.append(
                invalid(
                    "INVALID_ARGUMENT",
                    csv_import.cell(row.number, "fixmedins_code"),
                    f"repeats row {first_row[institution.code]}",
                )
            )
        first_row.setdefault(institution.code, row.number)
        institutions.append(institution)
    error = combine(errors)
    if error is not None:
        raise csv_import.capped(error)
    return institutions


def import_csv(session: Session, node_region: str, scope: str, data: bytes, now: datetime) -> ImportResult:
    """Create or update every row of a CSV file, or nothing at all."""
    scope = check_region(scope, "header.admdvs")
    ensure_within(node_region, scope, "the import's region")
    rows = csv_import.parse(data)
    institutions = _csv_checked(rows, scope)
    existing = store.load(session, [institution.code for institution in institutions])
    created, updated = [], []
    for institution in institutions:
        current = existing.get(institution.code)
        if current is None:
            created.append(replace(institution, version=1, update_time=now))
        elif not current.same_content(institution):
            updated.append(replace(institution, version=current.version + 1, update_time=now))
    store.write(session, created, updated)
    return ImportResult(len(rows), len(created), len(updated), (*created, *updated))


@dataclass(frozen=True)
class SyncResult:
    """Records stored, and records ignored because a newer or equal version was already held."""

    applied_count: int
    stale_count: int
    changed: tuple[Institution, ...] = ()
    """The records stored, for this node's own parent."""


def sync(
    session: Session, node_region: str, source: str, drafts: Sequence[InstitutionDraft], now: datetime
) -> SyncResult:
    """Keep the highest version of each pushed record (order-insensitive, repeat-safe)."""
    source = check_region(source, "source_admdvs")
    ensure_within(node_region, source, "the sending region")
    newest: dict[str, Institution] = {}
    errors: list[DomainError] = []
    for index, draft in enumerate(drafts):
        try:
            institution = validated(draft, f"institutions[{index}]")
        except DomainError as error:
            errors.append(error)
            continue
        if institution.version < 1:
            errors.append(invalid("INVALID_ARGUMENT", f"institutions[{index}].version", "must be at least 1"))
            continue
        ensure_within(source, institution.admdvs, f"institution {institution.code}")
        held = newest.get(institution.code)
        if held is None or held.version < institution.version:
            newest[institution.code] = replace(institution, update_time=institution.update_time or now)
    error = combine(errors)
    if error is not None:
        raise error
    store.serialize_syncs(session)
    existing = store.load(session, list(newest))
    created = [i for code, i in newest.items() if code not in existing]
    updated = [i for code, i in newest.items() if code in existing and existing[code].version < i.version]
    store.write(session, created, updated)
    applied = len(created) + len(updated)
    return SyncResult(applied, len(drafts) - applied, (*created, *updated))


@dataclass(frozen=True)
class CheckQuery:
    """CheckInstitution's request as plain values."""

    code: str
    med_type: str
    chronic_disease: str
    service_date: date | None
    insured_region: str
    at: datetime


def _check_input(query: CheckQuery) -> tuple[str, ServiceKind, str, date]:
    errors: list[DomainError] = []
    chronic = ""
    for check in (
        lambda: check_institution(query.code, "fixmedins_code"),
        lambda: NATIONAL.check("med_type", query.med_type, "med_type"),
        lambda: check_region(query.insured_region, "insuplc_admdvs") if query.insured_region else "",
    ):
        try:
            check()
        except DomainError as error:
            errors.append(error)
    kind = SERVICE_FOR_MED_TYPE.get(query.med_type.strip())
    if kind is None and not errors:
        errors.append(invalid("INVALID_CODE", "med_type", f"{query.med_type!r} needs no registry service"))
    if kind is ServiceKind.CHRONIC_OUTPATIENT or query.chronic_disease:
        try:
            chronic = check_chronic_disease(query.chronic_disease)
        except DomainError as error:
            errors.append(error)
    if query.service_date is None:
        errors.append(invalid("INVALID_ARGUMENT", "service_date", "is required"))
    error = combine(errors)
    if error is not None:
        raise error
    assert kind is not None and query.service_date is not None
    return query.code.strip(), kind, chronic, query.service_date


def _refuse(reason: str, message: str, institution: Institution, **metadata: str) -> DomainError:
    return DomainError(reason, message, metadata={"fixmedins_code": institution.code, **metadata})


def _accepts(institution: Institution, insured_region: str) -> None:
    """Cross-province patients need 跨省 acceptance; patients from another city of the province 省内."""
    if not insured_region or insured_region[:4] == institution.admdvs[:4]:
        return
    cross = province_of(insured_region, "insuplc_admdvs") != province_of(institution.admdvs)
    if cross and not institution.accepts_cross_province:
        raise _refuse(
            "INSTITUTION_NOT_NETWORKED",
            f"institution {institution.code} does not settle for cross-province patients",
            institution,
            scope="cross_province",
        )
    if not cross and not institution.accepts_in_province:
        raise _refuse(
            "INSTITUTION_NOT_NETWORKED",
            f"institution {institution.code} does not settle for in-province out-of-area patients",
            institution,
            scope="in_province",
        )


def _opened(institution: Institution, kind: ServiceKind, chronic: str, day: date) -> OpenedService | None:
    for service in institution.services:
        if service.kind is not kind or not service.open_on(day):
            continue
        if kind is not ServiceKind.CHRONIC_OUTPATIENT or chronic_matches(service.chronic_disease, chronic):
            return service
    return None


def check(session: Session, query: CheckQuery) -> tuple[Institution, OpenedService]:
    """May a patient settle this medical type here on this date? The service that allows it, or a reason."""
    code, kind, chronic, day = _check_input(query)
    institution = store.load(session, [code]).get(code)
    if institution is None or institution.status is InstitutionStatus.CLOSED:
        raise DomainError(
            "INSTITUTION_NOT_NETWORKED",
            f"institution {code} is not a networked designated institution",
            metadata={"fixmedins_code": code},
        )
    _accepts(institution, query.insured_region.strip())
    service = _opened(institution, kind, chronic, day)
    if service is None:
        wanted = f"{kind}" + (f" for {chronic}" if chronic else "")
        raise _refuse(
            "SERVICE_NOT_ENABLED",
            f"institution {code} has not opened {wanted} on {day.isoformat()}",
            institution,
            med_type=query.med_type.strip(),
            service=kind.value,
            **({"chronic_disease": chronic} if chronic else {}),
        )
    notice = covering_notice(session, institution, query.at)
    if notice is not None:
        raise _refuse(
            "INSTITUTION_SUSPENDED",
            f"institution {code} is suspended until {notice.end_time.isoformat()}: {notice.reason}",
            institution,
            end_time=notice.end_time.isoformat(),
            suspension_id=notice.suspension_id,
        )
    return institution, service
