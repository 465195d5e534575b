"""Registry changes and suspension notices propagate through the registry outbox, with no manual sync.

One federation per database for the module: national, Zhejiang, its city Jiaxing (the
treatment node of H33040200001, which keeps Zhejiang's institution checks for 30 s) and
Guangdong, where the Shenzhen patients are insured. Every wait is bounded (``eventually``).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from federation.federation_support import open_visit, stage_of, topology
from prometheus_client.parser import text_string_to_metric_families
from registry_builders import INPATIENT, hospital, refusal, register, request_id, service, stub

from yidi.registry.v1 import institution_pb2 as pb
from yidi.registry.v1 import institution_registry_service_pb2 as api
from yidi.registry.v1 import institution_registry_service_pb2_grpc as api_grpc
from yidi.settlement.v1 import settlement_pb2
from yidi_core.codes import NATIONAL_REGION
from yidi_harness.federation import Federation, Topology, load_sample_data, region_operator, start_federation
from yidi_harness.polling import eventually
from yidi_harness.postgres_server import fresh_databases
from yidi_harness.stories import BillLine, Encounter, Window, refusal_reason
from yidi_runtime.identity import CallerRole, Principal
from yidi_runtime.wire import timestamp_message

ZHEJIANG, JIAXING, GUANGDONG, SHENZHEN = "330000", "330400", "440000", "440300"
HOSPITAL = "H33040200001"
PATH = (NATIONAL_REGION, ZHEJIANG, JIAXING)
"""The nodes where the Jiaxing hospital settles, from the national node down to its city."""
WAIT_S = 15.0
BILL = (BillLine("001102000010000", "床位费", "1", "60.00"),)
WAITED = (AssertionError, grpc.RpcError)


@dataclass
class Tree:
    federation: Federation
    window: Window
    visits: list[tuple[Encounter, settlement_pb2.Visit]]

    def registry(
        self, region: str, as_operator_of: str | None = None
    ) -> api_grpc.InstitutionRegistryServiceStub:
        return stub(self.federation.channel(region, region_operator(as_operator_of or region)))

    def settle(self, visit: int) -> str:
        """Settle one of the open visits: 'OK' or the refusal's reason."""
        stay, registered = self.visits[visit]
        try:
            self.window.settle(self.window.settle_request(stay, registered, self.window.request_id()))
        except grpc.RpcError as error:
            return refusal_reason(error)
        return "OK"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def tree(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    regions = topology(NATIONAL_REGION, ZHEJIANG, JIAXING, GUANGDONG)
    data = tmp_path_factory.mktemp("propagation")
    if request.param == "sqlite":
        yield from _started(regions, data, lambda: None)
        return
    server, template = (
        request.getfixturevalue("postgres_server"),
        request.getfixturevalue("migrated_template"),
    )
    with fresh_databases(server, "yidi_propagation", template) as create:
        yield from _started(regions, data, create)


def _started(regions: Topology, data: Path, databases: Callable[[], str | None]) -> Iterator[Tree]:
    with start_federation(regions, data, databases, metrics_port=0) as federation:
        load_sample_data(federation)
        stage = stage_of(federation)
        window = stage.window(HOSPITAL)
        visits = []
        for patient in stage.enrol_and_file(SHENZHEN, JIAXING, 3, 700, "propagation test"):
            stay = Encounter(
                patient=patient,
                fixmedins_code=HOSPITAL,
                med_type="21",
                service_date=stage.today,
                begin_time=stage.earlier_today(2),
                end_time=stage.now,
                diagnoses=("I21.000",),
                bill=BILL,
            )
            visits.append((stay, open_visit(window, stay)[0]))
        yield Tree(federation, window, visits)


def lag_count(federation: Federation, region: str, kind: str) -> float:
    """How many changes ``region`` observed in ``yidi_registry_propagation_lag_seconds{kind}`` (its /metrics)."""
    node = federation.nodes[region]
    assert node.metrics_endpoint is not None
    with urllib.request.urlopen(
        f"http://{node.settings.host}:{node.metrics_endpoint.port}/metrics", timeout=10
    ) as page:
        text = page.read().decode("utf-8")
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "yidi_registry_propagation_lag_seconds"
        for sample in family.samples
        if sample.name.endswith("_count") and sample.labels.get("kind") == kind
    )


def version_at(tree: Tree, region: str, code: str) -> int:
    answer = tree.registry(region).GetInstitution(api.GetInstitutionRequest(fixmedins_code=code), timeout=10)
    return answer.institution.version


def notice_for(code: str, region: str) -> pb.Suspension:
    now = datetime.now(UTC)
    return pb.Suspension(
        fixmedins_code=code,
        start_time=timestamp_message(now - timedelta(hours=1)),
        end_time=timestamp_message(now + timedelta(days=1)),
        reason=f"system upgrade announced by {region}",
        publisher=f"operators of {region}",
    )


def publish(tree: Tree, region: str) -> str:
    notice = notice_for(HOSPITAL, region)
    answer = tree.registry(region).PublishSuspension(
        api.PublishSuspensionRequest(request_id=request_id(), suspension=notice), timeout=10
    )
    assert answer.suspension.origin_admdvs == region
    return answer.suspension.suspension_id


def revoke(tree: Tree, region: str, suspension_id: str, as_operator_of: str | None = None) -> None:
    tree.registry(region, as_operator_of).RevokeSuspension(
        api.RevokeSuspensionRequest(request_id=request_id(), suspension_id=suspension_id), timeout=10
    )


def held_everywhere(tree: Tree, suspension_id: str, revoked: bool) -> None:
    """Wait until every node on the hospital's path holds the notice, in that state."""

    def states() -> dict[str, bool | None]:
        found = {}
        for region in PATH:
            listed = tree.registry(region).ListSuspensions(
                api.ListSuspensionsRequest(fixmedins_code=HOSPITAL, include_revoked=True), timeout=10
            )
            found[region] = next(
                (n.revoked for n in listed.suspensions if n.suspension_id == suspension_id), None
            )
        assert found == dict.fromkeys(PATH, revoked), found
        return found

    eventually(states, within_s=WAIT_S, what=f"notice {suspension_id} revoked={revoked} at {PATH}")


def test_institutions_registered_at_a_province_and_a_city_reach_the_national_node_without_sync(
    tree: Tree,
) -> None:
    register(tree.registry(ZHEJIANG), hospital("H33010200077", service(INPATIENT)))
    register(tree.registry(JIAXING), hospital("H33040200077", service(INPATIENT)))
    changed = hospital("H33040200077", service(INPATIENT), fixmedins_name="renamed in Jiaxing")
    tree.registry(JIAXING).UpdateInstitution(
        api.UpdateInstitutionRequest(request_id=request_id(), institution=changed), timeout=10
    )
    eventually(
        lambda: (
            (
                version_at(tree, NATIONAL_REGION, "H33010200077"),
                version_at(tree, NATIONAL_REGION, "H33040200077"),
            )
            == (1, 2)
        ),
        within_s=WAIT_S,
        what="both registrations, and the city's update, at the national node",
        retrying=WAITED,
    )
    assert version_at(tree, ZHEJIANG, "H33040200077") == 2
    assert lag_count(tree.federation, NATIONAL_REGION, "institution") >= 2
    pushed = tree.registry(JIAXING).PushInstitutions(api.PushInstitutionsRequest(request_id=request_id()))
    assert (pushed.parent_admdvs, pushed.sent_count) == (ZHEJIANG, 0), (
        "the outbox acknowledged what it delivered"
    )


def test_a_notice_published_at_the_national_node_stops_settlement_at_the_city_until_revoked(
    tree: Tree,
) -> None:
    assert tree.settle(0) == "OK"  # Jiaxing now keeps Zhejiang's positive answer for 30 s

    suspension_id = publish(tree, NATIONAL_REGION)
    held_everywhere(tree, suspension_id, revoked=False)
    assert tree.settle(1) == "INSTITUTION_SUSPENDED"
    assert lag_count(tree.federation, JIAXING, "suspension") >= 1

    with pytest.raises(grpc.RpcError) as not_theirs:
        revoke(tree, JIAXING, suspension_id)
    assert refusal(not_theirs.value)[0] == "PERMISSION_DENIED_REGION"

    revoke(tree, NATIONAL_REGION, suspension_id)
    held_everywhere(tree, suspension_id, revoked=True)
    assert tree.settle(1) == "OK"


def test_a_notice_published_at_the_city_stops_settlement_there_and_reaches_the_province_and_national(
    tree: Tree,
) -> None:
    suspension_id = publish(tree, JIAXING)
    assert tree.settle(2) == "INSTITUTION_SUSPENDED"  # at once: the city reads its own notices
    held_everywhere(tree, suspension_id, revoked=False)

    revoke(tree, ZHEJIANG, suspension_id)  # an operator of a region covering the publishing node
    held_everywhere(tree, suspension_id, revoked=True)
    assert tree.settle(2) == "OK"


@pytest.mark.parametrize(
    ("code", "origin", "suspension_id", "reason"),
    [
        (
            HOSPITAL,
            NATIONAL_REGION,
            "ab12",
            "PERMISSION_DENIED_REGION",
        ),  # not published in the city's subtree
        ("H13010500001", JIAXING, "ab12", "PERMISSION_DENIED_REGION"),  # a notice outside Zhejiang
        (HOSPITAL, JIAXING, "not hex", "INVALID_ARGUMENT"),
    ],
)
def test_a_child_passes_on_only_well_formed_notices_published_in_its_own_subtree(
    tree: Tree, code: str, origin: str, suspension_id: str, reason: str
) -> None:
    notice = notice_for(code, origin)
    notice.suspension_id, notice.origin_admdvs = suspension_id, origin
    city = stub(tree.federation.channel(ZHEJIANG, Principal(CallerRole.NODE, JIAXING, JIAXING)))
    with pytest.raises(grpc.RpcError) as refused:
        city.SyncSuspension(
            api.SyncSuspensionRequest(
                request_id=f"{suspension_id}:publish",
                source_admdvs=JIAXING,
                suspension=notice,
                changed_at=timestamp_message(datetime.now(UTC)),
            ),
            timeout=10,
        )
    assert refusal(refused.value)[0] == reason
    listed = tree.registry(ZHEJIANG).ListSuspensions(
        api.ListSuspensionsRequest(fixmedins_code=code, include_revoked=True), timeout=10
    )
    assert suspension_id not in {n.suspension_id for n in listed.suspensions}
