"""Who is calling: the principal a request acts as, named by its certificate or token.

Every caller is one of four kinds. A certificate names its holder with a URI in its
subjectAltName, which ``yidi certs`` writes and a signed token carries as its subject:

- ``yidi://node/330000``: a node of the region tree (its region code);
- ``yidi://institution/H33040200001``: a designated institution's HIS (its national code,
  whose first six digits after the letter are its region);
- ``yidi://operator/330000/zhang.wei``: an operator of a medical insurance centre (the region
  the operator works for, and a name for the audit trail);
- the *developer*: every call on a node explicitly run insecure for local development that
  names no one else. It may do everything, and exists nowhere else.

The interceptor puts the principal of the running call in :data:`current`, so a handler or the
audit trail can read it without threading it through every signature.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum

from yidi_core.codes import NATIONAL_REGION

URI_SCHEME = "yidi://"
_REGION = r"\d{6}"
_INSTITUTION = r"[HP]\d{11}"
_OPERATOR_NAME = r"[A-Za-z0-9._-]{1,64}"


class CallerRole(StrEnum):
    """What kind of caller a principal is."""

    NODE = "node"
    INSTITUTION = "institution"
    OPERATOR = "operator"
    DEVELOPER = "developer"


class Via(StrEnum):
    """How the principal was established."""

    CERTIFICATE = "certificate"
    TOKEN = "token"
    LOCAL = "local"
    """In process (:mod:`yidi_runtime.local_calls`): a service calling another service of the same node."""
    VOUCHED = "vouched"
    """Forwarded by a neighbour node, vouched for by the node that authenticated it (:mod:`yidi_runtime.vouches`)."""
    INSECURE = "insecure"


@dataclass(frozen=True)
class Principal:
    """One authenticated caller. ``region`` is where it belongs: the node's, the institution's or the operator's."""

    role: CallerRole
    name: str
    region: str
    via: Via = Via.CERTIFICATE

    @property
    def subject(self) -> str:
        """The path part of its URI (``institution/H33040200001``), as audit rows and tokens name it."""
        if self.role is CallerRole.OPERATOR:
            return f"operator/{self.region}/{self.name}"
        return f"{self.role.value}/{self.name}"

    @property
    def uri(self) -> str:
        """``yidi://`` + :attr:`subject`: what a certificate's subjectAltName carries."""
        return URI_SCHEME + self.subject


DEVELOPER = Principal(CallerRole.DEVELOPER, "developer", NATIONAL_REGION, Via.INSECURE)
"""The caller on an insecure development node that names no one."""

_SUBJECTS: tuple[tuple[CallerRole, re.Pattern[str]], ...] = (
    (CallerRole.NODE, re.compile(rf"node/(?P<region>{_REGION})")),
    (CallerRole.INSTITUTION, re.compile(rf"institution/(?P<name>{_INSTITUTION})")),
    (CallerRole.OPERATOR, re.compile(rf"operator/(?P<region>{_REGION})/(?P<name>{_OPERATOR_NAME})")),
)


def parse_subject(subject: str, via: Via = Via.CERTIFICATE) -> Principal | None:
    """The principal a subject (``node/330000``, with or without ``yidi://``) names, or None."""
    text = subject.removeprefix(URI_SCHEME)
    for role, pattern in _SUBJECTS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        found = match.groupdict()
        if role is CallerRole.NODE:
            return Principal(role, found["region"], found["region"], via)
        if role is CallerRole.INSTITUTION:
            return Principal(role, found["name"], found["name"][1:7], via)
        return Principal(role, found["name"], found["region"], via)
    return None


current: ContextVar[Principal | None] = ContextVar("yidi_principal", default=None)
"""The principal the call this thread is serving acts for (None outside a call): the caller
itself, or for a call a neighbour node forwarded, the original principal it vouched for."""

relay: ContextVar[Principal | None] = ContextVar("yidi_relay", default=None)
"""The neighbour node that forwarded the call being served (None when the caller acts for itself)."""

vouch: ContextVar[bytes | None] = ContextVar("yidi_vouch", default=None)
"""The encoded vouch the call being served arrived with, passed on unchanged when it is forwarded."""


def acting() -> Principal:
    """The principal of the running call; outside a call there is none, and nothing may act."""
    principal = current.get()
    if principal is None:
        raise RuntimeError("no principal: this runs only inside a call the interceptor admitted")
    return principal
