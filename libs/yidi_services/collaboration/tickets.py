"""A ticket as plain values, and the one state machine both parties' nodes apply.

The ticket is its messages: each is one change (open, answer, follow up, close) by one
party, and the state, the party awaited and the due date follow from them. Turns
alternate, so only one party may change a ticket at any time: an open ticket awaits the
addressee's answer, an answered one awaits the opener, who closes it or follows up. Two
nodes holding the same ticket therefore never change it side by side, and the node that
receives a change (``SyncTicket``) checks it with :func:`step` as the sender did.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum

from yidi_core.codes import NATIONAL_REGION, check_institution, check_region
from yidi_core.errors import DomainError, combine, invalid
from yidi_runtime.config import region_contains

MAX_TEXT = 2000
_SUBJECT_ID = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")
TICKET_ID = re.compile(r"\d{6}\d{14}[0-9A-F]{10}")


class Party(StrEnum):
    """One side of a ticket."""

    TREATMENT = "treatment"
    INSURED = "insured"

    @property
    def other(self) -> Party:
        """The other side."""
        return Party.INSURED if self is Party.TREATMENT else Party.TREATMENT


class State(StrEnum):
    """Where a ticket stands."""

    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"


class Action(StrEnum):
    """One change of a ticket."""

    OPEN = "open"
    ANSWER = "answer"
    FOLLOW_UP = "follow_up"
    CLOSE = "close"


class SubjectKind(StrEnum):
    """What a ticket is about."""

    VISIT = "visit"
    SETTLEMENT = "settlement"
    FILING = "filing"


class Category(StrEnum):
    """The kind of problem a ticket raises."""

    DISPUTED_AMOUNT = "disputed_amount"
    MISSING_RECORD = "missing_record"
    PATIENT_COMPLAINT = "patient_complaint"


_STEPS: dict[tuple[State | None, Action], State] = {
    (None, Action.OPEN): State.OPEN,
    (State.OPEN, Action.ANSWER): State.ANSWERED,
    (State.ANSWERED, Action.FOLLOW_UP): State.OPEN,
    (State.ANSWERED, Action.CLOSE): State.CLOSED,
}
"""Which action each state allows, and the state it leads to."""


@dataclass(frozen=True)
class Message:
    """One change: its place, what it was, by which party and whom, the words, when, and the due date it set."""

    seq: int
    action: Action
    party: Party
    author: str
    text: str
    at: datetime
    due_date: date | None


@dataclass(frozen=True)
class Subject:
    """What a ticket is about and between whom: fixed when it is opened."""

    ticket_id: str
    subject_kind: SubjectKind
    subject_id: str
    category: Category
    treatment_admdvs: str
    insured_admdvs: str
    fixmedins_code: str
    opener: Party

    def region(self, party: Party) -> str:
        """The region of one party."""
        return self.treatment_admdvs if party is Party.TREATMENT else self.insured_admdvs


@dataclass(frozen=True)
class Ticket:
    """A ticket: its subject and its messages, oldest first (never empty)."""

    subject: Subject
    messages: tuple[Message, ...]

    @property
    def version(self) -> int:
        """How many changes it had."""
        return len(self.messages)

    @property
    def state(self) -> State:
        """The state its messages lead to."""
        return _state_after(self.messages[-1].action)

    @property
    def awaiting(self) -> Party | None:
        """The party whose action it awaits (None once closed)."""
        state = self.state
        if state is State.CLOSED:
            return None
        return self.subject.opener.other if state is State.OPEN else self.subject.opener

    @property
    def due_date(self) -> date | None:
        """The day by which the awaited party should act."""
        return self.messages[-1].due_date

    def overdue(self, today: date) -> bool:
        """Not closed and past its due date."""
        return self.due_date is not None and self.due_date < today

    def last(self, *actions: Action) -> Message | None:
        """The latest message of one of ``actions``."""
        return next((m for m in reversed(self.messages) if m.action in actions), None)

    def with_message(self, message: Message) -> Ticket:
        """The ticket after one more change."""
        return replace(self, messages=(*self.messages, message))


def _state_after(action: Action) -> State:
    return next(state for (_, done), state in _STEPS.items() if done is action)


def acting_party(subject: Subject, action: Action) -> Party:
    """Who makes ``action``: the addressee answers, the opener does everything else."""
    return subject.opener.other if action is Action.ANSWER else subject.opener


def step(subject: Subject, state: State | None, action: Action, party: Party) -> State:
    """The state after ``action`` by ``party``; TICKET_STATE unless ``state`` allows it and awaits that party."""
    after = _STEPS.get((state, action))
    if after is None or party is not acting_party(subject, action):
        where = "does not exist yet" if state is None else f"is {state}"
        raise DomainError(
            "TICKET_STATE",
            f"the ticket {where}: the {party} party may not {action.value.replace('_', ' ')} it now",
            metadata={"state": state.value if state else "", "action": action.value, "party": party.value},
        )
    return after


def checked_text(text: str, field: str, *, required: bool) -> str:
    """A message's text, stripped: at most :data:`MAX_TEXT` characters, present unless closing."""
    stripped = text.strip()
    if len(stripped) > MAX_TEXT:
        raise invalid(
            "INVALID_ARGUMENT", field, f"must be at most {MAX_TEXT} characters, got {len(stripped)}"
        )
    if required and not stripped:
        raise invalid("INVALID_ARGUMENT", field, "is required")
    return stripped


@dataclass(frozen=True)
class Opening:
    """OpenTicket's request as plain values ('' for an unspecified enum, None for an unspecified party)."""

    subject_kind: str
    subject_id: str
    category: str
    treatment_admdvs: str
    insured_admdvs: str
    fixmedins_code: str
    opener: Party | None
    text: str


def _choice(kind: type[SubjectKind] | type[Category], value: str, field: str) -> DomainError | None:
    if value not in {member.value for member in kind}:
        return invalid("INVALID_ARGUMENT", field, "is required" if not value else f"{value!r} is not known")
    return None


def checked_opening(opening: Opening, prefix: str = "", text_field: str = "text") -> Opening:
    """Every field of an opening checked at once (one violation per bad field)."""
    errors: list[DomainError | None] = [
        _choice(SubjectKind, opening.subject_kind, f"{prefix}subject_kind"),
        _choice(Category, opening.category, f"{prefix}category"),
    ]
    if not _SUBJECT_ID.fullmatch(opening.subject_id):
        errors.append(
            invalid(
                "INVALID_ARGUMENT", f"{prefix}subject_id", "is required: 1 to 64 letters, digits or -_.:/"
            )
        )
    regions = {}
    for field in ("treatment_admdvs", "insured_admdvs"):
        try:
            regions[field] = check_region(getattr(opening, field), f"{prefix}{field}")
        except DomainError as error:
            errors.append(error)
    errors += [
        invalid("INVALID_ARGUMENT", f"{prefix}{field}", "must name a region, not the whole country")
        for field, region in regions.items()
        if region == NATIONAL_REGION
    ]
    if len(regions) == 2 and regions["treatment_admdvs"] == regions["insured_admdvs"]:
        errors.append(
            invalid("INVALID_ARGUMENT", f"{prefix}insured_admdvs", "must differ from treatment_admdvs")
        )
    if opening.fixmedins_code:
        try:
            code = check_institution(opening.fixmedins_code, f"{prefix}fixmedins_code")
            treatment = regions.get("treatment_admdvs")
            if treatment and not region_contains(treatment, code[1:7]):
                errors.append(
                    invalid(
                        "INVALID_ARGUMENT",
                        f"{prefix}fixmedins_code",
                        f"lies outside treatment region {treatment}",
                    )
                )
        except DomainError as error:
            errors.append(error)
    try:
        checked_text(opening.text, text_field, required=True)
    except DomainError as error:
        errors.append(error)
    error = combine([e for e in errors if e is not None])
    if error is not None:
        raise error
    return replace(opening, text=opening.text.strip())
