"""Catalogue handlers (就医地目录): import versions, find the version in force, look up, diff.

A treatment region's catalogue on a date is the most specific overlay in force then (the
county's own, else its city's, else its province's; all held at the province's node),
falling back per item to the national base version in force then. Versions are immutable, so the
rows of a version are cached in process and a settlement that records the version ids it
used can always be explained later.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from yidi_core.codes import NATIONAL_REGION, check_item_code, check_region
from yidi_core.errors import DomainError, combine, invalid
from yidi_runtime.paging import bad_token, decode_token, encode_token
from yidi_services.catalogue.hosts import up_the_tree
from yidi_services.catalogue.item_cache import VersionItemCache
from yidi_services.catalogue.items import CatalogueRow
from yidi_services.catalogue.models import CatalogueItemRecord, CatalogueVersionRecord
from yidi_services.catalogue.paging import newest_first_page

MAX_CODES = 5_000
_INSERT_CHUNK = 5_000
_READ_CHUNK = 500
_VERSION_ID = re.compile(r"(\d{6})@(\d{4}-\d{2}-\d{2})#(\d+)")


class Layer(StrEnum):
    """National base (region 000000) or an overlay on it (of a province, or of a city or county in it)."""

    NATIONAL_BASE = "national_base"
    PROVINCIAL_OVERLAY = "provincial_overlay"


@dataclass(frozen=True, slots=True)
class CatalogueVersion:
    """One imported version, as the API describes it."""

    pk: int
    admdvs: str
    layer: Layer
    effective_date: date
    item_count: int
    import_time: datetime
    content_sha256: str

    @property
    def version_id(self) -> str:
        """``110000@2026-01-01#3``: region, effective date and a sequence unique on this node."""
        return f"{self.admdvs}@{self.effective_date.isoformat()}#{self.pk}"

    @classmethod
    def of(cls, record: CatalogueVersionRecord) -> CatalogueVersion:
        """The value of a stored version row."""
        return cls(
            record.id,
            record.admdvs,
            Layer(record.layer),
            record.effective_date,
            record.item_count,
            record.import_time,
            record.content_sha256,
        )


@dataclass(frozen=True, slots=True)
class CatalogueView:
    """Versions consulted in order (overlay before base); ``day`` filters rows by their validity."""

    versions: tuple[CatalogueVersion, ...]
    day: date | None

    def version_of(self, layer: Layer) -> CatalogueVersion | None:
        """The version of this layer in the view, if any."""
        return next((version for version in self.versions if version.layer is layer), None)


@dataclass(frozen=True, slots=True)
class Found:
    """A row in force and the version it came from."""

    row: CatalogueRow
    version: CatalogueVersion


def check_layer(admdvs: str, layer: Layer | None) -> str:
    """The region of a new version: 000000 for the national base, a province, city or county for an overlay."""
    region = check_region(admdvs, "header.admdvs")
    if layer is None:
        raise invalid("INVALID_ARGUMENT", "header.layer", "is required: national base or provincial overlay")
    if region == NATIONAL_REGION:
        if layer is not Layer.PROVINCIAL_OVERLAY:
            return region
        raise invalid(
            "INVALID_ARGUMENT", "header.layer", "region 000000 holds the national base, not an overlay"
        )
    if layer is not Layer.PROVINCIAL_OVERLAY:
        raise invalid(
            "INVALID_ARGUMENT", "header.layer", f"region {region} holds an overlay, not the national base"
        )
    return region


def import_catalogue(
    session: Session,
    admdvs: str,
    layer: Layer,
    effective_date: date,
    rows: Sequence[CatalogueRow],
    content_sha256: str,
    now: datetime,
) -> CatalogueVersion:
    """Store a new version and its rows in bulk (the caller commits, all or nothing)."""
    record = CatalogueVersionRecord(
        admdvs=admdvs,
        layer=layer.value,
        effective_date=effective_date,
        item_count=len(rows),
        import_time=now,
        content_sha256=content_sha256,
    )
    session.add(record)
    session.flush()
    for start in range(0, len(rows), _INSERT_CHUNK):
        chunk = rows[start : start + _INSERT_CHUNK]
        session.execute(insert(CatalogueItemRecord), [row.record(record.id) for row in chunk])
    return CatalogueVersion.of(record)


def _in_force(session: Session, regions: Sequence[str], day: date) -> dict[str, CatalogueVersion]:
    """Each region's version in force on ``day`` (regions without one left out), in one round trip."""
    latest = [
        select(CatalogueVersionRecord.id)
        .where(CatalogueVersionRecord.admdvs == region, CatalogueVersionRecord.effective_date <= day)
        .order_by(CatalogueVersionRecord.effective_date.desc(), CatalogueVersionRecord.id.desc())
        .limit(1)
        .scalar_subquery()
        for region in regions
    ]
    records = session.scalars(select(CatalogueVersionRecord).where(CatalogueVersionRecord.id.in_(latest)))
    return {record.admdvs: CatalogueVersion.of(record) for record in records}


def view_on(session: Session, admdvs: str, day: date, field: str = "admdvs") -> CatalogueView:
    """The catalogue in force in a treatment region on a day: its most specific overlay, then the base.

    The overlay is the region's own in force, else its city's, else its province's
    (:func:`~yidi_services.catalogue.hosts.up_the_tree`); a region without any uses the base alone.
    """
    region = check_region(admdvs, field)
    overlays = up_the_tree(region)
    in_force = _in_force(session, [*overlays, NATIONAL_REGION], day)
    overlay = next((in_force[r] for r in overlays if r in in_force), None)
    versions = tuple(version for version in (overlay, in_force.get(NATIONAL_REGION)) if version is not None)
    if not versions:
        raise DomainError(
            "NO_CATALOGUE_VERSION",
            f"no catalogue version is in force for region {region} on {day.isoformat()}",
            metadata={"admdvs": region, "date": day.isoformat()},
        )
    return CatalogueView(versions, day)


def version_view(session: Session, version_id: str, field: str) -> CatalogueView:
    """One version on its own, every row of it (no date filter)."""
    match = _VERSION_ID.fullmatch(version_id)
    record = session.get(CatalogueVersionRecord, int(match.group(3))) if match else None
    if record is None or CatalogueVersion.of(record).version_id != version_id:
        raise DomainError(
            "NO_CATALOGUE_VERSION",
            f"{field}: no catalogue version {version_id!r} on this node",
            metadata={"version_id": version_id[:64]},
        )
    return CatalogueView((CatalogueVersion.of(record),), None)


def check_codes(codes: Sequence[str], field: str = "codes", *, required: bool = True) -> list[str]:
    """Distinct valid item codes in request order; every malformed one is named."""
    if required and not codes:
        raise invalid("INVALID_ARGUMENT", field, "name at least one code")
    if len(codes) > MAX_CODES:
        raise invalid("INVALID_ARGUMENT", field, f"at most {MAX_CODES} codes per request, got {len(codes)}")
    checked, problems = [], []
    for index, code in enumerate(codes):
        try:
            checked.append(check_item_code(code, f"{field}[{index}]")[0])
        except DomainError as error:
            problems.append(error)
    error = combine(problems)
    if error is not None:
        raise error
    return list(dict.fromkeys(checked))


def _rows(
    session: Session, cache: VersionItemCache, version: CatalogueVersion, codes: Iterable[str]
) -> dict[str, CatalogueRow | None]:
    """A version's rows for ``codes`` (None where absent): from the cache, else read once and cached."""
    answers, unknown = cache.get_many(version.pk, codes)
    for start in range(0, len(unknown), _READ_CHUNK):
        chunk = unknown[start : start + _READ_CHUNK]
        read: dict[str, CatalogueRow | None] = dict.fromkeys(chunk)
        for record in session.scalars(
            select(CatalogueItemRecord).where(
                CatalogueItemRecord.version_pk == version.pk, CatalogueItemRecord.code.in_(chunk)
            )
        ):
            read[record.code] = CatalogueRow.from_record(record)
        cache.put_many(version.pk, read)
        answers.update(read)
    return answers


def lookup(
    session: Session, cache: VersionItemCache, view: CatalogueView, codes: Sequence[str]
) -> dict[str, Found]:
    """The row in force for each code found: the first version of the view that has it valid."""
    found: dict[str, Found] = {}
    remaining = list(codes)
    for version in view.versions:
        rows = _rows(session, cache, version, remaining)
        for code in remaining:
            row = rows.get(code)
            if row is not None and (view.day is None or row.valid_on(view.day)):
                found[code] = Found(row, version)
        remaining = [code for code in remaining if code not in found]
    return found


def list_versions(session: Session, admdvs: str, size: int, token: str) -> tuple[list[CatalogueVersion], str]:
    """A region's versions, newest effective date first, one page at a time."""
    region = check_region(admdvs)
    statement = select(CatalogueVersionRecord).where(CatalogueVersionRecord.admdvs == region)
    records, next_token = newest_first_page(
        session, statement, CatalogueVersionRecord, size, token, f"versions:{region}"
    )
    return [CatalogueVersion.of(record) for record in records], next_token


@dataclass(frozen=True, slots=True)
class Difference:
    """How one code differs between two catalogues (``presence`` when only one side has it)."""

    code: str
    left: Found | None
    right: Found | None
    changed_fields: tuple[str, ...]


def _compare(code: str, left: Found | None, right: Found | None) -> Difference | None:
    if left is None and right is None:
        return None
    if left is None or right is None:
        return Difference(code, left, right, ("presence",))
    before, after = left.row.comparable(), right.row.comparable()
    changed = tuple(name for name in before if before[name] != after[name])
    return Difference(code, left, right, changed) if changed else None


def _all_codes(session: Session, views: Iterable[CatalogueView]) -> list[str]:
    pks = [version.pk for view in views for version in view.versions]
    return list(
        session.scalars(
            select(CatalogueItemRecord.code)
            .where(CatalogueItemRecord.version_pk.in_(pks))
            .distinct()
            .order_by(CatalogueItemRecord.code)
        )
    )


def diff(
    session: Session,
    cache: VersionItemCache,
    left: CatalogueView,
    right: CatalogueView,
    codes: Sequence[str],
    size: int,
    token: str,
) -> tuple[list[Difference], str]:
    """Differences for ``codes`` (every code of both sides when empty), one page at a time.

    The token resumes at a position in the code list, so a page may scan many identical
    codes before it fills.
    """
    sides = "|".join(
        ",".join(version.version_id for version in view.versions) + f"@{view.day}" for view in (left, right)
    )
    query = f"diff:{sides}:{','.join(codes)}"
    resume = decode_token(token, query, 1)
    if resume and not resume[0].isdigit():
        raise bad_token()
    start = int(resume[0]) if resume else 0
    candidates = codes or _all_codes(session, (left, right))
    differences: list[Difference] = []
    position = start
    while position < len(candidates) and len(differences) < size:
        chunk = candidates[position : position + min(_READ_CHUNK, size - len(differences))]
        on_left, on_right = lookup(session, cache, left, chunk), lookup(session, cache, right, chunk)
        for code in chunk:
            position += 1
            difference = _compare(code, on_left.get(code), on_right.get(code))
            if difference is not None:
                differences.append(difference)
    return differences, encode_token([str(position)], query) if position < len(candidates) else ""
