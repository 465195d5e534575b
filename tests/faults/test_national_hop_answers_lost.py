"""Answers lost on the national hop: the request arrives, its answer never comes back.

Every link between the provinces and the national node passes through a proxy that cuts the
connection instead of delivering one answer chunk in every few: the caller cannot know
whether its request took effect. Hebei's ApplySettlement to the national node (and the
national node's to Guangdong) are sent again by the nodes' own retries; Settles whose
answers still failed are sent again by the HIS with the same request id; the outboxes send
confirmations and journal entries again after their answers were lost. Once the link heals,
every settlement the HIS saw is applied exactly once everywhere and nothing else is.
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

LOSE_ANSWER_EVERY = 10


@pytest.mark.timeout(180)
def test_settlements_whose_answers_the_national_hop_lost_settle_exactly_once(tmp_path: Path) -> None:
    with fault_federation(tmp_path, lose_answer_every=LOSE_ANSWER_EVERY) as federation:
        stage = stage_of(federation)
        visits = open_visits(stage, enrol_and_file(stage, 12))
        proxy = federation.proxy
        assert proxy is not None
        proxy.lose_answers()
        outcomes = burst(stage.window(SHIJIAZHUANG_HOSPITAL), visits, 4)
        proxy.heal()

        assert proxy.answers_lost() > 0, "the proxy lost no answer"
        wait_drained(federation)
        audit(federation, outcomes)
        assert reconcile_and_repair(federation, stage.today) == []
        ledger_balances(federation)
