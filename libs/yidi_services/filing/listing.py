"""Reading filings: one by id, or pages of a filtered list, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from yidi_core.codes import check_region
from yidi_core.errors import invalid
from yidi_runtime.paging import decode_token, encode_token, page_size
from yidi_runtime.regions import below
from yidi_services.filing import persons
from yidi_services.filing.filings import (
    Category,
    Channel,
    Filing,
    State,
    entering_institution,
    in_states,
    load_row,
    read,
)
from yidi_services.filing.models import FilingRow
from yidi_services.filing.persons import PersonRef

E = TypeVar("E", State, Category, Channel)


def get_filing(session: Session, filing_id: str, today: date) -> Filing:
    """One filing, NOT_FOUND when unknown."""
    if not filing_id.strip():
        raise invalid("INVALID_ARGUMENT", "filing_id", "is required")
    return read(session, [load_row(session, filing_id)], today)[0]


@dataclass(frozen=True)
class FilingQuery:
    """ListFilings' filters as plain values (enum names, '' when unspecified)."""

    insuplc_admdvs: str
    person: PersonRef | None
    treatment_admdvs: str
    states: tuple[str, ...]
    category: str
    channel: str
    page_size: int
    page_token: str


def _enum_value(kind: type[E], name: str, field: str) -> E:
    try:
        return kind(name)
    except ValueError:
        raise invalid("INVALID_ARGUMENT", field, f"{name!r} is not a known value") from None


def list_filings(session: Session, query: FilingQuery, today: date) -> tuple[list[Filing], str]:
    """A page of filings matching every filter given, newest first."""
    limit = page_size(query.page_size)
    statement = select(FilingRow).order_by(FilingRow.filing_id.desc()).limit(limit + 1)
    key: dict[str, object] = {}
    institution = entering_institution()
    if institution is not None:  # an institution lists only the filings it entered
        statement = statement.where(FilingRow.entered_by == institution)
        key["entered_by"] = institution
    if query.insuplc_admdvs:
        region = check_region(query.insuplc_admdvs, "insuplc_admdvs")
        statement = statement.where(below(FilingRow.insuplc_admdvs, region))
        key["insuplc_admdvs"] = region
    if query.treatment_admdvs:
        region = check_region(query.treatment_admdvs, "treatment_admdvs")
        statement = statement.where(below(FilingRow.treatment_admdvs, region))
        key["treatment_admdvs"] = region
    if query.person is not None:
        ref = persons.checked(query.person)
        person = persons.find(session, ref)
        if person is None:
            return [], ""
        statement = statement.where(FilingRow.psn_no == person.psn_no)
        key["psn_no"] = person.psn_no
    if query.states:
        states = tuple(_enum_value(State, name, f"states[{i}]") for i, name in enumerate(query.states))
        statement = statement.where(in_states(states, today))
        key["states"] = sorted(state.value for state in states)
    if query.category:
        statement = statement.where(
            FilingRow.category == _enum_value(Category, query.category, "category").value
        )
        key["category"] = query.category
    if query.channel:
        statement = statement.where(FilingRow.channel == _enum_value(Channel, query.channel, "channel").value)
        key["channel"] = query.channel
    after = decode_token(query.page_token, key, 1)
    if after is not None:
        statement = statement.where(FilingRow.filing_id < after[0])
    rows = list(session.scalars(statement))
    page = rows[:limit]
    token = encode_token([page[-1].filing_id], key) if len(rows) > limit else ""
    return read(session, page, today), token
