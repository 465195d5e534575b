"""Suspension notices (停机公告): publish, revoke, receive from a neighbour, list, and the notice covering an institution now.

A notice keeps its ``suspension_id`` and the region of the node that published it
(``origin_admdvs``) at every node it reaches (:mod:`yidi_services.registry.propagation`):
only that node, or an operator of a region containing it, may revoke it, and a revocation
travels the same way. A node applies a received notice at most once per state: a
publication stores it, a revocation marks it revoked, and nothing un-revokes it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from yidi_core.codes import check_institution, check_region, institution_region
from yidi_core.errors import DomainError, combine, invalid
from yidi_runtime.config import region_contains
from yidi_runtime.paging import decode_token, encode_token, page_size
from yidi_runtime.regions import ancestors, ensure_within, region_prefix
from yidi_services.registry import store
from yidi_services.registry.institutions import Institution
from yidi_services.registry.models import SuspensionRow

_SUSPENSION_ID = re.compile(r"[0-9a-f]{1,32}")
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
    origin_admdvs: str = ""

    @property
    def region(self) -> str:
        """The region the notice lies in (for permissions)."""
        return self.admdvs or self.fixmedins_code[1:7]

    @property
    def owner(self) -> str:
        """The region whose node (or operators above it) may revoke the notice: where it was published.

        A notice from before propagation names no origin; its region stands in, as it did then.
        """
        return self.origin_admdvs or self.region


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
        origin_admdvs=row.origin_admdvs or "",
    )


def _row(notice: Suspension) -> SuspensionRow:
    return SuspensionRow(
        suspension_id=notice.suspension_id,
        fixmedins_code=notice.fixmedins_code or None,
        admdvs=notice.admdvs or None,
        start_time=notice.start_time,
        end_time=notice.end_time,
        reason=notice.reason,
        revoked=notice.revoked,
        publisher=notice.publisher,
        origin_admdvs=notice.origin_admdvs or None,
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
    """Store a notice for an institution or a region in this node's region, published here."""
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
        origin_admdvs=node_region,
    )
    ensure_within(node_region, notice.region, "the notice")
    session.add(_row(notice))
    return notice


def _held(session: Session, suspension_id: str) -> SuspensionRow:
    row = session.get(SuspensionRow, suspension_id) if suspension_id else None
    if row is None:
        raise DomainError(
            "NOT_FOUND", f"no suspension notice {suspension_id!r}", metadata={"suspension_id": suspension_id}
        )
    return row


def revoke(session: Session, node_region: str, suspension_id: str) -> tuple[Suspension, bool]:
    """Mark a notice revoked, and whether it was not already (revoking twice is harmless).

    NOT_FOUND for an unknown id; PERMISSION_DENIED_REGION unless the notice was published at
    this node or below it (a notice the national node published is the national node's to revoke).
    """
    row = _held(session, suspension_id)
    notice = _notice(row)
    ensure_within(node_region, notice.owner, f"the notice (published by node {notice.owner})")
    changed = not row.revoked
    row.revoked = True
    return _notice(row), changed


def receive(
    session: Session, node_region: str, parent_region: str | None, source: str, notice: Suspension
) -> bool:
    """Apply a notice a neighbouring node sent; whether anything changed here.

    The sender must be this node's parent, or a child passing on a notice published in its
    own subtree (a child does not speak for other regions); the notice must concern this
    node (its region lies within this node's, or above it). The interceptor has already
    checked that the caller is the node ``source`` names, or one above it.
    """
    from_parent = source == parent_region
    if not from_parent and not (
        region_contains(node_region, source) and region_contains(source, notice.owner)
    ):
        raise DomainError(
            "PERMISSION_DENIED_REGION",
            f"node {source} may not pass on a notice published by node {notice.owner} to node {node_region}",
            metadata={"source_admdvs": source, "origin_admdvs": notice.owner, "node_region": node_region},
        )
    if not (region_contains(node_region, notice.region) or region_contains(notice.region, node_region)):
        raise DomainError(
            "PERMISSION_DENIED_REGION",
            f"the notice for region {notice.region} does not concern node {node_region}",
            metadata={"admdvs": notice.region, "node_region": node_region},
        )
    row = session.get(SuspensionRow, notice.suspension_id)
    if row is None:
        session.add(_row(notice))
        return True
    if notice.revoked and not row.revoked:
        row.revoked = True
        return True
    return False


def received_notice(
    suspension_id: str, origin_admdvs: str, revoked: bool, draft: SuspensionDraft
) -> Suspension:
    """A notice from a neighbour, checked like a published one (scope, window, reason) and for its id and origin."""
    errors: list[DomainError] = []
    if not _SUSPENSION_ID.fullmatch(suspension_id):
        errors.append(
            invalid("INVALID_ARGUMENT", "suspension.suspension_id", "must be 1-32 lower-case hex digits")
        )
    for check in (
        lambda: check_region(origin_admdvs, "suspension.origin_admdvs"),
        lambda: _validated(draft),
    ):
        try:
            check()
        except DomainError as error:
            errors.append(error)
    error = combine(errors)
    if error is not None:
        raise error
    assert draft.start_time is not None and draft.end_time is not None
    return Suspension(
        suspension_id=suspension_id,
        fixmedins_code=draft.fixmedins_code.strip(),
        admdvs=draft.admdvs.strip(),
        start_time=store.as_utc(draft.start_time),
        end_time=store.as_utc(draft.end_time),
        reason=draft.reason.strip(),
        revoked=revoked,
        publisher=draft.publisher.strip(),
        origin_admdvs=origin_admdvs,
    )


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
