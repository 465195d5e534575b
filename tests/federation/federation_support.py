"""What the federation fault and version tests share: small trees cut from the demo tree, a node's
restart, and reading what the nodes hold through their public surface (stubs and /metrics).

The HIS side is `yidi_harness.stories` (Window, Encounter, file_for, treat); this module only adds
what a test needs around it.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from yidi.clearing.v1 import clearing_service_pb2, clearing_service_pb2_grpc, journal_pb2
from yidi.settlement.v1 import insured_settlement_service_pb2 as insured_api
from yidi.settlement.v1 import insured_settlement_service_pb2_grpc as insured_grpc
from yidi.settlement.v1 import settlement_pb2, settlement_service_pb2
from yidi.type.v1 import settlement_result_pb2
from yidi_core.codes import NATIONAL_REGION
from yidi_harness.federation import DEMO_TOPOLOGY, Federation, Topology, load_sample_data, start_federation
from yidi_harness.stories import Encounter, Patient, Stage, StoryResult, Window
from yidi_runtime.server import Node
from yidi_services.node import start_node

DatabaseFactory = Callable[[], str | None]
CALL_DEADLINE_S = 20.0


def topology(*regions: str) -> Topology:
    """The demo tree cut down to ``regions`` (in the demo's order); a node whose parent is left out has none."""
    return Topology(
        tuple(
            replace(spec, parent=spec.parent if spec.parent in regions else None)
            for spec in DEMO_TOPOLOGY.nodes
            if spec.region in regions
        )
    )


@contextmanager
def loaded_federation(
    tmp_path: Path, database_factory: DatabaseFactory, regions: tuple[str, ...], **overrides: Any
) -> Iterator[Federation]:
    """The nodes of ``regions`` started and loaded with the samples through the stubs; stopped afterwards."""
    with start_federation(topology(*regions), tmp_path, database_factory, **overrides) as federation:
        load_sample_data(federation)
        yield federation


def restart(federation: Federation, region: str) -> None:
    """Start the stopped node of ``region`` again as the same program: same port, data folder or database."""
    federation.nodes[region] = start_node(federation.nodes[region].settings)


def stage_of(federation: Federation) -> Stage:
    """Where the HIS calls play: this federation, now."""
    return Stage(federation, datetime.now(UTC))


def record_for(patient: Patient, fixmedins_code: str) -> StoryResult:
    """A blank record of one patient's visit at one institution, for stories.file_for and stories.treat."""
    return StoryResult(0, f"{patient.who} at {fixmedins_code}", patient.who, patient, fixmedins_code)


def open_visit(
    window: Window, visit: Encounter
) -> tuple[settlement_pb2.Visit, settlement_service_pb2.SettleRequest]:
    """The HIS's steps before settling (1101, 2201/2401, 2204/2301, 2402): the visit and the Settle it will send."""
    person = window.verify(visit)
    registered = window.register(visit, person)
    window.upload(visit, registered)
    if visit.inpatient:
        registered = window.discharge(visit, registered)
    return registered, window.settle_request(visit, registered, window.request_id())


def correct_settle(
    window: Window, insuplc_admdvs: str, omsgid: str
) -> settlement_service_pb2.CorrectResponse:
    """2601 for a Settle whose fate the HIS does not know."""
    return window.stub.Correct(
        settlement_service_pb2.CorrectRequest(
            request_id=window.request_id(),
            envelope=window.envelope(insuplc_admdvs),
            omsgid=omsgid,
            oinfno=settlement_service_pb2.CORRECTED_OPERATION_SETTLE,
        ),
        timeout=CALL_DEADLINE_S,
    )


def settlements_at(window: Window) -> list[settlement_pb2.Settlement]:
    """Every record (reversals included) the institution's node keeps for it."""
    return list(
        window.stub.ListSettlements(
            settlement_service_pb2.ListSettlementsRequest(
                envelope=window.envelope(), include_reversals=True, page_size=1000
            ),
            timeout=CALL_DEADLINE_S,
        ).settlements
    )


def accumulators(federation: Federation, insuplc_admdvs: str, psn_no: str, year: int) -> dict[str, int]:
    """A person's non-zero accumulators of ``year`` at the node hosting their insured region (``kind:key`` → fen)."""
    stub = insured_grpc.InsuredSettlementServiceStub(
        federation.channel(federation.host_of(insuplc_admdvs, "settlement"))
    )
    answer = stub.GetAccumulators(
        insured_api.GetAccumulatorsRequest(psn_no=psn_no, year=year),
        timeout=CALL_DEADLINE_S,
        wait_for_ready=True,
    )
    return {
        f"{kind_name(value.kind)}:{value.key}": value.value_fen
        for value in answer.accumulators
        if value.value_fen
    }


def kind_name(kind: int) -> str:
    """``ACCUMULATOR_KIND_CAP`` → ``cap``."""
    return settlement_result_pb2.AccumulatorKind.Name(kind).removeprefix("ACCUMULATOR_KIND_").lower()


def changes_of(settlement: settlement_pb2.Settlement) -> dict[str, int]:
    """A settlement's accumulator changes as ``kind:key`` → delta (the personal account aside)."""
    return {
        f"{kind_name(change.kind)}:{change.key}": change.delta_fen
        for change in settlement.result.accumulator_changes
        if change.kind != settlement_result_pb2.ACCUMULATOR_KIND_ACCOUNT and change.delta_fen
    }


def journal(federation: Federation, province: str) -> list[journal_pb2.JournalEntry]:
    """The national journal's entries of one province (insured or treatment side), one page of at most 1000."""
    stub = clearing_service_pb2_grpc.ClearingServiceStub(federation.channel(NATIONAL_REGION))
    page = stub.ListJournalEntries(
        clearing_service_pb2.ListJournalEntriesRequest(admdvs=province, page_size=1000),
        timeout=CALL_DEADLINE_S,
        wait_for_ready=True,
    )
    assert not page.next_page_token, "more journal entries than a test makes"
    return list(page.entries)


def outbox_backlog(node: Node, service: str = "settlement") -> dict[str, float]:
    """``yidi_outbox_backlog{service}`` by destination, as the node's /metrics endpoint shows it now."""
    assert node.metrics_endpoint is not None, "start the federation with metrics_port=0"
    url = f"http://{node.settings.host}:{node.metrics_endpoint.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode("utf-8")
    return {
        sample.labels["destination"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "yidi_outbox_backlog"
        for sample in family.samples
        if sample.labels.get("service") == service
    }
