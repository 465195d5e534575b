"""Who may call what: each service declares an :class:`Access` rule per method; the interceptor enforces it.

The rule is checked before the handler runs, so a caller that may not act gets
PERMISSION_DENIED whether or not the record it names exists. A call is checked against the
principal it acts for (:data:`yidi_runtime.identity.current`): the authenticated caller
itself, or, for a call a neighbour node forwarded, the original principal that node's vouch
names (:mod:`yidi_runtime.vouches`); the neighbour itself must be this node's parent or a
child. What each kind of principal may do:

- an **institution** acts only as itself (every field of the request a rule names as its
  own must be present and hold its own code) and only at its region's node (the node a
  request for its region stops at);
- an **operator** acts at nodes within the region the operator works for (a national
  operator anywhere), at every hop of a forwarded call; review, suspension, imports,
  clearing and repair are operators' work. A rule marked ``operators_below`` also admits,
  at a node above it, an operator of a region below (a province's operator whose call its
  node relays to the national node): the service must then limit that operator to its
  own region's records;
- a **node** acts only within its subtree: every origin field a rule names (the treatment
  region, the sending institution, the route's origin) must be present and lie below it;
  a rule marked ``from_above`` (reading a node's records) admits only this node's ancestors;
- the **developer** (an insecure development node) may do everything.

A rule that names a field refuses when the field is absent or empty: checks fail closed.
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
    institution that must lie in the calling node's subtree. ``from_above``: a node may call
    only if it is this node or one of its ancestors (it reads what this node recorded).
    Every field named must be present. ``operators_below``: an operator of a region below
    this node may call too (the service answers it only about its own region).
    """

    roles: frozenset[CallerRole]
    own: tuple[str, ...] = ()
    origin: tuple[str, ...] = ()
    from_above: bool = False
    operators_below: bool = False


def allow(
    *roles: CallerRole,
    own: Iterable[str] = (),
    origin: Iterable[str] = (),
    from_above: bool = False,
    operators_below: bool = False,
) -> Access:
    """An :class:`Access` rule for ``roles``."""
    return Access(frozenset(roles), tuple(own), tuple(origin), from_above, operators_below)


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


def _named(request: Message | None, path: str, principal: Principal) -> list[str]:
    """The values of a field a rule names; refused when there are none (the check fails closed)."""
    values = [] if request is None else list(_values(request, path))
    if not values:
        raise _denied(
            "PERMISSION_DENIED_REGION",
            f"{path} is required: it names whose record this is, and a check on it fails closed",
            principal,
            field=path,
        )
    return values


class Authorizer:
    """One node's enforcement of the rules of the services it serves."""

    def __init__(self, settings: NodeSettings, access: Mapping[str, Access]) -> None:
        self._settings = settings
        self._access = dict(access)
        self._neighbours = {settings.region}
        self._neighbours |= {child.region for child in settings.children}
        if settings.parent is not None:
            self._neighbours.add(settings.parent.region)

    def check(
        self,
        caller: Principal,
        service: str,
        method: str,
        request: Message | None,
        acting: Principal | None = None,
    ) -> None:
        """Raise PERMISSION_DENIED_* unless ``acting`` (by default the ``caller``) may call ``method`` with ``request``.

        ``caller`` is who is on the line: for a forwarded call, the neighbour node that
        relays it for ``acting``. ``request`` is None for a streamed request, whose fields
        cannot be checked up front; a rule for such a method names no field.
        """
        acting = acting or caller
        if service in PUBLIC_SERVICES or caller.role is CallerRole.DEVELOPER:
            return
        if caller.role is CallerRole.NODE:
            self._check_neighbour(caller)
        if acting.role is CallerRole.DEVELOPER:
            return
        full = f"/{service}/{method}"
        rule = self._access.get(full)
        if rule is None or acting.role not in rule.roles:
            allowed = ", ".join(sorted(role.value for role in rule.roles)) if rule else "nobody yet"
            raise _denied(
                "PERMISSION_DENIED_ROLE",
                f"{acting.role.value} callers may not call {method} (allowed: {allowed})",
                acting,
                method=full,
            )
        if acting.role is CallerRole.INSTITUTION:
            self._check_institution(acting, rule, request, relayed=acting is not caller)
        elif acting.role is CallerRole.OPERATOR:
            self._check_operator(acting, rule)
        else:
            self._check_node(acting, rule, request)

    def _check_neighbour(self, caller: Principal) -> None:
        if caller.region not in self._neighbours:
            raise _denied(
                "PERMISSION_DENIED_REGION",
                f"node {self._settings.region} accepts calls only from its parent and children, "
                f"not from node {caller.region}",
                caller,
                node_region=self._settings.region,
            )

    def _check_institution(
        self, principal: Principal, rule: Access, request: Message | None, *, relayed: bool
    ) -> None:
        if not relayed:
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
        for path in rule.own:
            for value in _named(request, path, principal):
                if value != principal.name:
                    raise _denied(
                        "PERMISSION_DENIED_REGION",
                        f"institution {principal.name} may act only as itself, but {path} is {value}",
                        principal,
                        field=path,
                    )

    def _check_operator(self, principal: Principal, rule: Access) -> None:
        here = self._settings.region
        below = rule.operators_below and region_contains(here, principal.region)
        if not (below or region_contains(principal.region, here)):
            raise _denied(
                "PERMISSION_DENIED_REGION",
                f"an operator of region {principal.region} may not act at node {self._settings.region}",
                principal,
                node_region=self._settings.region,
            )

    def _check_node(self, principal: Principal, rule: Access, request: Message | None) -> None:
        here = self._settings.region
        if principal.region == here:
            return  # the node itself, in process
        if rule.from_above and not region_contains(principal.region, here):
            raise _denied(
                "PERMISSION_DENIED_REGION",
                f"node {principal.region} may not read what node {here} recorded: only its ancestors may",
                principal,
                node_region=here,
            )
        for path in rule.origin:
            for value in _named(request, path, principal):
                if not region_contains(principal.region, _region_of(value)):
                    raise _denied(
                        "PERMISSION_DENIED_REGION",
                        f"node {principal.region} may act only within its region, but {path} is {value}",
                        principal,
                        field=path,
                    )
