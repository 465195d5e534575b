"""Filings (异地就医备案) as values: categories, channels, states, and how a stored row reads today.

Expiry is not a job: an approved filing whose validity ended before today reads as
``expired`` wherever it is shown or checked, so no reader ever sees a stale "approved".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, or_, select
from sqlalchemy.orm import Session

from yidi_core.errors import DomainError
from yidi_runtime import identity
from yidi_runtime.identity import CallerRole
from yidi_runtime.wire import CHINA_STANDARD_TIME, as_utc
from yidi_services.filing.models import FilingRow, PersonRow


class Category(StrEnum):
    """The six national filing kinds (codes.md project names)."""

    RETIREE_RESETTLED = "retiree_resettled"
    LONG_TERM_RESIDENT = "long_term_resident"
    POSTED_EMPLOYEE = "posted_employee"
    REFERRAL = "referral"
    EMERGENCY = "emergency"
    TEMPORARY_OTHER = "temporary_other"

    @property
    def long_term(self) -> bool:
        """Long-term filers (异地长期居住人员): valid until changed, benefits at home and away (双向)."""
        return self in LONG_TERM


LONG_TERM = frozenset({Category.RETIREE_RESETTLED, Category.LONG_TERM_RESIDENT, Category.POSTED_EMPLOYEE})


class Channel(StrEnum):
    """Where an application came from."""

    NATIONAL_APP = "national_app"
    NATIONAL_MINI_PROGRAM = "national_mini_program"
    GOVERNMENT_SERVICES_APP = "government_services_app"
    WINDOW = "window"
    WEBSITE = "website"
    HOSPITAL = "hospital"

    @property
    def self_service(self) -> bool:
        """Applications the person makes alone online (自助), which regions may approve instantly."""
        return self in SELF_SERVICE


SELF_SERVICE = frozenset(
    {Channel.NATIONAL_APP, Channel.NATIONAL_MINI_PROGRAM, Channel.GOVERNMENT_SERVICES_APP, Channel.WEBSITE}
)


class State(StrEnum):
    """Life-cycle state (see FilingState in filing.proto)."""

    SUBMITTED = "submitted"
    PENDING_REVIEW = "pending_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"


OPEN_STATES = (State.PENDING_REVIEW, State.APPROVED)
"""States in which a filing stands for its person, period and region (one filing per person)."""


@dataclass(frozen=True)
class Applicant:
    """Who applied: the person, or a family member on their behalf (代办)."""

    on_behalf: bool = False
    agent_name: str = ""
    agent_certno: str = ""
    relation: str = ""
    tel: str = ""


@dataclass(frozen=True)
class Materials:
    """Materials supplied; which are needed depends on the category and the region's rules."""

    personal_commitment: bool = False
    referral_proof_id: str = ""
    residence_proof_id: str = ""
    employer_proof_id: str = ""
    to_complete_later: bool = False
    complete_by: date | None = None


@dataclass(frozen=True)
class Filing:
    """A filing as a reader sees it on a given day (``state`` already says ``expired`` when due)."""

    filing_id: str
    psn_no: str
    certno: str
    insuplc_admdvs: str
    treatment_admdvs: str
    category: Category
    channel: Channel
    applicant: Applicant
    start_date: date
    end_date: date | None
    materials: Materials
    state: State
    state_reason: str
    review_deadline: date | None
    supersedes_filing_id: str
    superseded_by_filing_id: str
    designated_institutions: tuple[str, ...]
    retroactive: bool
    submit_time: datetime
    decide_time: datetime | None
    reviewer: str
    rules_version: str

    def covers(self, day: date) -> bool:
        """Whether ``day`` lies within the validity."""
        return self.start_date <= day and (self.end_date is None or day <= self.end_date)


def new_filing_id(insured_region: str, now: datetime) -> str:
    """30 characters: the insured region, the submission time in China, 10 random characters."""
    return (
        f"{insured_region}{now.astimezone(CHINA_STANDARD_TIME):%Y%m%d%H%M%S}{uuid.uuid4().hex[:10].upper()}"
    )


def reads_as(row: FilingRow | Row[Any], today: date) -> State:
    """The state a stored filing has today: approved past its end date reads as expired."""
    state = State(row.state)
    if state is State.APPROVED and row.end_date is not None and row.end_date < today:
        return State.EXPIRED
    return state


def in_states(states: tuple[State, ...], today: date) -> ColumnElement[bool]:
    """SQL condition for filings that read as one of ``states`` today."""
    expired = and_(FilingRow.state == State.APPROVED.value, FilingRow.end_date < today)
    conditions: list[ColumnElement[bool]] = []
    stored = [state.value for state in states if state not in (State.APPROVED, State.EXPIRED)]
    if stored:
        conditions.append(FilingRow.state.in_(stored))
    if State.APPROVED in states:
        conditions.append(
            and_(
                FilingRow.state == State.APPROVED.value,
                or_(FilingRow.end_date.is_(None), FilingRow.end_date >= today),
            )
        )
    if State.EXPIRED in states:
        conditions.append(expired)
    return or_(*conditions)


def from_row(row: FilingRow | Row[Any], certno: str, today: date) -> Filing:
    """A stored filing (a mapped row, or a row of its table's columns) as read on ``today``."""
    materials = dict(row.materials)
    complete_by = materials.pop("complete_by", None)
    return Filing(
        filing_id=row.filing_id,
        psn_no=row.psn_no,
        certno=certno,
        insuplc_admdvs=row.insuplc_admdvs,
        treatment_admdvs=row.treatment_admdvs,
        category=Category(row.category),
        channel=Channel(row.channel),
        applicant=Applicant(**row.applicant),
        start_date=row.start_date,
        end_date=row.end_date,
        materials=Materials(
            **materials, complete_by=date.fromisoformat(complete_by) if complete_by else None
        ),
        state=reads_as(row, today),
        state_reason=row.state_reason,
        review_deadline=row.review_deadline,
        supersedes_filing_id=row.supersedes_filing_id,
        superseded_by_filing_id=row.superseded_by_filing_id,
        designated_institutions=tuple(row.designated_institutions),
        retroactive=row.retroactive,
        submit_time=as_utc(row.submit_time),
        decide_time=as_utc(row.decide_time) if row.decide_time else None,
        reviewer=row.reviewer,
        rules_version=row.rules_version,
    )


def materials_document(materials: Materials) -> dict[str, Any]:
    """Materials as stored."""
    return {
        "personal_commitment": materials.personal_commitment,
        "referral_proof_id": materials.referral_proof_id,
        "residence_proof_id": materials.residence_proof_id,
        "employer_proof_id": materials.employer_proof_id,
        "to_complete_later": materials.to_complete_later,
        "complete_by": materials.complete_by.isoformat() if materials.complete_by else None,
    }


def applicant_document(applicant: Applicant) -> dict[str, Any]:
    """An applicant as stored."""
    return {
        "on_behalf": applicant.on_behalf,
        "agent_name": applicant.agent_name,
        "agent_certno": applicant.agent_certno,
        "relation": applicant.relation,
        "tel": applicant.tel,
    }


def entering_institution() -> str | None:
    """The subject of the institution calling (its filings are the ones it entered), None for anyone else."""
    principal = identity.current.get()
    return principal.subject if principal is not None and principal.role is CallerRole.INSTITUTION else None


def load_row(session: Session, filing_id: str, *, lock: bool = False) -> FilingRow:
    """A stored filing by id, or NOT_FOUND; an institution finds only the filings it entered."""
    query = select(FilingRow).where(FilingRow.filing_id == filing_id.strip())
    institution = entering_institution()
    if institution is not None:
        query = query.where(FilingRow.entered_by == institution)
    row = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if row is None:
        raise DomainError(
            "NOT_FOUND", f"no filing {filing_id.strip()[:30]}", metadata={"filing_id": filing_id[:30]}
        )
    return row


def read(session: Session, rows: list[FilingRow], today: date) -> list[Filing]:
    """Stored filings as read on ``today``, each with its person's ID number (for the masked view)."""
    wanted = {row.psn_no for row in rows}
    found = session.execute(select(PersonRow.psn_no, PersonRow.certno).where(PersonRow.psn_no.in_(wanted)))
    certnos = {psn_no: number for psn_no, number in found}
    return [from_row(row, certnos[row.psn_no], today) for row in rows]
