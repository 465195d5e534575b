"""A discrepancy's side records as versioned JSON documents: the codec, and the migration off the old bytes.

A snapshot must give back exactly the record it was made of (a repair replays the
treatment node's record from it), survive the trip through JSON that the database makes,
and say its version; clearing_0007 must turn every record stored as ``SettlementRecord``
bytes into that document, on SQLite and PostgreSQL, and its downgrade give the bytes back.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from yidi.settlement.v1 import insured_settlement_service_pb2 as settlement_api
from yidi_runtime.db import Database, service_url
from yidi_runtime.migrate import downgrade, upgrade
from yidi_services.clearing.reconciliation import convert, snapshots
from yidi_services.node import GROUPS
from yidi_testing import settings_for

SettlementRecord = settlement_api.SettlementRecord
INT64 = st.integers(-(2**63), 2**63 - 1)
HOLD_STATES = st.sampled_from(
    [
        settlement_api.HOLD_STATE_UNSPECIFIED,
        settlement_api.HOLD_STATE_HELD,
        settlement_api.HOLD_STATE_CONFIRMED,
        settlement_api.HOLD_STATE_VOIDED,
    ]
)
# Timestamp's range: 0001-01-01 to 9999-12-31, to the nanosecond.
MOMENTS = st.builds(
    Timestamp,
    seconds=st.integers(-62_135_596_800, 253_402_300_799),
    nanos=st.integers(0, 999_999_999),
)


FIELDS = {
    FieldDescriptor.TYPE_STRING: st.text(max_size=40),
    FieldDescriptor.TYPE_INT64: INT64,
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_ENUM: HOLD_STATES,
    FieldDescriptor.TYPE_MESSAGE: st.none() | MOMENTS,
}


@st.composite
def records(draw: st.DrawFn) -> SettlementRecord:
    """Any record a side may state, every field of the message drawn (a field the codec forgot fails)."""
    record = SettlementRecord()
    for field in SettlementRecord.DESCRIPTOR.fields:
        value = draw(FIELDS[field.type])
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if value is not None:
                getattr(record, field.name).CopyFrom(value)
        else:
            setattr(record, field.name, value)
    return record


def treatment_record() -> SettlementRecord:
    """A treatment node's record of a cross-province settlement, as ListSettlementRecords states it."""
    record = SettlementRecord(
        msgid="H33040100011202605201030000001",
        setl_id="330000SETL00000000000000000001",
        insuplc_admdvs="630102",
        mdtrtarea_admvs="330402",
        fixmedins_code="H33040100011",
        psn_no="630000000000000000000000000001",
        insutype="310",
        clr_type="11",
        medfee_sumamt_fen=12_345,
        fund_pay_sumamt_fen=8_642,
        acct_pay_fen=1_000,
        psn_cash_pay_fen=2_703,
        mdtrt_id="330000MDTR00000000000000000001",
    )
    record.record_time.FromDatetime(datetime(2026, 5, 20, 2, 30, 0, 123_456, tzinfo=UTC))
    return record


@given(records())
def test_a_snapshot_gives_back_its_record_through_json(record: SettlementRecord) -> None:
    document = snapshots.document(record)
    stored = json.loads(json.dumps(document))
    assert stored == document
    assert snapshots.record(stored) == record
    assert snapshots.record(stored).SerializeToString(deterministic=True) == record.SerializeToString(
        deterministic=True
    )


def test_a_snapshot_is_a_readable_document_with_its_version() -> None:
    document = snapshots.document(treatment_record())
    assert document["v"] == snapshots.VERSION == 1
    assert (document["medfee_sumamt_fen"], document["fund_pay_sumamt_fen"]) == (12_345, 8_642)
    assert document["record_time"] == "2026-05-20T02:30:00.123456Z"
    assert datetime.fromisoformat(document["record_time"]) == datetime(2026, 5, 20, 2, 30, 0, 123_456, UTC)
    assert (document["hold_state"], document["reversed"]) == ("", False)
    confirmed = SettlementRecord(hold_state=settlement_api.HOLD_STATE_CONFIRMED)
    assert snapshots.document(confirmed)["hold_state"] == "confirmed"
    assert snapshots.document(confirmed)["record_time"] is None


@pytest.mark.parametrize(
    "document",
    [{**snapshots.document(SettlementRecord()), "v": 2}, {"v": 1}, {"msgid": "x"}],
    ids=["newer version", "fields missing", "no version"],
)
def test_a_snapshot_this_code_cannot_read_is_refused_not_guessed(document: dict[str, object]) -> None:
    with pytest.raises(snapshots.UnknownSnapshot):
        snapshots.record(document)


LEGACY_ROW = text(
    "INSERT INTO clearing_reconciliation_discrepancies (discrepancy_id, run_id, kind, msgid, setl_id, day, "
    "insured_province, treatment_province, insutype, treatment_node, insured_node, treatment_record, "
    "national_record, insured_record, reverses_msgid, repaired, repair_note, created_at) VALUES "
    "('RC1-d', 'RC1', 'missing_at_national', 'H33040100011|H33040100011202605201030000001', "
    "'330000SETL00000000000000000001', :day, '630000', '330000', '310', '330000', '630000', :treatment, "
    "NULL, :insured, '', :repaired, '', :now)"
)


def test_the_migration_turns_stored_records_into_documents_and_back(
    tmp_path: Path, empty_database_url: str | None
) -> None:
    group = GROUPS["clearing"]
    database = Database.open("clearing", service_url(settings_for(tmp_path, empty_database_url), "clearing"))
    treatment = treatment_record()
    insured = SettlementRecord()
    insured.CopyFrom(treatment)
    insured.hold_state = settlement_api.HOLD_STATE_HELD
    legacy = {
        "treatment": treatment.SerializeToString(deterministic=True),
        "insured": insured.SerializeToString(deterministic=True),
    }
    try:
        upgrade(database, group.versions, group.metadata, "clearing_0006")
        with database.engine.begin() as connection:
            connection.execute(
                LEGACY_ROW,
                {**legacy, "day": date(2026, 5, 20), "repaired": False, "now": datetime.now(UTC)},
            )

        upgrade(database, group.versions, group.metadata, "clearing_0007")
        with database.engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT treatment_snapshot, national_snapshot, insured_snapshot "
                    "FROM clearing_reconciliation_discrepancies"
                )
            ).one()
        documents = [
            value if value is None or isinstance(value, dict) else json.loads(value) for value in row
        ]
        assert documents == [snapshots.document(treatment), None, snapshots.document(insured)]
        assert documents[2]["hold_state"] == "held"
        shown = convert.side_record(documents[0])
        assert (shown.present, shown.fund_pay_sumamt_fen, shown.setl_id) == (True, 8_642, treatment.setl_id)

        downgrade(database, group.versions, group.metadata, "clearing_0006")
        with database.engine.connect() as connection:
            back = connection.execute(
                text(
                    "SELECT treatment_record, national_record, insured_record "
                    "FROM clearing_reconciliation_discrepancies"
                )
            ).one()
        assert [None if value is None else bytes(value) for value in back] == [
            legacy["treatment"],
            None,
            legacy["insured"],
        ]
    finally:
        database.dispose()
