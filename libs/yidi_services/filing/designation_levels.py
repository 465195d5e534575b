"""Outpatient designation levels: a region may allow only institutions of some levels (1, 2, 3).

Levels belong to the institution registry, another service, so they are asked for before
the filing's write transaction opens (never hold a write lock across a network call) and
the answers are then checked inside it against the rules the transaction reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from sqlalchemy.orm import Session

from yidi_core.codes import check_institution
from yidi_core.errors import DomainError, invalid
from yidi_runtime.db import Database
from yidi_services.filing import persons, rules
from yidi_services.filing.models import FilingRow
from yidi_services.filing.persons import PersonRef
from yidi_services.filing.rules import FilingRules


@dataclass(frozen=True)
class RegistryAnswers:
    """What the registry said: each asked institution's level (None: not registered).

    ``failure`` is why the registry could not be asked (NODE_UNREACHABLE); it refuses only
    an application that needs a level.
    """

    levels: Mapping[str, str | None] = field(default_factory=dict)
    failure: DomainError | None = None


class LevelSource(Protocol):
    """Where levels come from: the registry client, or a fake."""

    def levels(self, codes: Sequence[str]) -> RegistryAnswers:
        """Each institution's level."""
        ...


def _well_formed(codes: Sequence[str]) -> list[str]:
    found = []
    for code in codes:
        try:
            found.append(check_institution(code.strip()))
        except DomainError:
            continue  # refused with INVALID_CODE inside the transaction
    return found


def ask_before_writing(
    database: Database,
    source: LevelSource,
    codes: Sequence[str],
    allowed_levels: Callable[[Session], tuple[str, ...]],
) -> RegistryAnswers:
    """The registry's answers for ``codes`` when the rules restrict levels, else nothing asked."""
    if not codes:
        return RegistryAnswers()
    with database.unit_of_work() as uow:
        allowed = allowed_levels(uow.session)
    asked = _well_formed(codes)
    return source.levels(asked) if allowed and asked else RegistryAnswers()


def allowed_for_person(session: Session, ref: PersonRef, today: date) -> tuple[str, ...]:
    """The levels the person's insured region allows (() for an unknown person: refused later)."""
    try:
        person = persons.find(session, persons.checked(ref))
    except DomainError:
        return ()
    if person is None:
        return ()
    return rules.in_force(session, person.insuplc_admdvs, today).outpatient_designation_levels


def allowed_for_filing(session: Session, filing_id: str, today: date) -> tuple[str, ...]:
    """The levels the insured region of the filing being changed allows."""
    row = session.get(FilingRow, filing_id) if filing_id.strip() else None
    if row is None:
        return ()
    return rules.in_force(session, row.insuplc_admdvs, today).outpatient_designation_levels


def level_refusal(
    code: str, region_rules: FilingRules, answers: RegistryAnswers, field_path: str
) -> DomainError | None:
    """Why ``code`` may not be designated under the region's allowed levels, if it may not.

    Raises the registry's failure (NODE_UNREACHABLE) when a level is needed and unknown.
    """
    allowed = region_rules.outpatient_designation_levels
    if not allowed:
        return None
    if answers.failure is not None:
        raise answers.failure
    region = region_rules.insuplc_admdvs
    if code not in answers.levels:
        return invalid(
            "INVALID_ARGUMENT",
            field_path,
            f"region {region}'s allowed levels changed while applying; apply again",
        )
    level = answers.levels[code]
    if level is None:
        return invalid(
            "INSTITUTION_NOT_NETWORKED",
            field_path,
            f"institution {code} is not in the institution registry",
            metadata={"fixmedins_code": code},
        )
    if level not in allowed:
        return invalid(
            "INVALID_ARGUMENT",
            field_path,
            f"institution {code} is of level {level or 'none'}; region {region} allows outpatient "
            f"designation of levels {', '.join(allowed)} only",
            metadata={"fixmedins_code": code, "level": level},
        )
    return None
