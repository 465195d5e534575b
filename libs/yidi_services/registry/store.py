"""Reading and writing institutions and notices: bulk statements, keyset pages, no commits.

The unit of work commits; these functions only read and flush, so an import or a sync
that fails half-way leaves nothing behind.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    delete,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session

from yidi_runtime.regions import ancestors, prefix_upper_bound
from yidi_services.registry.institutions import (
    PREFIX_OF_TYPE,
    Institution,
    InstitutionStatus,
    InstitutionType,
    OpenedService,
    ServiceKind,
    listing_order,
)
from yidi_services.registry.models import InstitutionRow, OpenedServiceRow, PushedVersionRow, SuspensionRow

_CHUNK = 1000
_BULK_ROWS = 10_000
"""A write this large refreshes the planner's statistics at once: plans made from the
statistics of a nearly empty table scan everything (≈75 ms instead of ≈5 ms per page on
PostgreSQL right after a 200,000-row import)."""
T = TypeVar("T")


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def starts_with(column: InstrumentedAttribute[Any] | ColumnElement[Any], prefix: str) -> ColumnElement[bool]:
    """``column`` starts with ``prefix``, as a range an index serves (LIKE is not indexed everywhere)."""
    upper = prefix_upper_bound(prefix)
    lower = column >= prefix
    return lower if upper is None else and_(lower, column < upper)


def code_in_region(
    prefix: str, types: Iterable[InstitutionType], column: InstrumentedAttribute[str] = InstitutionRow.code
) -> ColumnElement[bool]:
    """Institution codes (in ``column``) of ``types`` whose region starts with ``prefix``: key ranges."""
    ranges = []
    for kind in types:
        letter = PREFIX_OF_TYPE[kind]
        upper = prefix_upper_bound(prefix)
        bound = letter + upper if upper is not None else chr(ord(letter) + 1)
        ranges.append(and_(column >= letter + prefix, column < bound))
    return or_(*ranges) if ranges else false()


def _service(row: OpenedServiceRow) -> OpenedService:
    return OpenedService(ServiceKind(row.kind), row.chronic_disease, row.open_date, row.close_date)


def _institution(row: InstitutionRow, services: Iterable[OpenedServiceRow]) -> Institution:
    return Institution(
        code=row.code,
        name=row.name,
        type=InstitutionType(row.type),
        level=row.level,
        admdvs=row.admdvs,
        address=row.address,
        status=InstitutionStatus(row.status),
        services=tuple(sorted((_service(s) for s in services), key=listing_order)),
        accepts_cross_province=row.accepts_cross_province,
        accepts_in_province=row.accepts_in_province,
        version=row.version,
        update_time=as_utc(row.update_time),
    )


def _with_services(session: Session, rows: Sequence[InstitutionRow]) -> list[Institution]:
    services: dict[str, list[OpenedServiceRow]] = defaultdict(list)
    for chunk in _chunks([row.code for row in rows]):
        for service in session.scalars(
            select(OpenedServiceRow).where(OpenedServiceRow.institution_code.in_(chunk))
        ):
            services[service.institution_code].append(service)
    return [_institution(row, services[row.code]) for row in rows]


def load(session: Session, codes: Sequence[str]) -> dict[str, Institution]:
    """The stored institutions among ``codes``, by code."""
    rows: list[InstitutionRow] = []
    for chunk in _chunks(list(codes)):
        rows.extend(session.scalars(select(InstitutionRow).where(InstitutionRow.code.in_(chunk))))
    return {institution.code: institution for institution in _with_services(session, rows)}


def _row_values(institution: Institution) -> dict[str, Any]:
    return {
        "code": institution.code,
        "name": institution.name,
        "type": institution.type.value,
        "level": institution.level,
        "admdvs": institution.admdvs,
        "address": institution.address,
        "status": institution.status.value,
        "accepts_cross_province": institution.accepts_cross_province,
        "accepts_in_province": institution.accepts_in_province,
        "version": institution.version,
        "update_time": institution.update_time,
    }


def write(session: Session, created: Sequence[Institution], updated: Sequence[Institution]) -> None:
    """Insert ``created`` and overwrite ``updated`` (their services replaced as a whole), in bulk.

    A bulk load also refreshes the planner's statistics (see ``_BULK_ROWS``).
    """
    if created:
        session.execute(insert(InstitutionRow), [_row_values(i) for i in created])
    if updated:
        session.execute(update(InstitutionRow), [_row_values(i) for i in updated])
        for chunk in _chunks([i.code for i in updated]):
            session.execute(delete(OpenedServiceRow).where(OpenedServiceRow.institution_code.in_(chunk)))
    services = [
        {
            "institution_code": institution.code,
            "kind": service.kind.value,
            "chronic_disease": service.chronic_disease,
            "open_date": service.open_date,
            "close_date": service.close_date,
        }
        for institution in (*created, *updated)
        for service in institution.services
    ]
    if services:
        session.execute(insert(OpenedServiceRow), services)
    session.flush()
    if len(created) + len(updated) >= _BULK_ROWS:
        for table in (InstitutionRow.__tablename__, OpenedServiceRow.__tablename__):
            session.execute(text(f"ANALYZE {table}"))


def opened_on(
    day: date, kind: ServiceKind, chronic_disease: str = "", codes: ColumnElement[bool] | None = None
) -> ColumnElement[bool]:
    """The institution has ``kind`` (for ``chronic_disease``: its own code or its family) open on ``day``.

    ``codes`` repeats the outer query's code bounds on the services' own column, which the
    planner does not infer. Only worth it for a chronic disease (few institutions per
    disease): PostgreSQL then reads one province's services of that disease (≈3 ms at
    200,000 institutions) instead of the whole country's (≈28 ms). For a common service the
    extra bounds make it underestimate the matches and sort instead of streaming the page.
    """
    condition = and_(
        OpenedServiceRow.institution_code == InstitutionRow.code,
        OpenedServiceRow.kind == kind.value,
        OpenedServiceRow.open_date <= day,
        or_(OpenedServiceRow.close_date.is_(None), OpenedServiceRow.close_date > day),
    )
    if chronic_disease:
        family = chronic_disease[:5] + "0"
        condition = and_(condition, OpenedServiceRow.chronic_disease.in_({chronic_disease, family}))
    if codes is not None:
        condition = and_(condition, codes)
    return exists().where(condition)


@dataclass(frozen=True)
class InstitutionFilter:
    """ListInstitutions' filters, validated; ``prefix`` is the region prefix ('' = everywhere)."""

    prefix: str
    type: InstitutionType | None
    levels: tuple[str, ...]
    service: ServiceKind | None
    chronic_disease: str
    status: InstitutionStatus | None
    open_on: date
    cross_province_only: bool


def _plan_for_these_values(session: Session) -> None:
    """Make PostgreSQL plan each list query for its own values, never a cached generic plan.

    psycopg prepares a statement after a few executions and PostgreSQL may then switch to a
    generic plan; with the region bounds unknown, that plan scans the whole primary key
    (≈100 ms at 200,000 rows) where the plan for the actual bounds reads a few index pages.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def list_page(session: Session, where: InstitutionFilter, after: str | None, limit: int) -> list[Institution]:
    """Up to ``limit`` institutions matching ``where`` with codes above ``after``, by code."""
    _plan_for_these_values(session)
    query = select(InstitutionRow).order_by(InstitutionRow.code).limit(limit)
    types = [where.type] if where.type else list(InstitutionType)
    regional = bool(where.prefix) or where.type is not None
    if regional:
        query = query.where(code_in_region(where.prefix, types))
    if after is not None:
        query = query.where(InstitutionRow.code > after)
    if where.levels:
        query = query.where(InstitutionRow.level.in_(where.levels))
    if where.status is not None:
        query = query.where(InstitutionRow.status == where.status.value)
    if where.cross_province_only:
        query = query.where(InstitutionRow.accepts_cross_province.is_(True))
    if where.service is not None:
        codes = None
        if where.chronic_disease:
            own_codes = (
                [code_in_region(where.prefix, types, OpenedServiceRow.institution_code)] if regional else []
            )
            if after is not None:
                own_codes.append(OpenedServiceRow.institution_code > after)
            codes = and_(*own_codes) if own_codes else None
        query = query.where(opened_on(where.open_on, where.service, where.chronic_disease, codes))
    return _with_services(session, list(session.scalars(query)))


def covering_suspensions(session: Session, code: str, admdvs: str, at: datetime) -> list[SuspensionRow]:
    """Unrevoked notices covering ``at`` for the institution or any region above it."""
    query = select(SuspensionRow).where(
        SuspensionRow.revoked.is_(False),
        SuspensionRow.start_time <= at,
        SuspensionRow.end_time > at,
        or_(SuspensionRow.fixmedins_code == code, SuspensionRow.admdvs.in_(ancestors(admdvs))),
    )
    return list(session.scalars(query))


@dataclass(frozen=True)
class ServiceCount:
    """Active institutions of one county that have one service (and disease) open."""

    admdvs: str
    kind: ServiceKind
    chronic_disease: str
    count: int


def coverage_counts(
    session: Session, prefix: str, day: date
) -> tuple[dict[str, int], dict[str, int], list[ServiceCount]]:
    """Per region code below ``prefix``: all institutions, active ones, and services open on ``day``."""
    in_region = starts_with(InstitutionRow.admdvs, prefix) if prefix else true()
    active = InstitutionRow.status == InstitutionStatus.ACTIVE.value
    all_rows = session.execute(
        select(InstitutionRow.admdvs, func.count()).where(in_region).group_by(InstitutionRow.admdvs)
    )
    active_rows = session.execute(
        select(InstitutionRow.admdvs, func.count()).where(in_region, active).group_by(InstitutionRow.admdvs)
    )
    service_rows = session.execute(
        select(InstitutionRow.admdvs, OpenedServiceRow.kind, OpenedServiceRow.chronic_disease, func.count())
        .join(OpenedServiceRow, OpenedServiceRow.institution_code == InstitutionRow.code)
        .where(
            in_region,
            active,
            OpenedServiceRow.open_date <= day,
            or_(OpenedServiceRow.close_date.is_(None), OpenedServiceRow.close_date > day),
        )
        .group_by(InstitutionRow.admdvs, OpenedServiceRow.kind, OpenedServiceRow.chronic_disease)
    )
    return (
        {admdvs: count for admdvs, count in all_rows},
        {admdvs: count for admdvs, count in active_rows},
        [
            ServiceCount(admdvs, ServiceKind(kind), disease, count)
            for admdvs, kind, disease, count in service_rows
        ],
    )


_SYNC_LOCK = 0x7969_6469_7379_6E63  # "yidisync"
"""The PostgreSQL advisory lock that serializes SyncInstitutions on one node."""


def serialize_syncs(session: Session) -> None:
    """Hold the node's sync lock until this transaction ends (PostgreSQL; SQLite serializes writers already).

    The outbox and an operator's catch-up push may send the same new records at once: without
    the lock both would insert them and one would fail on the primary key; with it the second
    reads what the first committed and keeps the higher versions.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SYNC_LOCK})


def unpushed(session: Session, parent_region: str, after: str, limit: int) -> list[Institution]:
    """Up to ``limit`` institutions with codes above ``after`` whose current version the parent lacks."""
    acknowledged = exists().where(
        PushedVersionRow.parent_region == parent_region,
        PushedVersionRow.code == InstitutionRow.code,
        PushedVersionRow.version >= InstitutionRow.version,
    )
    query = (
        select(InstitutionRow)
        .where(InstitutionRow.code > after, ~acknowledged)
        .order_by(InstitutionRow.code)
        .limit(limit)
    )
    return _with_services(session, list(session.scalars(query)))


def acknowledge(session: Session, parent_region: str, versions: Sequence[tuple[str, int]]) -> None:
    """Record that the parent holds these (code, version)s; an acknowledgement never moves back (upsert)."""
    newest: dict[str, int] = {}
    for code, version in versions:
        newest[code] = max(version, newest.get(code, 0))
    if not newest:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(PushedVersionRow).values(
        [
            {"parent_region": parent_region, "code": code, "version": version}
            for code, version in newest.items()
        ]
    )
    newer = statement.excluded.version > PushedVersionRow.version
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[PushedVersionRow.parent_region, PushedVersionRow.code],
            set_={"version": case((newer, statement.excluded.version), else_=PushedVersionRow.version)},
        )
    )
