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

from collections import Counter
from collections.abc import Iterator

import pytest
import structlog
from conftest import HEBEI, _database, _file_retiree
from fuzz_support import AuditTail, TableDigests, Target, fuzz_method, served_methods

from yidi_harness.federation import Federation, NodeSpec, Topology, load_sample_data
from yidi_runtime.config import Peer, Role
from yidi_runtime.logs import configure_logging
from yidi_services.node import start_node
from yidi_testing import settings_for

PRINCIPALS = {"hospital": "institution/H13010500001", "child-node": "node/130100"}
"""The child is Shijiazhuang's node (never started): Langfang, whose samples the node holds, stays its own."""
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
            children=[Peer("130100", "127.0.0.1:9")],
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


@pytest.mark.postgres
def test_every_rpc_fuzzed_as_a_principal_writes_nothing_it_may_not(principal_target: Target) -> None:
    answers: Counter[str] = Counter()
    for method in served_methods(principal_target.node):
        answers += fuzz_method(principal_target, method, EXAMPLES)
    assert answers["PERMISSION_DENIED_ROLE"] > 0 and answers["INVALID_ARGUMENT"] > 0, answers
