"""Vouches: the original principal of a call travels with it across nodes, signed by the node that authenticated it.

Mutual TLS proves only who the *last* hop was. When the Beijing node forwards an operator's
request toward Hebei, Hebei must check the operator, not Beijing; when the national node
relays Jiaxing's request to Qinghai, Qinghai must know it is Jiaxing's. So every call a
node makes to another carries a :class:`~yidi.type.v1.vouch_pb2.Vouch` in the binary
metadata ``x-yidi-vouch-bin``: the principal's subject, the request's type and digest, an
expiry, and the vouching node's seal (:mod:`yidi_runtime.integrity`). A node vouches for
itself when it acts on its own (a settlement it applies, a reconciliation it runs), and for
an institution or operator of its own region whose call it forwards; a relay passes the
vouch on unchanged. Each hop checks the vouch and then authorizes the call as its
principal (:mod:`yidi_runtime.authz`):

- the seal is a node's of our CA, unaltered, unexpired;
- the vouch is for this request: its type, and its digest with ``route.hops`` (the one field
  relays rewrite) cleared, so a relay can neither reuse it nor change the request;
- the vouching node may vouch for that principal: a node only for itself, an institution
  or operator only within the node's own region (so a node's key cannot mint an operator of
  another region);
- the neighbour that delivered it lies on the way from the vouching node: a child only for
  nodes in its subtree, the parent only for nodes outside this node's subtree.

On a node run insecure for development nothing is sealed or checked, but the principal still
travels, so the rules can be tried without certificates.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import grpc
from google.protobuf.message import DecodeError, Message

from yidi.type.v1.vouch_pb2 import Vouch
from yidi_core.errors import DomainError
from yidi_runtime import identity
from yidi_runtime.config import NodeSettings, region_contains
from yidi_runtime.identity import DEVELOPER, CallerRole, Principal, Via, parse_subject
from yidi_runtime.integrity import NodeIntegrity, Origin
from yidi_runtime.wire import Clock, as_utc, moment_of, timestamp_message, wall_clock

VOUCH_HEADER = "x-yidi-vouch-bin"
"""The binary metadata key a vouch travels in."""
LIFETIME = timedelta(minutes=5)
"""How long a vouch is accepted: a forwarded call finishes within its deadline, seconds."""
_CLOCK_SKEW = timedelta(seconds=30)


def request_digest(request: Message) -> bytes:
    """SHA-256 of the request's deterministic encoding without ``route.hops``, which relays append to."""
    content = request
    if "route" in request.DESCRIPTOR.fields_by_name and request.route.hops:  # type: ignore[attr-defined]
        content = type(request)()
        content.CopyFrom(request)
        content.route.ClearField("hops")  # type: ignore[attr-defined]
    return hashlib.sha256(content.SerializeToString(deterministic=True)).digest()


def arrived_with(context: grpc.ServicerContext) -> bytes | None:
    """The encoded vouch a call carries, if any."""
    for key, value in context.invocation_metadata() or ():
        if key == VOUCH_HEADER:
            return value if isinstance(value, bytes) else value.encode()
    return None


def _refused(reason: str, message: str, **metadata: str) -> DomainError:
    return DomainError(reason, f"vouch: {message}", metadata=metadata)


class Vouches:
    """One node's vouches: made with its key (:meth:`issue`), checked against its CA (:meth:`acting`)."""

    def __init__(self, settings: NodeSettings, integrity: NodeIntegrity, clock: Clock = wall_clock) -> None:
        self._settings = settings
        self._integrity = integrity
        self._clock = clock
        self._self = Principal(CallerRole.NODE, settings.region, settings.region, Via.LOCAL)
        self._parent = settings.parent.region if settings.parent is not None else None
        self._children = {child.region for child in settings.children}

    def issue(self, principal: Principal, request: Message) -> bytes:
        """This node's vouch that ``principal`` makes ``request``."""
        vouch = Vouch(
            subject=principal.subject,
            request_type=request.DESCRIPTOR.full_name,
            request_digest=request_digest(request),
            expire_time=timestamp_message(as_utc(self._clock()) + LIFETIME),
        )
        self._integrity.seal(vouch)
        return vouch.SerializeToString()

    def own(self, request: Message) -> bytes:
        """This node's vouch for a call it makes on its own behalf."""
        return self.issue(self._self, request)

    def for_relay(self, request: Message) -> bytes:
        """The vouch a request forwarded from the running call travels with.

        The vouch it arrived with, unchanged; else (its first hop) this node's vouch for the
        institution or operator it authenticated, or for itself when it acts on its own. A
        neighbour's call that came without a vouch is not relayed: this node would be lending
        it its own name.
        """
        incoming = identity.vouch.get()
        if incoming is not None:
            return incoming
        principal = identity.current.get()
        if principal is None or principal.via is Via.LOCAL:
            return self.own(request)
        if principal.role is CallerRole.DEVELOPER:  # only an insecure node has one, and seals nothing
            return self.issue(DEVELOPER, request) if not self._integrity.sealing else self.own(request)
        if principal.role is CallerRole.NODE:
            if principal.region == self._settings.region:
                return self.own(request)
            raise _refused(
                "PERMISSION_DENIED_REGION",
                f"node {principal.region}'s call came without a vouch and is not forwarded on its behalf",
                caller=principal.subject,
            )
        return self.issue(principal, request)

    def acting(self, raw: bytes, request: Message, neighbour: Principal) -> tuple[Principal, bool]:
        """The principal a neighbour node's call acts for, and whether the neighbour relays it for another node.

        Raises SIGNATURE_INVALID for a vouch that is not a valid one for this request, and
        PERMISSION_DENIED_REGION for one its node may not give or that came the wrong way.
        """
        try:
            vouch = Vouch.FromString(raw)
        except DecodeError:
            raise _refused("SIGNATURE_INVALID", "is not a Vouch message", cause="malformed") from None
        signer = self._integrity.verify("Vouch", vouch, Origin(), where="vouch.")
        principal = (
            DEVELOPER
            if vouch.subject == DEVELOPER.subject and not self._integrity.sealing
            else parse_subject(vouch.subject, Via.VOUCHED)
        )
        if principal is None:
            raise _refused("SIGNATURE_INVALID", f"names no caller: {vouch.subject!r}", cause="subject")
        if vouch.request_type != request.DESCRIPTOR.full_name or vouch.request_digest != request_digest(
            request
        ):
            raise _refused("SIGNATURE_INVALID", "was given for another request", cause="request")
        expires = moment_of(vouch, "expire_time")
        if expires is None or as_utc(self._clock()) > expires + _CLOCK_SKEW:
            raise _refused("SIGNATURE_INVALID", "has expired", cause="expired")
        voucher = signer or (principal.region if principal.role is CallerRole.NODE else neighbour.region)
        self._check_voucher(voucher, principal)
        self._check_way(voucher, neighbour)
        return principal, voucher != neighbour.region

    @staticmethod
    def _check_voucher(voucher: str, principal: Principal) -> None:
        """A node vouches for itself, and for institutions and operators of its own region only."""
        allowed = principal.role is CallerRole.DEVELOPER or (
            principal.region == voucher
            if principal.role is CallerRole.NODE
            else region_contains(voucher, principal.region)
        )
        if not allowed:
            raise _refused(
                "PERMISSION_DENIED_REGION",
                f"node {voucher} may not vouch for {principal.subject}",
                caller=principal.subject,
                voucher=voucher,
            )

    def _check_way(self, voucher: str, neighbour: Principal) -> None:
        """The neighbour lies on the way from the vouching node: a child relays from below, the parent from beyond."""
        here = self._settings.region
        if voucher == neighbour.region:
            return
        from_below = neighbour.region in self._children and region_contains(neighbour.region, voucher)
        from_beyond = neighbour.region == self._parent and not region_contains(here, voucher)
        if not (from_below or from_beyond):
            raise _refused(
                "PERMISSION_DENIED_REGION",
                f"node {neighbour.region} is not on the way from node {voucher} to node {here}",
                relay=neighbour.subject,
                voucher=voucher,
            )
