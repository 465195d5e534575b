"""Alerts the clearing service raises: advance usage, overdue confirmations and transfers, ledger imbalance.

An alert is about a *subject* (a province's advance for a year, a statement, the ledger).
Evaluators say which alerts should be active now for the subjects they looked at
(:class:`Wanted`); :func:`reconcile` raises what is new — one log line each — and resolves
what no longer holds, so a condition that persists raises once, and a level that rises
(yellow → red) resolves the old alert and raises a new one. While active, an alert's
``active_key`` (kind and subject) is unique, so two evaluators racing raise it once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from yidi_runtime.logs import get_logger
from yidi_runtime.paging import bad_token, decode_token, encode_token
from yidi_runtime.wire import as_utc
from yidi_services.clearing.models import AlertRecord


class AlertKind(StrEnum):
    """What an alert is about."""

    ADVANCE_USAGE = "advance_usage"
    CONFIRMATION_OVERDUE = "confirmation_overdue"
    TRANSFER_OVERDUE = "transfer_overdue"
    LEDGER_IMBALANCE = "ledger_imbalance"


class AlertLevel(StrEnum):
    """How urgent: NONE is "below the yellow line" (no alert)."""

    NONE = "none"
    YELLOW = "yellow"
    RED = "red"


@dataclass(frozen=True, slots=True)
class Wanted:
    """An alert that should be active now."""

    kind: AlertKind
    subject: str
    level: AlertLevel
    admdvs: str
    message: str

    @property
    def key(self) -> str:
        """Kind and subject: one active alert per key."""
        return active_key(self.kind, self.subject)


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert as listed."""

    alert_id: str
    kind: AlertKind
    level: AlertLevel
    admdvs: str
    message: str
    raise_time: datetime
    active: bool


def active_key(kind: AlertKind, subject: str) -> str:
    """The unique key of the active alert of a kind about a subject."""
    return f"{kind.value}:{subject}"


def reconcile(
    session: Session, kind: AlertKind, subjects: Iterable[str] | None, wanted: Iterable[Wanted], now: datetime
) -> list[Wanted]:
    """Make the active alerts of ``kind`` about ``subjects`` (None: every subject) exactly ``wanted``.

    Returns the alerts newly raised, for the caller to log (:func:`log_raised`) once committed.
    """
    desired = {alert.key: alert for alert in wanted if alert.level is not AlertLevel.NONE}
    statement = select(AlertRecord).where(AlertRecord.active.is_(True), AlertRecord.kind == kind.value)
    if subjects is not None:
        keys = sorted({active_key(kind, subject) for subject in subjects} | set(desired))
        if not keys:
            return []
        statement = statement.where(AlertRecord.active_key.in_(keys))
    active = {record.active_key: record for record in session.scalars(statement)}
    moment = as_utc(now)
    stale = [
        record.seq
        for key, record in active.items()
        if key not in desired or record.level != desired[key].level.value
    ]
    if stale:
        session.execute(
            update(AlertRecord)
            .where(AlertRecord.seq.in_(stale))
            .values(active=False, active_key=None, resolve_time=moment)
        )
        session.flush()
    raised = [
        alert for key, alert in desired.items() if key not in active or active[key].level != alert.level.value
    ]
    for alert in raised:
        session.add(
            AlertRecord(
                kind=alert.kind.value,
                level=alert.level.value,
                admdvs=alert.admdvs,
                subject=alert.subject,
                message=alert.message,
                raise_time=moment,
                active=True,
                resolve_time=None,
                active_key=alert.key,
            )
        )
    session.flush()
    return raised


def log_raised(raised: Iterable[Wanted]) -> None:
    """One warning line per alert raised (after its transaction committed)."""
    for alert in raised:
        get_logger(service="clearing").warning(
            "clearing alert raised",
            alert_kind=alert.kind.value,
            level=alert.level.value,
            admdvs=alert.admdvs,
            subject=alert.subject,
            detail=alert.message,
        )


def alert_id(seq: int) -> str:
    """The public id of an alert."""
    return f"AL{seq:010d}"


def list_alerts(
    session: Session, admdvs: str, active_only: bool, size: int, token: str
) -> tuple[list[Alert], str]:
    """One page of alerts, newest first."""
    key = f"alerts:{admdvs}:{active_only}"
    after = decode_token(token, key, 1)
    statement = select(AlertRecord).order_by(AlertRecord.seq.desc()).limit(size + 1)
    if after is not None:
        if not after[0].isdigit():
            raise bad_token()
        statement = statement.where(AlertRecord.seq < int(after[0]))
    if admdvs:
        statement = statement.where(AlertRecord.admdvs == admdvs)
    if active_only:
        statement = statement.where(AlertRecord.active.is_(True))
    records = session.scalars(statement).all()
    page = records[:size]
    alerts = [
        Alert(
            alert_id(record.seq),
            AlertKind(record.kind),
            AlertLevel(record.level),
            record.admdvs,
            record.message,
            as_utc(record.raise_time),
            record.active,
        )
        for record in page
    ]
    return alerts, encode_token([str(page[-1].seq)], key) if len(records) > size else ""
