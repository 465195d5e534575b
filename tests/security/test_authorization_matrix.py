"""The authorization matrix, generated from the access rules: every method × every way a field can be wrong × every role.

For each rule that names fields (an institution's own code, a node's origin), each named
field is tried absent, empty, holding another owner's value and holding another region's
value, with the other named fields right: each must be refused PERMISSION_DENIED_REGION
naming that field, before any handler looks anything up; with every field right, the call
gets past authorization. Operators are tried from their own region, from a region below the
node and from another region; nodes as a child, as the parent, and as a neighbour relaying
another principal's vouch (:mod:`yidi_runtime.vouches`) — rightly from the way the vouch came,
and wrongly. The rules are the same on every listener, so this runs on an insecure node,
where ``x-yidi-principal`` names the caller and a vouch is carried unsigned.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from yidi.type.v1.vouch_pb2 import Vouch
from yidi_runtime.audit_service import GROUP as AUDIT
from yidi_runtime.auth import PRINCIPAL_HEADER
from yidi_runtime.authz import PUBLIC_SERVICES, Access
from yidi_runtime.config import Peer
from yidi_runtime.identity import CallerRole
from yidi_runtime.server import Node
from yidi_runtime.vouches import VOUCH_HEADER, request_digest
from yidi_services.node import GROUPS, start_node
from yidi_testing import error_details, settings_for

BEIJING, DONGCHENG, NATIONAL = "110000", "110101", "000000"
HOSPITAL = "H11010500001"  # Chaoyang (110105): served by the Beijing node itself
RULES: dict[str, Access] = {
    method: rule
    for group in [*GROUPS.values(), AUDIT]
    for method, rule in group.access.items()
    if method.strip("/").rpartition("/")[0] not in PUBLIC_SERVICES
}
"""Every rule but the token service's, which only token callers pass (tests/security/test_tokens.py)."""


@dataclass(frozen=True)
class Values:
    """What a field naming an institution or a region holds: the caller's own, another owner's, another region's."""

    own_institution: str
    own_region: str
    other_institution: str
    other_region: str
    foreign_institution: str
    foreign_region: str


INSTITUTION_VALUES = Values(HOSPITAL, "110105", "H11010500002", "110106", "H13010200001", "130100")
CHILD_VALUES = Values("H11010100001", DONGCHENG, "H11010200001", "110102", "H13010200001", "130100")
RELAYED_VALUES = Values("H33040200001", "330400", "H33050200001", "330300", "H13010200001", "130100")


@pytest.fixture(scope="module")
def beijing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A Beijing province node run insecure, its parent the national node, a Dongcheng child."""
    settings = settings_for(
        tmp_path_factory.mktemp("beijing"),
        parent=Peer(NATIONAL, "127.0.0.1:9"),
        children=[Peer(DONGCHENG, "127.0.0.1:9")],
        region=BEIJING,
        auto_migrate=True,
        metrics_port="off",
        quota_enabled=False,
    )
    started = start_node(settings)
    yield started
    started.stop(0)


def _method(full: str) -> object:
    return descriptor_pool.Default().FindMethodByName(full.strip("/").replace("/", "."))


def _set(message: Message, path: str, value: str | None) -> None:
    """Set a dotted path (repeated fields get one element); ``None`` leaves the last field unset."""
    head, _, rest = path.partition(".")
    field = message.DESCRIPTOR.fields_by_name[head]
    if rest:
        container = getattr(message, head)
        child = (container[0] if len(container) else container.add()) if field.is_repeated else container
        _set(child, rest, value)
        return
    if value is None:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            message.ClearField(head)
        return
    if field.is_repeated:
        getattr(message, head).append(value)
    else:
        setattr(message, head, value)


def _value(path: str, values: Values, which: str) -> str:
    kind = "institution" if path.endswith("fixmedins_code") else "region"
    return getattr(values, f"{which}_{kind}")


def request(full: str, paths: tuple[str, ...], values: Values, wrong: str = "", variant: str = "") -> bytes:
    """The method's request with every named field right, but ``wrong`` as ``variant`` says."""
    message = message_factory.GetMessageClass(_method(full).input_type)()  # type: ignore[attr-defined]
    for path in paths:
        if path != wrong:
            _set(message, path, _value(path, values, "own"))
    if wrong:
        if variant == "absent":
            if "." in wrong:
                message.ClearField(wrong.partition(".")[0])
                for path in paths:  # the siblings under the cleared parent stay right
                    if path != wrong and path.partition(".")[0] == wrong.partition(".")[0]:
                        _set(message, path, _value(path, values, "own"))
        elif variant == "empty":
            _set(message, wrong, "")
        else:
            _set(message, wrong, _value(wrong, values, variant))
    return message.SerializeToString()


def call(node: Node, full: str, body: bytes, caller: str, vouch: str = "") -> grpc.RpcError | None:
    """Call ``full`` as ``caller`` (carrying an unsigned vouch for ``vouch``); the error, or None."""
    method = _method(full)
    metadata: list[tuple[str, str | bytes]] = [(PRINCIPAL_HEADER, caller)]
    if vouch:
        parsed = message_factory.GetMessageClass(method.input_type).FromString(body)  # type: ignore[attr-defined]
        metadata.append(
            (
                VOUCH_HEADER,
                Vouch(
                    subject=vouch,
                    request_type=parsed.DESCRIPTOR.full_name,
                    request_digest=request_digest(parsed),
                    expire_time={"seconds": 4_000_000_000},
                ).SerializeToString(),
            )
        )
    with grpc.insecure_channel(node.address) as channel:
        try:
            if method.client_streaming:  # type: ignore[attr-defined]
                channel.stream_unary(full)(iter([body]), metadata=metadata, timeout=10)
            elif method.server_streaming:  # type: ignore[attr-defined]
                list(channel.unary_stream(full)(body, metadata=metadata, timeout=10))
            else:
                channel.unary_unary(full)(body, metadata=metadata, timeout=10)
        except grpc.RpcError as error:
            return error
    return None


def denied(error: grpc.RpcError | None) -> tuple[str, str]:
    """(reason, field) of a PERMISSION_DENIED refusal."""
    assert error is not None, "the call got past authorization"
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED, error
    info = error_details(error)["ErrorInfo"]
    return info.reason, info.metadata.get("field", "")


def passed(error: grpc.RpcError | None) -> bool:
    """The call got past authorization (it may still be refused for what it asks)."""
    return error is None or error.code() is not grpc.StatusCode.PERMISSION_DENIED


@dataclass(frozen=True)
class Case:
    """One call of the matrix: the method, the caller (and whom it vouches for), the fields' values."""

    method: str
    caller: str
    vouch: str
    paths: tuple[str, ...]
    values: Values

    def body(self, wrong: str = "", variant: str = "") -> bytes:
        return request(self.method, self.paths, self.values, wrong, variant)


def cases() -> Iterator[tuple[str, Case]]:
    for method, rule in sorted(RULES.items()):
        name = method.rpartition("/")[2]
        if CallerRole.INSTITUTION in rule.roles:
            yield (
                f"{name}-institution",
                Case(method, f"institution/{HOSPITAL}", "", rule.own, INSTITUTION_VALUES),
            )
        if CallerRole.NODE in rule.roles and not rule.from_above:
            yield (f"{name}-child", Case(method, f"node/{DONGCHENG}", "", rule.origin, CHILD_VALUES))
            yield (
                f"{name}-relayed",
                Case(method, f"node/{NATIONAL}", "node/330400", rule.origin, RELAYED_VALUES),
            )


CASES = dict(cases())
VARIANTS = ("absent", "empty", "other", "foreign")
FIELD_CASES = [
    (case_id, path, variant) for case_id, case in CASES.items() for path in case.paths for variant in VARIANTS
]


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_with_every_named_field_right_the_call_gets_past_authorization(beijing: Node, case_id: str) -> None:
    case = CASES[case_id]
    assert passed(call(beijing, case.method, case.body(), case.caller, case.vouch))


@pytest.mark.parametrize(("case_id", "path", "variant"), FIELD_CASES)
def test_a_named_field_absent_empty_or_someone_elses_is_refused_naming_it(
    beijing: Node, case_id: str, path: str, variant: str
) -> None:
    case = CASES[case_id]
    error = call(beijing, case.method, case.body(path, variant), case.caller, case.vouch)
    assert denied(error) == ("PERMISSION_DENIED_REGION", path)


def test_the_matrix_covers_every_method_and_every_rule_names_fields_that_exist() -> None:
    named = {case.method for case in CASES.values() if case.paths}
    for method, rule in RULES.items():
        assert method in {case.method for case in CASES.values()} or CallerRole.OPERATOR in rule.roles
        if rule.own or rule.origin:
            assert method in named or method in ABOVE_METHODS
        assert not (_method(method).client_streaming and (rule.own or rule.origin)), (  # type: ignore[attr-defined]
            f"{method}: a streamed request's fields cannot be checked before the handler"
        )
    assert len(FIELD_CASES) > 100


OPERATOR_METHODS = sorted(method for method, rule in RULES.items() if CallerRole.OPERATOR in rule.roles)


@pytest.mark.parametrize("method", OPERATOR_METHODS)
def test_an_operator_acts_only_within_their_region_at_every_hop(beijing: Node, method: str) -> None:
    body = request(method, (), INSTITUTION_VALUES)
    assert passed(call(beijing, method, body, f"operator/{BEIJING}/ops"))
    assert passed(call(beijing, method, body, f"operator/{NATIONAL}/ops"))
    below = call(beijing, method, body, f"operator/{DONGCHENG}/ops")
    if RULES[method].operators_below:  # the service limits it to its own region's records
        assert passed(below)
    else:
        assert denied(below)[0] == "PERMISSION_DENIED_REGION"
    assert denied(call(beijing, method, body, "operator/130000/ops"))[0] == "PERMISSION_DENIED_REGION"
    if not _method(method).client_streaming:  # type: ignore[attr-defined]
        # The same operator relayed by the parent is checked again here, as the operator.
        assert denied(call(beijing, method, body, f"node/{NATIONAL}", "operator/130000/ops"))[0] == (
            "PERMISSION_DENIED_REGION"
        )


ABOVE_METHODS = sorted(method for method, rule in RULES.items() if rule.from_above)


@pytest.mark.parametrize("method", ABOVE_METHODS)
def test_only_a_nodes_ancestors_read_what_it_recorded(beijing: Node, method: str) -> None:
    rule = RULES[method]
    national = Values(*([NATIONAL] * 6))
    from_parent = request(method, rule.origin, national)
    assert passed(call(beijing, method, from_parent, f"node/{NATIONAL}"))
    for path in rule.origin:
        for variant in ("absent", "empty"):
            body = request(method, rule.origin, national, path, variant)
            assert denied(call(beijing, method, body, f"node/{NATIONAL}")) == (
                "PERMISSION_DENIED_REGION",
                path,
            )
    from_child = request(method, rule.origin, CHILD_VALUES)
    assert denied(call(beijing, method, from_child, f"node/{DONGCHENG}"))[0] == "PERMISSION_DENIED_REGION"
    relayed = request(method, rule.origin, RELAYED_VALUES)
    assert denied(call(beijing, method, relayed, f"node/{NATIONAL}", "node/330400"))[0] == (
        "PERMISSION_DENIED_REGION"
    )


RELAYABLE = sorted(case_id for case_id, case in CASES.items() if case.vouch and case.paths)


@pytest.mark.parametrize("case_id", RELAYABLE)
def test_a_vouch_must_come_the_way_its_node_lies(beijing: Node, case_id: str) -> None:
    """A child may relay only for nodes below it, the parent only for nodes beyond this one; nobody
    vouches for a node but that node (on a signed federation its key; here, its name)."""
    case = CASES[case_id]
    below = request(case.method, case.paths, CHILD_VALUES)
    assert denied(call(beijing, case.method, below, f"node/{NATIONAL}", f"node/{DONGCHENG}"))[0] == (
        "PERMISSION_DENIED_REGION"
    )
    assert denied(call(beijing, case.method, case.body(), f"node/{DONGCHENG}", "node/330400"))[0] == (
        "PERMISSION_DENIED_REGION"
    )
    assert passed(call(beijing, case.method, below, f"node/{DONGCHENG}", f"node/{DONGCHENG}"))
