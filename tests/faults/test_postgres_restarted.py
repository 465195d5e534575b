"""PostgreSQL restarted under load: every node's connections are cut mid-burst, and the nodes recover.

The three node processes keep their data in one PostgreSQL server of this test's own (a
database per node; the session's shared server is left alone). Once four of sixteen
visits have settled, the server is restarted (``pg_ctl restart -m fast``) while the others
are on their way: transactions in flight fail, pooled connections are dead. The HIS sends
each unanswered Settle again with the same request id; the nodes' pools replace their dead
connections (pre-ping) and the outboxes and hold workers carry on. Afterwards every
settlement the HIS saw is applied exactly once everywhere and nothing else is.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from faults_support import (
    SHIJIAZHUANG_HOSPITAL,
    audit,
    burst,
    enrol_and_file,
    fault_federation,
    ledger_balances,
    open_visits,
    reconcile_and_repair,
    stage_of,
    wait_drained,
)

from yidi_harness.postgres_server import fresh_databases, postgres_server


@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_settlements_across_a_postgresql_restart_settle_exactly_once(tmp_path: Path) -> None:
    with (
        postgres_server() as server,
        fresh_databases(server.url, "yidi_faults") as database_url_for,
        fault_federation(tmp_path, database_url_for=database_url_for) as federation,
    ):
        stage = stage_of(federation)
        visits = open_visits(stage, enrol_and_file(stage, 16))

        outcomes = burst(stage.window(SHIJIAZHUANG_HOSPITAL), visits, 6, fault=server.restart, fault_after=4)

        unsettled = [outcome for outcome in outcomes if outcome.settlement is None]
        assert unsettled == [], "the HIS could not settle after the restart"
        wait_drained(federation)
        audit(federation, outcomes)
        assert reconcile_and_repair(federation, stage.today) == []
        ledger_balances(federation)
