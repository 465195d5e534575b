"""Faults over mutual TLS with every message sealed: the treatment node killed mid-burst, and a HIS that gives up.

The treatment node decides a settlement (DESIGN.md principle 9), so these are the faults
that test it:

- kill -9 of the Hebei node (the treatment node) while Settles are on their way: some
  applications were held at Guangdong before Hebei's own commit, some confirmations were
  queued in Hebei's outbox and not sent. Hebei starts again on its files; each HIS sends
  its Settle again until answered. Every settlement the HIS saw is applied once everywhere.
- the Guangdong node (the insured node) down longer than the HIS waits: the HIS gives up
  and corrects (冲正) each Settle, and its corrections are answered only once Guangdong is
  back. Nothing is settled on one side only: a hold Guangdong made before it went down is
  resolved by asking Hebei, which fenced or reverted it.

Afterwards the national reconciliation finds nothing to repair and the ledger balances.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest
from faults_support import (
    GUANGDONG,
    HEBEI,
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

from yidi.settlement.v1 import settlement_service_pb2


@pytest.mark.timeout(240)
def test_settlements_interrupted_by_a_kill_of_the_treatment_node_settle_exactly_once(tmp_path: Path) -> None:
    with fault_federation(tmp_path, mtls=True) as federation:
        stage = stage_of(federation)
        visits = open_visits(stage, enrol_and_file(stage, 12))

        def crash() -> None:
            assert federation.kill(HEBEI) == -signal.SIGKILL
            federation.restart(HEBEI)

        outcomes = burst(stage.window(SHIJIAZHUANG_HOSPITAL), visits, 6, fault=crash, fault_after=4)

        assert any(outcome.unsure for outcome in outcomes), "the kill interrupted no Settle"
        assert [outcome for outcome in outcomes if outcome.settlement is None] == []
        wait_drained(federation)
        audit(federation, outcomes)
        assert reconcile_and_repair(federation, stage.today) == []
        ledger_balances(federation)


@pytest.mark.timeout(240)
def test_a_his_that_gives_up_during_an_insured_node_outage_corrects_and_nothing_is_one_sided(
    tmp_path: Path,
) -> None:
    with fault_federation(tmp_path, mtls=True) as federation:
        stage = stage_of(federation)
        visits = open_visits(stage, enrol_and_file(stage, 8))
        back = threading.Event()

        def outage() -> None:
            assert federation.kill(GUANGDONG) == -signal.SIGKILL

            def come_back() -> None:  # after the HIS gave up, while its corrections are retried
                threading.Event().wait(8.0)
                federation.restart(GUANGDONG)
                back.set()

            threading.Thread(target=come_back, daemon=True).start()

        outcomes = burst(
            stage.window(SHIJIAZHUANG_HOSPITAL),
            visits,
            4,
            fault=outage,
            fault_after=2,
            within_s=3.0,
            correct_within_s=90.0,
        )
        assert back.wait(60), "the insured node did not come back"

        gave_up = [
            outcome
            for outcome in outcomes
            if outcome.correction != settlement_service_pb2.CORRECTION_OUTCOME_UNSPECIFIED
        ]
        assert gave_up, "no HIS gave up during the outage"
        assert {outcome.correction for outcome in gave_up} <= {
            settlement_service_pb2.CORRECTION_OUTCOME_REVERSED,
            settlement_service_pb2.CORRECTION_OUTCOME_NOTHING_TO_UNDO,
        }
        wait_drained(federation)
        audit(federation, outcomes)
        assert reconcile_and_repair(federation, stage.today) == []
        ledger_balances(federation)
