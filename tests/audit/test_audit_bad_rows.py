"""A row the database refuses never stalls the trail: it is stored escaped or dead-lettered, and
everything behind it is written (SQLite and PostgreSQL).

The database here refuses rows by a trigger the test adds, as a database with a stricter
schema or encoding would: request ids starting ``poison`` whatever they hold, and request
ids that are not plain ASCII.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from audit_support import NODE, REGION
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from structlog.testing import capture_logs

from yidi_runtime.audit import AuditTrail
from yidi_runtime.db import Database
from yidi_runtime.identity import parse_subject

HOSPITAL = parse_subject("institution/H33040200001")
SETTLEMENT = "yidi.settlement.v1.SettlementService"
_REFUSES = "NEW.request_id LIKE 'poison%'"
_TRIGGERS = {
    "sqlite": [
        "CREATE TRIGGER refuse_rows BEFORE INSERT ON audit_records "
        f"WHEN {_REFUSES} OR length(CAST(NEW.request_id AS BLOB)) <> length(NEW.request_id) "
        "BEGIN SELECT RAISE(ABORT, 'row refused'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_rows() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF {_REFUSES} OR octet_length(NEW.request_id) <> char_length(NEW.request_id) THEN "
        "RAISE EXCEPTION 'row refused' USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER refuse_rows BEFORE INSERT ON audit_records "
        "FOR EACH ROW EXECUTE FUNCTION refuse_rows()",
    ],
}


@pytest.fixture
def strict_database(audit_database: Database) -> Database:
    """The trail's database, refusing poison and non-ASCII request ids."""
    with audit_database.engine.begin() as connection:
        for statement in _TRIGGERS[audit_database.dialect]:
            connection.execute(text(statement))
    return audit_database


@pytest.fixture
def started(strict_database: Database, registry: CollectorRegistry) -> Iterator[AuditTrail]:
    trail = AuditTrail(strict_database, NODE, REGION, registry=registry)
    trail.start()
    yield trail
    trail.stop(timeout_s=5)


def request_ids(trail: AuditTrail) -> list[str]:
    found, token = [], ""
    while True:
        page, token = trail.list(page_size=1000, page_token=token)
        found += [entry.request_id for entry in page]
        if not token:
            return found


def test_a_refused_row_is_dead_lettered_and_every_row_behind_it_is_written(
    started: AuditTrail, registry: CollectorRegistry
) -> None:
    sent = [f"r{number}" for number in range(1200)]  # more than two batches
    sent[3], sent[700], sent[701] = "poison-1", "poison-2", "poison-3"
    with capture_logs() as logs:
        for request_id in sent:
            started.record(HOSPITAL, SETTLEMENT, "Settle", request_id, grpc.StatusCode.OK, "")
        assert started.flush(timeout_s=30)

    assert request_ids(started) == [request_id for request_id in sent if not request_id.startswith("poison")]
    assert registry.get_sample_value("yidi_audit_dead_letters_total") == 3
    assert registry.get_sample_value("yidi_audit_write_failures_total") == 0
    dead = [line for line in logs if line["event"] == "audit record dead-lettered"]
    assert [(line["log_level"], line["audit_request_id"]) for line in dead] == [
        ("error", "poison-1"),
        ("error", "poison-2"),
        ("error", "poison-3"),
    ]
    assert (dead[0]["audit_caller"], dead[0]["audit_method"], dead[0]["audit_grpc_code"]) == (
        "institution/H33040200001",
        "Settle",
        "OK",
    )
    assert "row refused" in dead[0]["refusal"]


def test_a_row_whose_text_is_refused_is_stored_escaped_in_its_place(
    started: AuditTrail, registry: CollectorRegistry
) -> None:
    for request_id in ("r1", "挂号-0001", "r3"):
        started.record(HOSPITAL, SETTLEMENT, "RegisterVisit", request_id, grpc.StatusCode.OK, "")
    assert started.flush(timeout_s=30)
    assert request_ids(started) == ["r1", "\\u6302\\u53f7-0001", "r3"]
    assert registry.get_sample_value("yidi_audit_dead_letters_total") == 0


def test_a_trail_never_started_dead_letters_a_refused_row_without_raising(
    strict_database: Database, registry: CollectorRegistry
) -> None:
    trail = AuditTrail(strict_database, NODE, REGION, registry=registry)
    trail.record(HOSPITAL, SETTLEMENT, "Settle", "poison", grpc.StatusCode.OK, "")
    trail.record(HOSPITAL, SETTLEMENT, "Settle", "r2", grpc.StatusCode.OK, "")
    assert request_ids(trail) == ["r2"]
    assert registry.get_sample_value("yidi_audit_dead_letters_total") == 1


def test_control_characters_are_kept_escaped_alike_on_every_backend(trail: AuditTrail) -> None:
    """PostgreSQL refuses NUL in text and SQLite stores it: the trail stores neither raw."""
    trail.record(HOSPITAL, SETTLEMENT, "Settle", "r\x00\x1b[2J\x9b", grpc.StatusCode.INVALID_ARGUMENT, "")
    trail.record(HOSPITAL, SETTLEMENT, "Settle", "\x00" * 64, grpc.StatusCode.INVALID_ARGUMENT, "")
    first, second = trail.list()[0]
    assert first.request_id == "r\\x00\\x1b[2J\\x9b"
    assert second.request_id == "\\x00" * 16  # escaped, then cut to the column
