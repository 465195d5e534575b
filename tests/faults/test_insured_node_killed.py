"""kill -9 of the insured node in the middle of a burst of settlements, and its restart.

Sixteen Shenzhen employees' stays at a Shijiazhuang hospital settle from six HIS threads
(Hebei → national → Guangdong). Once five have settled the Guangdong node is
killed with SIGKILL — some applications committed with their answers lost, some not yet
begun — and started again on its port and files. Each HIS thread sends its Settle again
with the same request id until it is answered; one retried for longer than Guangdong holds an
unconfirmed settlement is answered HOLD_VOIDED (fenced at Hebei, voided, nothing settled), and
the HIS settles that visit again with a new request id, as docs/integration.md says. Afterwards
every visit is settled, every settlement the HIS saw is
applied exactly once on every side, nothing else is, and the national node's
reconciliation finds nothing to repair.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from faults_support import (
    GUANGDONG,
    SHIJIAZHUANG_HOSPITAL,
    audit,
    burst,
    enrol_and_file,
    fault_federation,
    ledger_balances,
    open_visits,
    reconcile_and_repair,
    settled_again,
    stage_of,
    wait_drained,
)


@pytest.mark.timeout(180)
def test_settlements_interrupted_by_a_kill_of_the_insured_node_settle_exactly_once(tmp_path: Path) -> None:
    with fault_federation(tmp_path) as federation:
        stage = stage_of(federation)
        visits = open_visits(stage, enrol_and_file(stage, 16))

        def crash() -> None:
            assert federation.kill(GUANGDONG) == -signal.SIGKILL
            federation.restart(GUANGDONG)

        window = stage.window(SHIJIAZHUANG_HOSPITAL)
        outcomes = burst(window, visits, 6, fault=crash, fault_after=5)
        assert any(outcome.unsure for outcome in outcomes), "the kill interrupted no Settle"
        outcomes += settled_again(window, outcomes)

        settled = {outcome.visit.stay for outcome in outcomes if outcome.settlement is not None}
        unsettled = [outcome for outcome in outcomes if outcome.visit.stay not in settled]
        assert unsettled == [], "the HIS could not settle after the restart: " + "; ".join(
            f"{outcome.visit.msgid}: refusal {outcome.refusal}, correction {outcome.correction}, "
            f"{len(outcome.unsure)} unsure answers, the last {outcome.unsure[-1:]}"
            for outcome in unsettled
        )
        wait_drained(federation)
        audit(federation, outcomes)
        assert reconcile_and_repair(federation, stage.today) == []
        ledger_balances(federation)
