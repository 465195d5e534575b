"""Fuzzing as a hospital and as a child node, on PostgreSQL, with NUL bytes and every control character.

The loaded Hebei node (its parent the national node, its child the Langfang node, neither
reachable) is called as the Shijiazhuang hospital and as the Langfang node, through the
development header: every RPC gets generated requests from the full value pool. Besides the
contract of every answer (fuzz_support.check_call), each refused mutating call must leave
every row of every table as it found it — a digest of their contents, not a count — and an
answered one, sent again, is answered the same and changes nothing more; the audit trail only
gains rows, each the caller's own call or the node's in-process one.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterator

import pytest
import structlog
from conftest import HEBEI, _database, _file_retiree
from fuzz_support import AuditTail, TableDigests, Target, check_call, fits, full_name, served_methods
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, assume, given, seed, settings
from hypothesis import strategies as st
from proto_strategies import request_strategy, stream_strategy

from yidi_cli.federation import Federation, NodeSpec, Topology, load_sample_data
from yidi_runtime.config import Peer, Role
from yidi_runtime.logs import configure_logging
from yidi_services.node import start_node
from yidi_testing import settings_for

PRINCIPALS = {"hospital": "institution/H13010500001", "child-node": "node/131000"}
EXAMPLES = 4


@pytest.fixture(scope="module", params=sorted(PRINCIPALS))
def principal_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """The loaded Hebei node on PostgreSQL, called as one principal."""
    configure_logging("warning", "json")
    with _database(request, "postgresql") as database_url:
        settings = settings_for(
            tmp_path_factory.mktemp(f"fuzz-as-{request.param}"),
            database_url,
            parent=Peer("000000", "127.0.0.1:9"),
            children=[Peer("131000", "127.0.0.1:9")],
            auto_migrate=True,
            metrics_port="off",
            role=Role.PROVINCE.value,
            region=HEBEI,
            name="hebei",
            quota_enabled=False,
        )
        node = start_node(settings)
        with Federation(Topology((NodeSpec(HEBEI, Role.PROVINCE, "hebei"),)), {HEBEI: node}) as federation:
            channel = federation.channel(HEBEI)
            load_sample_data(federation)
            _file_retiree(channel)
            yield Target(
                node,
                channel,
                TableDigests.of(node),
                f"{request.param}-postgresql",
                (("x-yidi-principal", PRINCIPALS[str(request.param)]),),
                AuditTail(node),
            )
    structlog.reset_defaults()


def _requests(method: MethodDescriptor) -> st.SearchStrategy[list[Message]]:
    if method.client_streaming:
        return stream_strategy(method.input_type)
    return request_strategy(method.input_type).map(lambda request: [request])


def _fuzz(target: Target, method: MethodDescriptor, answers: Counter[str]) -> None:
    """Send one method its generated requests as the target's principal, checking each answer."""

    @seed(zlib.crc32(f"{target.label}{full_name(method)}".encode()))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(_requests(method))
    def fuzz(messages: list[Message]) -> None:
        assume(fits(messages))
        answers[check_call(target, method, messages)] += 1

    fuzz()


@pytest.mark.postgres
def test_every_rpc_fuzzed_as_a_principal_writes_nothing_it_may_not(principal_target: Target) -> None:
    answers: Counter[str] = Counter()
    for method in served_methods(principal_target.node):
        _fuzz(principal_target, method, answers)
    assert answers["PERMISSION_DENIED_ROLE"] > 0 and answers["INVALID_ARGUMENT"] > 0, answers
