"""Insured persons (参保人员): enrolment, lookup, contribution gaps and credential activation.

These are the facts settlement reads at the insured place. A person is matched on the ID
number; every message names a bad ID number masked, never in full.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from yidi_core.codes import check_id_number, check_region, mask_id_number
from yidi_core.dictionaries import NATIONAL, psn_type_group
from yidi_core.errors import DomainError, combine, invalid
from yidi_core.money import MAX_AMOUNT_FEN
from yidi_runtime.paging import decode_token, encode_token, page_size
from yidi_runtime.regions import below, ensure_within
from yidi_runtime.wire import as_utc
from yidi_services.filing.models import ContributionGapRow, PersonRow

MAX_BATCH = 10_000
_NAME_MAX = 50
_PSN_NO_MAX = 30
_EMPLOYER_MAX = 200
_CHUNK = 1000


@dataclass(frozen=True)
class Gap:
    """A period without contributions (中断缴费), inclusive; ``end`` None while still open."""

    start: date
    end: date | None = None

    def covers(self, day: date) -> bool:
        """Whether ``day`` falls inside the gap."""
        return self.start <= day and (self.end is None or day <= self.end)


@dataclass(frozen=True)
class Person:
    """An enrolled insured person as stored."""

    psn_no: str
    certno: str
    psn_name: str
    insuplc_admdvs: str
    insutype: str
    psn_type: str
    insured_since: date | None
    gaps: tuple[Gap, ...]
    credential_activated: bool
    has_personal_account: bool
    emp_name: str
    create_time: datetime
    update_time: datetime
    low_income: bool = False
    civil_servant: bool = False
    assistance_category: str = ""
    family_account_balance_fen: int = 0

    def interrupted_on(self, day: date) -> bool:
        """Whether contributions are interrupted on ``day`` (benefits suspended)."""
        return any(gap.covers(day) for gap in self.gaps)


@dataclass(frozen=True)
class PersonDraft:
    """A person as an import gives it (unchecked)."""

    psn_no: str
    certno: str
    psn_name: str
    insuplc_admdvs: str
    insutype: str
    psn_type: str
    insured_since: date | None
    gaps: tuple[Gap, ...]
    credential_activated: bool
    has_personal_account: bool
    emp_name: str
    low_income: bool = False
    civil_servant: bool = False
    assistance_category: str = ""
    family_account_balance_fen: int = 0


@dataclass(frozen=True)
class PersonRef:
    """How a request names a person: an ID number (directly or on a credential) or a person number.

    ``field`` is the request's field path of the lookup, so violations name it exactly.
    """

    field: str
    certno: str = ""
    psn_no: str = ""
    credential_type: str | None = None


def checked(ref: PersonRef) -> PersonRef:
    """The reference with its ID number validated (the card or e-voucher number is the ID number here)."""
    if ref.credential_type is not None:
        NATIONAL.check("mdtrt_cert_type", ref.credential_type, f"{ref.field}.credential.mdtrt_cert_type")
        certno = check_id_number(ref.certno, f"{ref.field}.credential.mdtrt_cert_no")
        return PersonRef(ref.field, certno=certno)
    if ref.certno:
        return PersonRef(ref.field, certno=check_id_number(ref.certno, f"{ref.field}.certno"))
    if ref.psn_no:
        if len(ref.psn_no) > _PSN_NO_MAX:
            raise invalid(
                "INVALID_ARGUMENT", f"{ref.field}.psn_no", f"must be at most {_PSN_NO_MAX} characters"
            )
        return PersonRef(ref.field, psn_no=ref.psn_no.strip())
    raise invalid("INVALID_ARGUMENT", ref.field, "must give a credential, an ID number or a person number")


def described(ref: PersonRef) -> str:
    """The reference for a message: the person number, or the ID number masked."""
    return f"person {ref.psn_no}" if ref.psn_no else f"ID number {mask_id_number(ref.certno)}"


_PERSONS = PersonRow.__table__
_GAPS = ContributionGapRow.__table__
# Built once: eligibility asks for a person and their gaps on every settlement.
_BY_CERTNO = select(_PERSONS).where(_PERSONS.c.certno == bindparam("key"))
_BY_PSN_NO = select(_PERSONS).where(_PERSONS.c.psn_no == bindparam("key"))
_FINDS = {
    (by_certno, lock): query.with_for_update() if lock else query
    for by_certno, query in ((True, _BY_CERTNO), (False, _BY_PSN_NO))
    for lock in (False, True)
}
"""(by ID number, locked) → the statement finding a person."""
_GAPS_OF = (
    select(_GAPS.c.psn_no, _GAPS.c.start_date, _GAPS.c.end_date)
    .where(_GAPS.c.psn_no.in_(bindparam("psn_nos", expanding=True)))
    .order_by(_GAPS.c.start_date)
)
_GAPS_OF_ONE = (
    select(_GAPS.c.start_date, _GAPS.c.end_date)
    .where(_GAPS.c.psn_no == bindparam("psn_no"))
    .order_by(_GAPS.c.start_date)
)
"""One person's gaps: a fixed statement, which an expanding ``IN`` is not (it is rendered anew each time)."""


def _gaps_of(session: Session, psn_nos: Sequence[str]) -> dict[str, list[Gap]]:
    gaps: dict[str, list[Gap]] = defaultdict(list)
    for start in range(0, len(psn_nos), _CHUNK):
        for row in session.execute(_GAPS_OF, {"psn_nos": list(psn_nos[start : start + _CHUNK])}):
            gaps[row.psn_no].append(Gap(row.start_date, row.end_date))
    return gaps


def _person(row: PersonRow | Row[Any], gaps: Sequence[Gap]) -> Person:
    return Person(
        psn_no=row.psn_no,
        certno=row.certno,
        psn_name=row.psn_name,
        insuplc_admdvs=row.insuplc_admdvs,
        insutype=row.insutype,
        psn_type=row.psn_type,
        insured_since=row.insured_since,
        gaps=tuple(gaps),
        credential_activated=row.credential_activated,
        has_personal_account=row.has_personal_account,
        emp_name=row.emp_name,
        create_time=as_utc(row.create_time),
        update_time=as_utc(row.update_time),
        low_income=row.low_income,
        civil_servant=row.civil_servant,
        assistance_category=row.assistance_category,
        family_account_balance_fen=row.family_account_balance_fen,
    )


def find(session: Session, ref: PersonRef, *, lock: bool = False) -> Person | None:
    """The person a checked reference names, or None; ``lock`` serialises applications for them."""
    row = session.execute(_FINDS[bool(ref.certno), lock], {"key": ref.certno or ref.psn_no}).one_or_none()
    if row is None:
        return None
    gaps = [Gap(start, end) for start, end in session.execute(_GAPS_OF_ONE, {"psn_no": row.psn_no})]
    return _person(row, gaps)


def not_found(ref: PersonRef, region: str = "") -> DomainError:
    """PERSON_NOT_FOUND naming the reference safely."""
    where = f" insured in {region}" if region else ""
    return DomainError(
        "PERSON_NOT_FOUND",
        f"no insured person{where} with {described(ref)}",
        metadata={"insuplc_admdvs": region} if region else {},
    )


def get(session: Session, ref: PersonRef, *, lock: bool = False) -> Person:
    """The person a reference names, or PERSON_NOT_FOUND."""
    ref = checked(ref)
    person = find(session, ref, lock=lock)
    if person is None:
        raise not_found(ref)
    return person


_CATEGORY_MAX = 20
"""The stored length of a medical-assistance category (e.g. ``dibao``)."""


def _draft_errors(index: int, draft: PersonDraft) -> list[DomainError]:
    field = f"persons[{index}]"
    errors: list[DomainError] = []
    checks = (
        lambda: check_id_number(draft.certno, f"{field}.certno"),
        lambda: check_region(draft.insuplc_admdvs, f"{field}.insuplc_admdvs"),
        lambda: NATIONAL.check("insutype", draft.insutype, f"{field}.insutype"),
    )
    for check in checks:
        try:
            check()
        except DomainError as error:
            errors.append(error)
    entry = NATIONAL.lookup("insutype", draft.insutype.strip())
    if entry is not None and entry.attributes.get("person") != "true":
        errors.append(
            invalid("INVALID_CODE", f"{field}.insutype", f"{draft.insutype} is a fund line, not insurance")
        )
    if len(draft.psn_type.strip()) != 4 or psn_type_group(draft.psn_type.strip()) is None:
        errors.append(
            invalid(
                "INVALID_CODE",
                f"{field}.psn_type",
                f"must be a 4-digit person type 11xx-15xx, got {draft.psn_type[:10]!r}",
            )
        )
    if not draft.psn_name.strip() or len(draft.psn_name) > _NAME_MAX:
        errors.append(
            invalid("INVALID_ARGUMENT", f"{field}.psn_name", f"is required, at most {_NAME_MAX} characters")
        )
    if len(draft.psn_no) > _PSN_NO_MAX:
        errors.append(
            invalid("INVALID_ARGUMENT", f"{field}.psn_no", f"must be at most {_PSN_NO_MAX} characters")
        )
    if len(draft.assistance_category.strip()) > _CATEGORY_MAX:
        errors.append(
            invalid(
                "INVALID_ARGUMENT",
                f"{field}.assistance_category",
                f"must be at most {_CATEGORY_MAX} characters",
            )
        )
    if not 0 <= draft.family_account_balance_fen <= MAX_AMOUNT_FEN:
        errors.append(
            invalid(
                "INVALID_ARGUMENT",
                f"{field}.family_account_balance_fen",
                f"must be 0 to {MAX_AMOUNT_FEN} fen",
            )
        )
    if len(draft.emp_name) > _EMPLOYER_MAX:
        errors.append(
            invalid("INVALID_ARGUMENT", f"{field}.emp_name", f"must be at most {_EMPLOYER_MAX} characters")
        )
    for number, gap in enumerate(draft.gaps):
        if gap.end is not None and gap.end < gap.start:
            errors.append(
                invalid(
                    "INVALID_ARGUMENT",
                    f"{field}.contribution_gaps[{number}].end_date",
                    "must not be before start_date",
                )
            )
    starts: set[date] = set()
    for number, gap in enumerate(draft.gaps):
        if gap.start in starts:  # a person's gaps are kept by their first day
            errors.append(
                invalid(
                    "INVALID_ARGUMENT",
                    f"{field}.contribution_gaps[{number}].start_date",
                    "another gap of this person starts on the same day",
                )
            )
        starts.add(gap.start)
    open_gaps = [gap for gap in draft.gaps if gap.end is None]
    if len(open_gaps) > 1:
        errors.append(
            invalid("INVALID_ARGUMENT", f"{field}.contribution_gaps", "at most one gap may be open")
        )
    return errors


@dataclass(frozen=True)
class ImportResult:
    """ImportInsuredPersons' answer: counts and person numbers in request order."""

    created_count: int
    updated_count: int
    psn_nos: tuple[str, ...]


def _values(draft: PersonDraft, psn_no: str, created: datetime, now: datetime) -> dict[str, object]:
    insurance = NATIONAL.lookup("insutype", draft.insutype.strip())
    return {
        "psn_no": psn_no,
        "certno": check_id_number(draft.certno),
        "psn_name": draft.psn_name.strip(),
        "insuplc_admdvs": draft.insuplc_admdvs.strip(),
        "insutype": draft.insutype.strip(),
        "psn_type": draft.psn_type.strip(),
        "insured_since": draft.insured_since,
        "credential_activated": draft.credential_activated,
        "has_personal_account": draft.has_personal_account
        or (insurance is not None and insurance.attributes.get("account") == "true"),
        "emp_name": draft.emp_name.strip(),
        "low_income": draft.low_income,
        "civil_servant": draft.civil_servant,
        "assistance_category": draft.assistance_category.strip(),
        "family_account_balance_fen": draft.family_account_balance_fen,
        "create_time": created,
        "update_time": now,
    }


def import_persons(
    session: Session, node_region: str, drafts: Sequence[PersonDraft], now: datetime
) -> ImportResult:
    """Enrol or update a batch, matched on ID number: all rows or none, every bad field reported."""
    if not drafts:
        raise invalid("INVALID_ARGUMENT", "persons", "must list at least one person")
    if len(drafts) > MAX_BATCH:
        raise invalid("INVALID_ARGUMENT", "persons", f"must list at most {MAX_BATCH} persons per batch")
    errors = [error for index, draft in enumerate(drafts) for error in _draft_errors(index, draft)]
    seen: dict[str, int] = {}
    for index, draft in enumerate(drafts):
        certno = draft.certno.strip().upper()
        if certno in seen:
            errors.append(
                invalid("INVALID_ARGUMENT", f"persons[{index}].certno", f"repeats persons[{seen[certno]}]")
            )
        seen.setdefault(certno, index)
    error = combine(errors)
    if error is not None:
        raise error
    for index, draft in enumerate(drafts):
        ensure_within(node_region, draft.insuplc_admdvs.strip(), f"persons[{index}]")
    certnos = [check_id_number(draft.certno) for draft in drafts]
    existing: dict[str, PersonRow] = {}
    for start in range(0, len(certnos), _CHUNK):
        for row in session.scalars(
            select(PersonRow).where(PersonRow.certno.in_(certnos[start : start + _CHUNK]))
        ):
            existing[row.certno] = row
    created, updated, psn_nos = [], [], []
    for index, (draft, certno) in enumerate(zip(drafts, certnos, strict=True)):
        row = existing.get(certno)
        if row is not None and draft.psn_no and draft.psn_no.strip() != row.psn_no:
            raise invalid(
                "INVALID_ARGUMENT",
                f"persons[{index}].psn_no",
                f"the person with this ID number is already enrolled as {row.psn_no}",
            )
        if row is None:
            psn_no = draft.psn_no.strip() or draft.insuplc_admdvs.strip() + uuid.uuid4().hex[:24].upper()
            created.append(_values(draft, psn_no, now, now))
        else:
            psn_no = row.psn_no
            updated.append(_values(draft, psn_no, as_utc(row.create_time), now))
        psn_nos.append(psn_no)
    if created:
        session.execute(insert(PersonRow), created)
    if updated:
        session.execute(update(PersonRow), updated)
        for start in range(0, len(updated), _CHUNK):
            chunk = [values["psn_no"] for values in updated[start : start + _CHUNK]]
            session.execute(delete(ContributionGapRow).where(ContributionGapRow.psn_no.in_(chunk)))
    gaps = [
        {"psn_no": psn_no, "start_date": gap.start, "end_date": gap.end}
        for draft, psn_no in zip(drafts, psn_nos, strict=True)
        for gap in draft.gaps
    ]
    if gaps:
        session.execute(insert(ContributionGapRow), gaps)
    session.flush()
    return ImportResult(len(created), len(updated), tuple(psn_nos))


@dataclass(frozen=True)
class StatusChange:
    """UpdateInsuredStatus as plain values: open a gap, close the open one, activate the credential."""

    ref: PersonRef
    interrupted_from: date | None
    resumed_on: date | None
    activate_credential: bool


def update_status(session: Session, node_region: str, change: StatusChange, now: datetime) -> Person:
    """Record a contribution interruption (中断缴费), its end, or a credential activation."""
    if change.interrupted_from is None and change.resumed_on is None and not change.activate_credential:
        raise invalid(
            "INVALID_ARGUMENT", "interrupted_from", "give interrupted_from, resumed_on or activate_credential"
        )
    person = get(session, change.ref, lock=True)
    ensure_within(node_region, person.insuplc_admdvs, "the person")
    open_gap = next((gap for gap in person.gaps if gap.end is None), None)
    if change.interrupted_from is not None:
        if open_gap is not None:
            raise invalid(
                "INVALID_ARGUMENT",
                "interrupted_from",
                f"contributions are already interrupted since {open_gap.start}",
            )
        overlapped = next(
            (gap for gap in person.gaps if gap.end and gap.end >= change.interrupted_from), None
        )
        if overlapped is not None:  # a gap still open from that day would overlap one recorded
            raise invalid(
                "INVALID_ARGUMENT",
                "interrupted_from",
                f"must be after the recorded gap {overlapped.start} to {overlapped.end}",
            )
        session.add(
            ContributionGapRow(psn_no=person.psn_no, start_date=change.interrupted_from, end_date=None)
        )
        open_gap = Gap(change.interrupted_from)
    if change.resumed_on is not None:
        if open_gap is None:
            raise invalid("INVALID_ARGUMENT", "resumed_on", "there is no open contribution gap to close")
        if change.resumed_on < open_gap.start:
            raise invalid(
                "INVALID_ARGUMENT", "resumed_on", f"must not be before the gap's start {open_gap.start}"
            )
        session.flush()
        session.execute(
            update(ContributionGapRow)
            .where(
                ContributionGapRow.psn_no == person.psn_no, ContributionGapRow.start_date == open_gap.start
            )
            .values(end_date=change.resumed_on)
        )
    values: dict[str, object] = {"update_time": now}
    if change.activate_credential:
        values["credential_activated"] = True
    session.execute(update(PersonRow).where(PersonRow.psn_no == person.psn_no).values(**values))
    session.flush()
    session.expire_all()
    return get(session, PersonRef(change.ref.field, psn_no=person.psn_no))


@dataclass(frozen=True)
class PersonQuery:
    """ListInsuredPersons' filters and page."""

    insuplc_admdvs: str
    insutype: str
    page_size: int
    page_token: str


def list_persons(session: Session, query: PersonQuery) -> tuple[list[Person], str]:
    """One page of the persons insured in a region (and below it), by person number."""
    region = check_region(query.insuplc_admdvs, "insuplc_admdvs")
    if query.insutype:
        NATIONAL.check("insutype", query.insutype, "insutype")
    limit = page_size(query.page_size)
    key = {"insuplc_admdvs": region, "insutype": query.insutype.strip()}
    after = decode_token(query.page_token, key, 1)
    statement = select(PersonRow).where(below(PersonRow.insuplc_admdvs, region)).order_by(PersonRow.psn_no)
    if query.insutype:
        statement = statement.where(PersonRow.insutype == query.insutype.strip())
    if after is not None:
        statement = statement.where(PersonRow.psn_no > after[0])
    rows = list(session.scalars(statement.limit(limit + 1)))
    page = rows[:limit]
    gaps = _gaps_of(session, [row.psn_no for row in page])
    token = encode_token([page[-1].psn_no], key) if len(rows) > limit else ""
    return [_person(row, gaps[row.psn_no]) for row in page], token
