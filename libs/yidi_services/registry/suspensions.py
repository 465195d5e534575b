"""Suspension notices (停机公告): publish, revoke, list, and the notice covering an institution now."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from yidi_core.codes import check_institution, check_region, institution_region
from yidi_core.errors import DomainError, combine, invalid
from yidi_runtime.paging import decode_token, encode_token, page_size
from yidi_runtime.regions import ancestors, ensure_within, region_prefix
from yidi_services.registry import store
from yidi_services.registry.institutions import Institution
from yidi_services.registry.models import SuspensionRow

_REASON_MAX = 500
_PUBLISHER_MAX = 100


@dataclass(frozen=True)
class Suspension:
    """A notice; exactly one of ``fixmedins_code`` and ``admdvs`` is set (its scope)."""

    suspension_id: str
    fixmedins_code: str
    admdvs: str
    start_time: datetime
    end_time: datetime
    reason: str
    revoked: bool
    publisher: str

    @property
    def region(self) -> str:
        """The region the notice lies in (for permissions)."""
        return self.admdvs or self.fixmedins_code[1:7]


@dataclass(frozen=True)
class SuspensionDraft:
    """A notice as published: its scope (one of code and region), window, reason and publisher."""

    fixmedins_code: str
    admdvs: str
    start_time: datetime | None
    end_time: datetime | None
    reason: str
    publisher: str


def _notice(row: SuspensionRow) -> Suspension:
    return Suspension(
        suspension_id=row.suspension_id,
        fixmedins_code=row.fixmedins_code or "",
        admdvs=row.admdvs or "",
        start_time=store.as_utc(row.start_time),
        end_time=store.as_utc(row.end_time),
        reason=row.reason,
        revoked=row.revoked,
        publisher=row.publisher,
    )


def _validated(draft: SuspensionDraft) -> SuspensionDraft:
    errors: list[DomainError] = []
    scope = "suspension.fixmedins_code" if draft.fixmedins_code else "suspension.admdvs"
    if bool(draft.fixmedins_code) == bool(draft.admdvs):
        errors.append(
            invalid("INVALID_ARGUMENT", "suspension.scope", "must name one institution or one region")
        )
    else:
        try:
            if draft.fixmedins_code:
                check_institution(draft.fixmedins_code, scope)
            else:
                check_region(draft.admdvs, scope)
        except DomainError as error:
            errors.append(error)
    for field, value in (("start_time", draft.start_time), ("end_time", draft.end_time)):
        if value is None:
            errors.append(invalid("INVALID_ARGUMENT", f"suspension.{field}", "is required"))
    if draft.start_time and draft.end_time and draft.end_time <= draft.start_time:
        errors.append(invalid("INVALID_ARGUMENT", "suspension.end_time", "must be after start_time"))
    if not draft.reason.strip() or len(draft.reason) > _REASON_MAX:
        errors.append(
            invalid("INVALID_ARGUMENT", "suspension.reason", f"is required, at most {_REASON_MAX} characters")
        )
    if len(draft.publisher) > _PUBLISHER_MAX:
        errors.append(
            invalid(
                "INVALID_ARGUMENT", "suspension.publisher", f"must be at most {_PUBLISHER_MAX} characters"
            )
        )
    error = combine(errors)
    if error is not None:
        raise error
    return draft


def publish(session: Session, node_region: str, draft: SuspensionDraft) -> Suspension:
    """Store a notice for an institution or a region in this node's region."""
    draft = _validated(draft)
    assert draft.start_time is not None and draft.end_time is not None
    notice = Suspension(
        suspension_id=uuid.uuid4().hex,
        fixmedins_code=draft.fixmedins_code.strip(),
        admdvs=draft.admdvs.strip(),
        start_time=store.as_utc(draft.start_time),
        end_time=store.as_utc(draft.end_time),
        reason=draft.reason.strip(),
        revoked=False,
        publisher=draft.publisher.strip(),
    )
    ensure_within(node_region, notice.region, "the notice")
    session.add(
        SuspensionRow(
            suspension_id=notice.suspension_id,
            fixmedins_code=notice.fixmedins_code or None,
            admdvs=notice.admdvs or None,
            start_time=notice.start_time,
            end_time=notice.end_time,
            reason=notice.reason,
            revoked=False,
            publisher=notice.publisher,
        )
    )
    return notice


def revoke(session: Session, node_region: str, suspension_id: str) -> Suspension:
    """Mark a notice revoked (revoking twice is harmless); NOT_FOUND for an unknown id."""
    row = session.get(SuspensionRow, suspension_id) if suspension_id else None
    if row is None:
        raise DomainError(
            "NOT_FOUND", f"no suspension notice {suspension_id!r}", metadata={"suspension_id": suspension_id}
        )
    ensure_within(node_region, _notice(row).region, "the notice")
    row.revoked = True
    return _notice(row)


def covering_notice(session: Session, institution: Institution, at: datetime) -> Suspension | None:
    """The notice that suspends the institution at ``at``; of several, the one ending last."""
    rows = store.covering_suspensions(session, institution.code, institution.admdvs, store.as_utc(at))
    notices = [_notice(row) for row in rows]
    return max(notices, key=lambda notice: notice.end_time, default=None)


@dataclass(frozen=True)
class SuspensionQuery:
    """ListSuspensions' request as plain values."""

    active_at: datetime | None
    admdvs: str
    fixmedins_code: str
    include_revoked: bool
    page_size: int
    page_token: str


def _conditions(query: SuspensionQuery) -> list[object]:
    errors: list[DomainError] = []
    conditions: list[object] = []
    if not query.include_revoked:
        conditions.append(SuspensionRow.revoked.is_(False))
    if query.active_at is not None:
        at = store.as_utc(query.active_at)
        conditions += [SuspensionRow.start_time <= at, SuspensionRow.end_time > at]
    try:
        if query.admdvs:
            prefix = region_prefix(check_region(query.admdvs))
            conditions.append(
                or_(
                    store.starts_with(SuspensionRow.admdvs, prefix),
                    or_(
                        *(
                            store.starts_with(SuspensionRow.fixmedins_code, letter + prefix)
                            for letter in ("H", "P")
                        )
                    ),
                )
            )
    except DomainError as error:
        errors.append(error)
    try:
        if query.fixmedins_code:
            code = check_institution(query.fixmedins_code)
            conditions.append(
                or_(
                    SuspensionRow.fixmedins_code == code,
                    SuspensionRow.admdvs.in_(ancestors(institution_region(code))),
                )
            )
    except DomainError as error:
        errors.append(error)
    error = combine(errors)
    if error is not None:
        raise error
    return conditions


def list_notices(session: Session, query: SuspensionQuery) -> tuple[list[Suspension], str]:
    """One page of notices, latest start first, and the next page's token."""
    size = page_size(query.page_size)
    conditions = _conditions(query)
    filters = {
        "active_at": query.active_at.isoformat() if query.active_at else "",
        "admdvs": query.admdvs,
        "fixmedins_code": query.fixmedins_code,
        "include_revoked": query.include_revoked,
    }
    after = decode_token(query.page_token, filters, 2)
    statement = select(SuspensionRow).where(*conditions)  # type: ignore[arg-type]
    if after is not None:
        start = store.as_utc(datetime.fromisoformat(after[0]))
        statement = statement.where(
            or_(
                SuspensionRow.start_time < start,
                and_(SuspensionRow.start_time == start, SuspensionRow.suspension_id < after[1]),
            )
        )
    statement = statement.order_by(SuspensionRow.start_time.desc(), SuspensionRow.suspension_id.desc())
    notices = [_notice(row) for row in session.scalars(statement.limit(size + 1))]
    if len(notices) <= size:
        return notices, ""
    last = notices[size - 1]
    return notices[:size], encode_token([last.start_time.isoformat(), last.suspension_id], filters)
