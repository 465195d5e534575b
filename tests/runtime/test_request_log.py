"""RequestLog.run_each finds a batch's logged answers with one read: the owner's own, else a legacy row's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.wrappers_pb2 import StringValue
from sqlalchemy import insert

from yidi_runtime.db import Database, service_base
from yidi_runtime.idempotency import LEGACY_OWNER, Once, RequestLog, fingerprint, request_model

Base = service_base("logtest")
Record = request_model(Base)
OWNER = "institution/H63010200001"


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = Database.open("logtest", f"sqlite:///{tmp_path / 'log.db'}")
    Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


def logged(database: Database, owner: str, request_id: str, content: str, answer: str) -> None:
    """A row as an earlier call logged it: ``answer`` to a request of ``content``."""
    with database.unit_of_work(write=True) as uow:
        uow.session.execute(
            insert(Record.__table__),
            {
                "owner": owner,
                "request_id": request_id,
                "method": "Echo",
                "fingerprint": fingerprint([StringValue(value=content)]),
                "response": StringValue(value=answer).SerializeToString(deterministic=True),
                "created_at": datetime.now(UTC),
            },
        )
        uow.commit()


def call(request_id: str, content: str, ran: list[str]) -> Once[StringValue]:
    """An Echo of ``content`` whose effect answers it anew (and says it ran)."""

    def effect(_session: Any) -> StringValue:
        ran.append(request_id)
        return StringValue(value=f"new {content}")

    return Once(request_id, "Echo", [StringValue(value=content)], StringValue, effect, owner=OWNER)


def test_a_batch_replays_the_owners_answer_before_a_legacy_one_and_runs_only_new_ids(
    database: Database,
) -> None:
    logged(database, OWNER, "mine", "a", "owner's answer")
    logged(database, LEGACY_OWNER, "mine", "other content", "legacy answer")  # shadowed by the owner's
    logged(database, LEGACY_OWNER, "old", "b", "legacy answer")
    logged(database, LEGACY_OWNER, "clash", "c", "legacy answer")
    logged(database, "institution/H63010200002", "theirs", "d", "another owner's answer")
    ran: list[str] = []

    outcomes = RequestLog(Record).run_each(
        database,
        [
            call("mine", "a", ran),
            call("old", "b", ran),
            call("clash", "not c", ran),
            call("theirs", "d", ran),
            call("theirs", "d", ran),  # recorded by the call before, in this batch
        ],
    )

    answers = [
        outcome.value if isinstance(outcome, StringValue) else outcome.reason_code for outcome in outcomes
    ]
    assert answers == ["owner's answer", "legacy answer", "DUPLICATE_REQUEST", "new d", "new d"]
    assert ran == ["theirs"]
