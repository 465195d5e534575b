"""The audit trail itself: rows as recorded, filters, keyset pages, failures that never reach the call, append-only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import grpc
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from audit_support import NODE, REGION, Clock
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from structlog.testing import capture_logs

from yidi.catalogue.v1 import catalogue_service_pb2
from yidi.settlement.v1 import settlement_service_pb2
from yidi_core.errors import DomainError
from yidi_runtime.audit import (
    SERVICE,
    VERSIONS,
    AuditTrail,
    Base,
    mutating_methods,
)
from yidi_runtime.db import Database
from yidi_runtime.identity import DEVELOPER, parse_subject
from yidi_runtime.interceptor import request_id_of
from yidi_runtime.migrate import upgrade, version_table

SETTLEMENT = "yidi.settlement.v1.SettlementService"
FILING = "yidi.filing.v1.FilingService"
HOSPITAL = parse_subject("institution/H33040200001")
OPERATOR = parse_subject("operator/330000/zhang.wei")
NODE_CALLER = parse_subject("node/330400")
CHINA = timezone(timedelta(hours=8))


def everything(trail: AuditTrail, size: int = 0, **filters: Any) -> list[tuple[str, str]]:
    """(caller, method) of every record the filters find, through all their pages."""
    found, token = [], ""
    for _ in range(100):
        page, token = trail.list(**filters, page_size=size, page_token=token)
        found += [(entry.caller, entry.method) for entry in page]
        if not token:
            return found
    raise AssertionError("the pages never ended")


def test_a_call_reads_back_with_who_what_when_and_how_it_ended(trail: AuditTrail, clock: Clock) -> None:
    trail.record(HOSPITAL, SETTLEMENT, "Settle", "H330402000012026112509000001", grpc.StatusCode.OK, "")
    clock.advance(minutes=1)
    trail.record(
        OPERATOR,
        FILING,
        "ReviewFiling",
        "330000000000202611250901000002",
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED_REGION",
        "ipv4:10.0.0.7:53122",
    )
    clock.advance(minutes=1)
    trail.record(None, SETTLEMENT, "Settle", "", grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")

    first, second, third = trail.list()[0]
    assert first.id < second.id < third.id
    assert (first.recorded_at, first.node, first.node_region) == (
        datetime(2026, 11, 25, 1, 0, tzinfo=UTC),
        NODE,
        REGION,
    )
    assert (first.caller_role, first.caller, first.via) == (
        "institution",
        "institution/H33040200001",
        "certificate",
    )
    assert (first.service, first.method, first.request_id) == (
        SETTLEMENT,
        "Settle",
        "H330402000012026112509000001",
    )
    assert (first.grpc_code, first.reason, first.peer) == ("OK", "", "")
    assert (second.caller, second.grpc_code, second.reason) == (
        "operator/330000/zhang.wei",
        "PERMISSION_DENIED",
        "PERMISSION_DENIED_REGION",
    )
    assert second.peer == "ipv4:10.0.0.7:53122"
    assert (third.caller_role, third.caller, third.via, third.grpc_code) == ("", "", "", "UNAUTHENTICATED")
    assert third.recorded_at == datetime(2026, 11, 25, 1, 2, tzinfo=UTC)


def test_filters_by_time_caller_and_method(trail: AuditTrail, clock: Clock) -> None:
    calls = [
        (HOSPITAL, SETTLEMENT, "RegisterVisit"),
        (HOSPITAL, SETTLEMENT, "Settle"),
        (OPERATOR, FILING, "ReviewFiling"),
        (NODE_CALLER, SETTLEMENT, "Settle"),
        (DEVELOPER, FILING, "CreateFiling"),
    ]
    for principal, service, method in calls:
        trail.record(principal, service, method, "r", grpc.StatusCode.OK, "")
        clock.advance(hours=1)
    start = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)

    assert everything(trail, since=start + timedelta(hours=1), until=start + timedelta(hours=3)) == [
        ("institution/H33040200001", "Settle"),
        ("operator/330000/zhang.wei", "ReviewFiling"),
    ]
    in_china = (start + timedelta(hours=4)).astimezone(CHINA)
    assert everything(trail, since=in_china) == [("developer/developer", "CreateFiling")]
    assert [m for _, m in everything(trail, caller="yidi://institution/H33040200001")] == [
        "RegisterVisit",
        "Settle",
    ]
    assert everything(trail, caller="institution/H330402") == []
    assert [c for c, _ in everything(trail, caller="operator/")] == ["operator/330000/zhang.wei"]
    assert [c for c, _ in everything(trail, method="Settle")] == [
        "institution/H33040200001",
        "node/330400",
    ]
    assert everything(trail, method=f"/{FILING}/ReviewFiling") == [
        ("operator/330000/zhang.wei", "ReviewFiling")
    ]
    assert [m for _, m in everything(trail, method=f"{FILING}/")] == [
        "ReviewFiling",
        "CreateFiling",
    ]
    assert everything(trail, method=f"{FILING}/Settle") == []
    with pytest.raises(DomainError, match="until"):
        trail.list(since=start, until=start - timedelta(seconds=1))


def test_pages_are_keyset_pages_bound_to_their_query(trail: AuditTrail) -> None:
    for number in range(7):
        trail.record(HOSPITAL, SETTLEMENT, f"M{number}", "r", grpc.StatusCode.OK, "")
    first, token = trail.list(page_size=3)
    assert [entry.method for entry in first] == ["M0", "M1", "M2"] and token
    trail.record(HOSPITAL, SETTLEMENT, "M7", "r", grpc.StatusCode.OK, "")
    rest = []
    for _ in range(10):
        page, token = trail.list(page_size=3, page_token=token)
        rest += [entry.method for entry in page]
        if not token:
            break
    assert rest == [f"M{number}" for number in range(3, 8)]
    assert everything(trail, size=8) == everything(trail, size=1)

    _, token = trail.list(page_size=3)
    for misuse in (
        lambda: trail.list(method="Settle", page_size=3, page_token=token),
        lambda: trail.list(page_size=3, page_token="not-a-token"),
        lambda: trail.list(page_size=-1),
    ):
        with pytest.raises(DomainError) as refused:
            misuse()
        assert refused.value.reason_code == "INVALID_ARGUMENT"


def test_an_overlong_request_id_is_cut_to_fit_and_still_recorded(trail: AuditTrail) -> None:
    trail.record(
        HOSPITAL, SETTLEMENT, "Settle", "x" * 500, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"
    )
    (entry,), _ = trail.list()
    assert entry.request_id == "x" * 64 and entry.grpc_code == "INVALID_ARGUMENT"


def test_a_write_that_fails_is_logged_and_counted_never_raised(tmp_path: Path) -> None:
    unmigrated = Database.open(SERVICE, f"sqlite:///{tmp_path / 'audit.db'}")
    registry = CollectorRegistry()
    trail = AuditTrail(unmigrated, NODE, REGION, registry=registry)
    try:
        with capture_logs() as logs:
            trail.record(HOSPITAL, SETTLEMENT, "Settle", "r1", grpc.StatusCode.OK, "")
            trail.record(HOSPITAL, SETTLEMENT, "Settle", "r2", grpc.StatusCode.OK, "")
    finally:
        unmigrated.dispose()
    assert registry.get_sample_value("yidi_audit_write_failures_total") == 2
    failures = [line for line in logs if line["event"] == "audit record not written"]
    assert [(line["log_level"], line["request_id"]) for line in failures] == [
        ("error", "r1"),
        ("error", "r2"),
    ]


def test_a_started_trail_writes_queued_rows_in_the_background_and_reads_them_back(
    audit_database: Database, registry: CollectorRegistry
) -> None:
    trail = AuditTrail(audit_database, NODE, REGION, registry=registry)
    trail.start()
    try:
        for number in range(1200):  # more than one batch
            trail.record(HOSPITAL, SETTLEMENT, "Settle", f"r{number}", grpc.StatusCode.OK, "")
        page, token = trail.list(page_size=1000)  # reading writes what has queued first
        assert [entry.request_id for entry in page] == [f"r{number}" for number in range(1000)]
        assert token
        trail.record(OPERATOR, FILING, "ReviewFiling", "last", grpc.StatusCode.OK, "")
    finally:
        trail.stop(timeout_s=5)
    with audit_database.engine.connect() as connection:  # stopping wrote the rest
        assert connection.execute(text("SELECT count(*) FROM audit_records")).scalar() == 1201
    trail.record(HOSPITAL, SETTLEMENT, "Settle", "after", grpc.StatusCode.OK, "")  # stopped: written at once
    assert trail.list(page_size=1000, page_token=token)[0][-1].request_id == "after"
    assert registry.get_sample_value("yidi_audit_write_failures_total") == 0


@pytest.fixture
def unmigrated_trail(
    tmp_path: Path, empty_database_url: str | None, registry: CollectorRegistry
) -> Iterator[tuple[Database, AuditTrail]]:
    """A started trail on a database without its table yet (SQLite: no such table, an OperationalError;
    PostgreSQL: an undefined table, which the trail must tell from a bad row); stopped and closed afterwards."""
    database = Database.open(SERVICE, empty_database_url or f"sqlite:///{tmp_path / 'audit.db'}")
    trail = AuditTrail(database, NODE, REGION, registry=registry)
    trail.start()
    yield database, trail
    trail.stop(timeout_s=5)
    database.dispose()


def test_rows_wait_for_a_database_that_refuses_them_and_are_written_once_it_answers(
    unmigrated_trail: tuple[Database, AuditTrail], registry: CollectorRegistry
) -> None:
    database, trail = unmigrated_trail
    trail.record(HOSPITAL, SETTLEMENT, "Settle", "r1", grpc.StatusCode.OK, "")
    assert not trail.flush(timeout_s=0.3)  # no table yet: the row waits
    upgrade(database, VERSIONS, Base.metadata)
    assert trail.flush(timeout_s=10)
    assert [entry.request_id for entry in trail.list()[0]] == ["r1"]
    assert registry.get_sample_value("yidi_audit_write_failures_total") == 0
    assert registry.get_sample_value("yidi_audit_dead_letters_total") == 0  # waited, not taken for a bad row


def test_rows_still_unwritten_when_the_trail_stops_are_logged_and_counted(
    unmigrated_trail: tuple[Database, AuditTrail], registry: CollectorRegistry
) -> None:
    _, trail = unmigrated_trail
    with capture_logs() as logs:
        trail.record(HOSPITAL, SETTLEMENT, "Settle", "r1", grpc.StatusCode.OK, "")
        trail.record(HOSPITAL, SETTLEMENT, "Settle", "r2", grpc.StatusCode.OK, "")
        trail.flush(timeout_s=0.3)
        trail.stop(timeout_s=5)
    assert registry.get_sample_value("yidi_audit_write_failures_total") == 2
    assert sorted(line["request_id"] for line in logs if line["event"] == "audit record not written") == [
        "r1",
        "r2",
    ]


def test_the_model_matches_its_migration(audit_database: Database) -> None:
    with audit_database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": version_table(SERVICE)})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


@pytest.mark.postgres
def test_postgresql_refuses_to_rewrite_history(postgres_url: str, registry: CollectorRegistry) -> None:
    database = Database.open(SERVICE, postgres_url)
    try:
        upgrade(database, VERSIONS, Base.metadata)
        trail = AuditTrail(database, NODE, REGION, registry=registry)
        trail.record(HOSPITAL, SETTLEMENT, "Settle", "r1", grpc.StatusCode.OK, "")
        for statement in (
            "UPDATE audit_records SET grpc_code = 'OK', reason = ''",
            "DELETE FROM audit_records",
            "TRUNCATE audit_records",
        ):
            with pytest.raises(DBAPIError, match="append-only"), database.engine.begin() as connection:
                connection.execute(text(statement))
        (entry,), _ = trail.list()
        assert (entry.request_id, entry.grpc_code) == ("r1", "OK")
        trail.record(OPERATOR, FILING, "ReviewFiling", "r2", grpc.StatusCode.OK, "")
        assert len(trail.list()[0]) == 2
    finally:
        database.dispose()


def test_mutating_methods_are_those_whose_request_carries_a_request_id() -> None:
    found = mutating_methods(
        [
            settlement_service_pb2.DESCRIPTOR.services_by_name["SettlementService"].full_name,
            catalogue_service_pb2.DESCRIPTOR.services_by_name["CatalogueService"].full_name,
        ]
    )
    assert {f"/{SETTLEMENT}/Settle", f"/{SETTLEMENT}/RegisterVisit", f"/{SETTLEMENT}/Correct"} <= found
    assert "/yidi.catalogue.v1.CatalogueService/ImportCatalogue" in found  # its header carries the id
    for reading in ("GetSettlement", "PreSettle", "VerifyPerson", "ListSettlements"):
        assert f"/{SETTLEMENT}/{reading}" not in found
    assert "/yidi.catalogue.v1.CatalogueService/LookupItems" not in found
    assert mutating_methods(["yidi.audit.v1.AuditService"]) == frozenset()


def test_request_id_of_reads_the_top_or_the_stream_header() -> None:
    assert request_id_of(settlement_service_pb2.SettleRequest(request_id="m1")) == "m1"
    header = catalogue_service_pb2.ImportCatalogueHeader(request_id="m2")
    assert request_id_of(catalogue_service_pb2.ImportCatalogueRequest(header=header)) == "m2"
    assert request_id_of(catalogue_service_pb2.ImportCatalogueRequest(csv_chunk=b"a,b")) == ""
    assert request_id_of(settlement_service_pb2.GetSettlementRequest(setl_id="s")) == ""
