"""Who may call the collaboration service (see :mod:`yidi_runtime.authz`), and who may act for a party.

The interceptor admits institutions and operators at their own node and nodes sending a
ticket's change for their own subtree. The handler then checks the caller against the
ticket it touches, failing closed:

- an **institution** acts for the treatment party of a ticket that names it (and opens only
  naming itself);
- an **operator** acts for a party whose region lies within the operator's own, except the
  national centre's operators, who are no party: they may read every ticket at a node they
  reach, and change none.
"""

from __future__ import annotations

from yidi_core.codes import NATIONAL_REGION
from yidi_core.errors import DomainError
from yidi_runtime.authz import INSTITUTION, NODE, OPERATOR, Access, allow, rules
from yidi_runtime.config import region_contains
from yidi_runtime.identity import DEVELOPER, CallerRole, Principal, parse_subject
from yidi_services.collaboration.tickets import Party, Subject

_PARTIES = allow(INSTITUTION, OPERATOR)

ACCESS: dict[str, Access] = rules(
    "yidi.collaboration.v1.CollaborationService",
    OpenTicket=_PARTIES,
    AnswerTicket=_PARTIES,
    FollowUpTicket=_PARTIES,
    CloseTicket=_PARTIES,
    GetTicket=_PARTIES,
    ListTickets=_PARTIES,
    SyncTicket=allow(NODE, origin=("sender_admdvs",)),
)


def may_act_for(principal: Principal, subject: Subject, party: Party) -> bool:
    """Whether ``principal`` may change ``subject``'s ticket as ``party``."""
    if principal.role is CallerRole.INSTITUTION:
        return party is Party.TREATMENT and subject.fixmedins_code == principal.name
    if principal.role is CallerRole.OPERATOR:
        return principal.region != NATIONAL_REGION and region_contains(
            principal.region, subject.region(party)
        )
    return principal.role is CallerRole.DEVELOPER


def may_read(principal: Principal, subject: Subject) -> bool:
    """Whether ``principal`` may read the ticket: a party's, or a national operator."""
    if principal.role is CallerRole.OPERATOR and principal.region == NATIONAL_REGION:
        return True
    return any(may_act_for(principal, subject, party) for party in Party)


def ensure_may_act(principal: Principal, subject: Subject, party: Party) -> None:
    """PERMISSION_DENIED_REGION unless ``principal`` may act for ``party`` on this ticket."""
    if not may_act_for(principal, subject, party):
        raise DomainError(
            "PERMISSION_DENIED_REGION",
            f"{principal.subject} may not act for the {party} party ({subject.region(party)}) of ticket "
            f"{subject.ticket_id or 'being opened'}",
            metadata={"caller": principal.subject, "party": party.value},
        )


def ensure_may_read(principal: Principal, subject: Subject) -> None:
    """PERMISSION_DENIED_REGION unless ``principal`` may read the ticket."""
    if not may_read(principal, subject):
        raise DomainError(
            "PERMISSION_DENIED_REGION",
            f"{principal.subject} is neither party of ticket {subject.ticket_id}",
            metadata={"caller": principal.subject},
        )


def author(subject: str, *, insecure: bool) -> Principal | None:
    """The principal a received message names as its author (None: no one who may act).

    The developer exists only on nodes run insecure for development, so only such a node
    takes a message the developer wrote.
    """
    if subject == DEVELOPER.subject:
        return DEVELOPER if insecure else None
    return parse_subject(subject)
