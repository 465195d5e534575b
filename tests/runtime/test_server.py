"""A real node through generated stubs: health, reflection, metrics, error mapping, logs, shutdown."""

from __future__ import annotations

import io
import json
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from yidi.filing.v1 import filing_service_pb2, filing_service_pb2_grpc, insured_person_pb2
from yidi_core.errors import invalid
from yidi_runtime.logs import configure_logging, get_logger
from yidi_runtime.server import create_server
from yidi_runtime.service import ServiceContext, ServiceGroup
from yidi_services.node import GROUPS, start_node
from yidi_testing import error_details, health_of, settings_for

ALL_SERVICES = {
    "yidi.filing.v1.FilingService",
    "yidi.registry.v1.InstitutionRegistryService",
    "yidi.catalogue.v1.CatalogueService",
    "yidi.catalogue.v1.PolicyService",
    "yidi.settlement.v1.SettlementService",
    "yidi.settlement.v1.InsuredSettlementService",
    "yidi.clearing.v1.ClearingService",
}


def test_every_service_reports_serving_once_its_database_answers(channel: grpc.Channel) -> None:
    for service in ["", *ALL_SERVICES]:
        assert health_of(channel, service) == health_pb2.HealthCheckResponse.SERVING, service


def test_reflection_lists_every_service(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    listed = {service.name for response in responses for service in response.list_services_response.service}
    assert listed >= ALL_SERVICES | {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}


class _ScriptedFiling(filing_service_pb2_grpc.FilingServiceServicer):
    """A test servicer whose methods fail in the ways the interceptor must translate."""

    def GetFiling(self, request: Any, context: grpc.ServicerContext) -> Any:
        raise invalid("INVALID_CODE", "filing_id", "must be 30 characters", metadata={"value_length": "3"})

    def ListFilings(self, request: Any, context: grpc.ServicerContext) -> Any:
        raise RuntimeError("driver exploded at 10.0.0.7 with secret token")

    def ListPendingReviews(self, request: Any, context: grpc.ServicerContext) -> Any:
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

    def GetInsuredPerson(self, request: Any, context: grpc.ServicerContext) -> Any:
        if request.person.psn_no == "burn":  # spend at least 50 ms of this thread's CPU
            started = time.thread_time()
            while time.thread_time() - started < 0.05:
                pass
        else:
            time.sleep(0.3)  # waiting is not CPU
        return filing_service_pb2.GetInsuredPersonResponse()

    def CreateFiling(self, request: Any, context: grpc.ServicerContext) -> Any:
        get_logger().info("application received", certno="11010519491231002X", note="id 11010519491231002X")
        raise invalid("NOT_FILED", "treatment_region", "no filing")


def scripted_group(tmp: ServiceGroup) -> ServiceGroup:
    def register(server: grpc.Server, _context: ServiceContext) -> Sequence[str]:
        filing_service_pb2_grpc.add_FilingServiceServicer_to_server(_ScriptedFiling(), server)
        return ["yidi.filing.v1.FilingService"]

    return ServiceGroup(tmp.name, tmp.metadata, tmp.versions, register)


@pytest.fixture
def scripted(
    tmp_path: Path,
) -> Iterator[tuple[filing_service_pb2_grpc.FilingServiceStub, Callable[[], list[dict]]]]:
    logs = io.StringIO()
    configure_logging("info", "json", logs)
    started = create_server(settings_for(tmp_path, services="filing"), [scripted_group(GROUPS["filing"])])
    channel = grpc.insecure_channel(started.address)

    def lines() -> list[dict]:
        return [json.loads(line) for line in logs.getvalue().splitlines() if line.strip()]

    yield filing_service_pb2_grpc.FilingServiceStub(channel), lines
    channel.close()
    started.stop(0)
    configure_logging("info", "json", io.StringIO())


def test_domain_error_becomes_status_with_error_info_and_field_violation(scripted: Any) -> None:
    stub, _ = scripted
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetFiling(filing_service_pb2.GetFilingRequest(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error_details(caught.value)
    info = details["ErrorInfo"]
    assert (info.reason, info.domain, dict(info.metadata)) == ("INVALID_CODE", "yidi", {"value_length": "3"})
    violation = details["BadRequest"].field_violations[0]
    assert (violation.field, violation.description) == ("filing_id", "must be 30 characters")
    assert details["LocalizedMessage"].locale == "zh-CN"


def test_unexpected_exception_becomes_internal_and_is_logged_once(scripted: Any) -> None:
    stub, lines = scripted
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListFilings(filing_service_pb2.ListFilingsRequest(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (caught.value.details() or "")
    assert error_details(caught.value)["ErrorInfo"].reason == "INTERNAL"
    unhandled = [line for line in lines() if line["event"] == "unhandled exception"]
    assert len(unhandled) == 1 and "RuntimeError" in unhandled[0]["exception"]


def test_a_database_that_went_away_is_unavailable_so_the_caller_retries(scripted: Any) -> None:
    stub, lines = scripted
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListPendingReviews(filing_service_pb2.ListPendingReviewsRequest(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_details(caught.value)["ErrorInfo"].reason == "DATABASE_UNAVAILABLE"
    assert "closed the connection" not in (caught.value.details() or "")
    assert [line["event"] for line in lines() if line["event"] == "database unavailable"] == [
        "database unavailable"
    ]


def test_one_canonical_log_line_per_rpc_with_personal_ids_masked(scripted: Any) -> None:
    stub, lines = scripted
    request_id = "H33040100011202611240930000001"
    with pytest.raises(grpc.RpcError):
        stub.CreateFiling(filing_service_pb2.CreateFilingRequest(request_id=request_id), timeout=5)
    rpc_lines = [line for line in lines() if line["event"] == "rpc"]
    assert len(rpc_lines) == 1
    line = rpc_lines[0]
    assert line["grpc_method"] == "CreateFiling"
    assert line["grpc_service"] == "yidi.filing.v1.FilingService"
    assert line["grpc_code"] == "FAILED_PRECONDITION" and line["reason"] == "NOT_FILED"
    assert line["request_id"] == request_id and line["node"] == "province-110000"
    assert line["duration_ms"] >= 0 and line["level"] == "info" and line["timestamp"].endswith("Z")
    text_of_logs = json.dumps(lines(), ensure_ascii=False)
    assert "11010519491231002X" not in text_of_logs
    assert "110105********002X" in text_of_logs


@pytest.mark.postgres
def test_health_follows_the_database(tmp_path: Path, postgres_url: str) -> None:
    started = start_node(settings_for(tmp_path, postgres_url, auto_migrate=True, services="registry"))
    try:
        with grpc.insecure_channel(started.address) as channel:
            service = "yidi.registry.v1.InstitutionRegistryService"
            assert health_of(channel, service) == health_pb2.HealthCheckResponse.SERVING
            base, name = postgres_url.rsplit("/", 1)
            admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
                connection.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                    {"n": name},
                )
            started.check_health()
            assert health_of(channel, service) == health_pb2.HealthCheckResponse.NOT_SERVING
            assert health_of(channel, "") == health_pb2.HealthCheckResponse.NOT_SERVING
            with admin.connect() as connection:
                connection.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
            admin.dispose()
            started.check_health()
            assert health_of(channel, service) == health_pb2.HealthCheckResponse.SERVING
    finally:
        started.stop(0)


def test_stop_refuses_new_calls(tmp_path: Path) -> None:
    started = start_node(settings_for(tmp_path, services="clearing"))
    address = started.address
    started.stop(1)
    started.stop(1)
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as caught:
        health_of(channel, "")
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_services_see_the_port_the_node_bound_so_they_can_call_their_own_node(tmp_path: Path) -> None:
    seen: list[int] = []
    group = GROUPS["clearing"]

    def register(server: grpc.Server, context: ServiceContext) -> Sequence[str]:
        seen.append(context.settings.grpc_port)
        return group.register(server, context)

    started = create_server(
        settings_for(tmp_path, services="clearing"),
        [ServiceGroup(group.name, group.metadata, group.versions, register)],
    )
    try:
        assert seen == [started.port] and started.port != 0
    finally:
        started.stop(0)


def test_unimplemented_method_says_so_and_is_counted_in_metrics(tmp_path: Path) -> None:
    # Every real service implements all its methods; the scripted filing servicer leaves
    # CheckEligibility to the generated base, as a service mid-development would.
    started = create_server(settings_for(tmp_path, services="filing"), [scripted_group(GROUPS["filing"])])
    try:
        with grpc.insecure_channel(started.address) as channel:
            stub = filing_service_pb2_grpc.FilingServiceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.CheckEligibility(filing_service_pb2.CheckEligibilityRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert error_details(caught.value)["ErrorInfo"].reason == "NOT_IMPLEMENTED"

        assert started.metrics_endpoint is not None
        url = f"http://127.0.0.1:{started.metrics_endpoint.port}/metrics"
        exposition = urllib.request.urlopen(url, timeout=5).read().decode()
    finally:
        started.stop(0)
    labels = 'grpc_method="CheckEligibility",grpc_service="yidi.filing.v1.FilingService",grpc_type="unary"'
    assert f'grpc_server_handled_total{{grpc_code="UNIMPLEMENTED",{labels}}} 1.0' in exposition
    assert f"grpc_server_started_total{{{labels}}} 1.0" in exposition
    assert f"grpc_server_handling_seconds_count{{{labels}}} 1.0" in exposition
    # Methods never called are exposed at zero so dashboards show them from the start.
    assert 'grpc_method="ReviewFiling",grpc_service="yidi.filing.v1.FilingService"' in exposition
    assert 'yidi_service_serving{grpc_service="yidi.filing.v1.FilingService"} 1.0' in exposition


def test_the_cpu_a_handler_spends_is_counted_by_method(tmp_path: Path) -> None:
    started = create_server(settings_for(tmp_path, services="filing"), [scripted_group(GROUPS["filing"])])

    def cpu_seconds() -> float:
        value = started.metrics.registry.get_sample_value(
            "yidi_rpc_cpu_seconds_total",
            {"grpc_service": "yidi.filing.v1.FilingService", "grpc_method": "GetInsuredPerson"},
        )
        return float(value if value is not None else -1.0)

    def lookup(psn_no: str) -> filing_service_pb2.GetInsuredPersonRequest:
        return filing_service_pb2.GetInsuredPersonRequest(
            person=insured_person_pb2.PersonLookup(psn_no=psn_no)
        )

    try:
        assert cpu_seconds() == 0.0  # exposed from the start
        with grpc.insecure_channel(started.address) as channel:
            stub = filing_service_pb2_grpc.FilingServiceStub(channel)
            stub.GetInsuredPerson(lookup("burn"), timeout=5)
            burnt = cpu_seconds()
            stub.GetInsuredPerson(lookup("wait"), timeout=5)
            waited = cpu_seconds() - burnt
    finally:
        started.stop(0)
    assert 0.05 <= burnt < 1.0
    assert waited < 0.15  # 300 ms asleep and a few milliseconds of work
