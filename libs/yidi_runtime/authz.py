"""Who may call what: each service declares an :class:`Access` rule per method; the interceptor enforces it.

The rule is checked before the handler runs, so a caller that may not act gets
PERMISSION_DENIED whether or not the record it names exists. What each kind of caller may
do (issue 9):

- an **institution** acts only as itself (every field of the request naming an institution
  must name its own code) and only at its region's node (the node a request for its region
  stops at);
- an **operator** acts at nodes within the region the operator works for (a national
  operator anywhere); review, suspension, imports, clearing and repair are operators' work;
- a **node** is accepted only from this node's parent, its children and itself, and a child
  acts only within its subtree: every origin field of its request (the treatment region, the
  sending institution) must lie below it. The parent relays for the rest of the tree.
- the **developer** (an insecure development node) may do everything.

A method without a rule is refused: a new RPC is closed until someone decides who may call it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from google.protobuf.message import Message

from yidi_core.errors import DomainError
from yidi_runtime.config import NodeSettings, region_contains
from yidi_runtime.identity import CallerRole, Principal
from yidi_runtime.routing import Hop, route

_INSTITUTION_CODE_LENGTH = 12


@dataclass(frozen=True)
class Access:
    """Who may call one method.

    ``own`` are request fields (dotted paths; repeated fields are followed) that must hold
    the calling institution's own code. ``origin`` are fields naming a region or an
    institution that must lie in a calling child node's subtree.
    """

    roles: frozenset[CallerRole]
    own: tuple[str, ...] = ()
    origin: tuple[str, ...] = ()


def allow(*roles: CallerRole, own: Iterable[str] = (), origin: Iterable[str] = ()) -> Access:
    """An :class:`Access` rule for ``roles``."""
    return Access(frozenset(roles), tuple(own), tuple(origin))


NODE = CallerRole.NODE
INSTITUTION = CallerRole.INSTITUTION
OPERATOR = CallerRole.OPERATOR

PUBLIC_SERVICES = frozenset({"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"})
"""Answered for anyone who reaches the port: probes and tooling need no identity."""


def rules(service: str, **methods: Access) -> dict[str, Access]:
    """``{"/pkg.Service/Method": rule}`` for the methods of one gRPC service."""
    return {f"/{service}/{method}": rule for method, rule in methods.items()}


def _values(message: Message, path: str) -> Iterator[str]:
    head, _, rest = path.partition(".")
    field = message.DESCRIPTOR.fields_by_name.get(head)
    if field is None:
        raise KeyError(f"{message.DESCRIPTOR.full_name} has no field {head!r}")
    value = getattr(message, head)
    items = list(value) if field.is_repeated else [value]
    for item in items:
        if rest:
            if field.is_repeated or message.HasField(head):
                yield from _values(item, rest)
        elif item:
            yield str(item)


def _region_of(value: str) -> str:
    """A region code, or an institution code's region (its six digits after the letter)."""
    return value[1:7] if len(value) == _INSTITUTION_CODE_LENGTH else value


def _denied(reason: str, message: str, principal: Principal, **metadata: str) -> DomainError:
    return DomainError(reason, message, metadata={"caller": principal.subject, **metadata})


class Authorizer:
    """One node's enforcement of the rules of the services it serves."""

    def __init__(self, settings: NodeSettings, access: Mapping[str, Access]) -> None:
        self._settings = settings
        self._access = dict(access)
        self._neighbours = {settings.region}
        self._neighbours |= {child.region for child in settings.children}
        if settings.parent is not None:
            self._neighbours.add(settings.parent.region)
        self._parent = settings.parent.region if settings.parent is not None else None

    def check(self, principal: Principal, service: str, method: str, request: Message | None) -> None:
        """Raise PERMISSION_DENIED_* unless ``principal`` may call ``method`` with ``request``.

        ``request`` is None for a streamed request, whose fields cannot be checked up front;
        such methods are granted by role alone.
        """
        if service in PUBLIC_SERVICES or principal.role is CallerRole.DEVELOPER:
            return
        full = f"/{service}/{method}"
        rule = self._access.get(full)
        if rule is None or principal.role not in rule.roles:
            allowed = ", ".join(sorted(role.value for role in rule.roles)) if rule else "nobody yet"
            raise _denied(
                "PERMISSION_DENIED_ROLE",
                f"{principal.role.value} callers may not call {method} (allowed: {allowed})",
                principal,
                method=full,
            )
        if principal.role is CallerRole.INSTITUTION:
            self._check_institution(principal, rule, request)
        elif principal.role is CallerRole.OPERATOR:
            self._check_operator(principal)
        else:
            self._check_node(principal, rule, request)

    def _check_institution(self, principal: Principal, rule: Access, request: Message | None) -> None:
        try:
            here = route(self._settings, principal.region).hop is Hop.HERE
        except DomainError:
            here = False
        if not here:
            raise _denied(
                "PERMISSION_DENIED_REGION",
                f"institution {principal.name} is served by its own region's node, not by node "
                f"{self._settings.region}",
                principal,
                node_region=self._settings.region,
            )
        for path in rule.own if request is not None else ():
            for value in _values(request, path):
                if value != principal.name:
                    raise _denied(
                        "PERMISSION_DENIED_REGION",
                        f"institution {principal.name} may act only as itself, but {path} is {value}",
                        principal,
                        field=path,
                    )

    def _check_operator(self, principal: Principal) -> None:
        if not region_contains(principal.region, self._settings.region):
            raise _denied(
                "PERMISSION_DENIED_REGION",
                f"an operator of region {principal.region} may not act at node {self._settings.region}",
                principal,
                node_region=self._settings.region,
            )

    def _check_node(self, principal: Principal, rule: Access, request: Message | None) -> None:
        if principal.region not in self._neighbours:
            raise _denied(
                "PERMISSION_DENIED_REGION",
                f"node {self._settings.region} accepts calls only from its parent and children, "
                f"not from node {principal.region}",
                principal,
                node_region=self._settings.region,
            )
        if principal.region in (self._parent, self._settings.region) or request is None:
            return
        for path in rule.origin:
            for value in _values(request, path):
                if not region_contains(principal.region, _region_of(value)):
                    raise _denied(
                        "PERMISSION_DENIED_REGION",
                        f"node {principal.region} may act only within its region, but {path} is {value}",
                        principal,
                        field=path,
                    )
