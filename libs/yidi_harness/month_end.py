"""How the demo ends: the day reconciled with the Qinghai hole found and repaired, then the month cleared.

After the seed stories, the Qinghai story's settlement is lost on its way to the national
journal and to the Qinghai node (:mod:`yidi_harness.faults` — the hole of domain README §6).
The Qinghai node, whose hold of the settlement then times out unconfirmed, asks the Jiaxing
node what became of it and confirms it again on the answer "recorded" (never voiding it by
guessing). The national node then reconciles the stories' day: it must find exactly the
hole left — MISSING_AT_NATIONAL for the settlement's msgid — repair it from the Jiaxing
node's durable record, and find nothing open when it reconciles again.

Then the month is cleared. A month is cleared once it has ended (China time), and the
stories' settlements are made now; so the demo's national node runs its clearing service on
a :class:`ClearingClock` that the demo moves to the first moment of next month for the run
("the month ends") and back to the wall clock afterwards. Every province's statement is
checked: the net positions sum to zero, and the repaired Qinghai→Zhejiang settlement is on
Qinghai's statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

import grpc

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import reconciliation_pb2, statement_pb2
from yidi_cli.clearing_client import ClearingClient, StillRunning
from yidi_cli.clearing_report import kind_name, nets_sum_fen, yuan
from yidi_core.codes import NATIONAL_REGION, province_of
from yidi_harness.faults import FaultNotPlanted, lose_settlement_on_the_way
from yidi_harness.federation import NATIONAL_OPERATOR, Federation, region_operator
from yidi_harness.stories import Checked, StoryResult, journal_entries, refusal_reason
from yidi_runtime.config import NodeSettings
from yidi_runtime.server import Node, create_server
from yidi_runtime.service import ServiceGroup
from yidi_runtime.wire import CHINA_STANDARD_TIME, china_day, wall_clock
from yidi_services.clearing import servicer as clearing_servicer
from yidi_services.clearing.periods import Period
from yidi_services.node import groups_for

QINGHAI_STORY = 2
"""The story whose settlement the demo loses on the way (a Qinghai patient at a Jiaxing hospital)."""
_JOB_WAIT_S = 60.0


class ClearingClock:
    """The clock of the demo's national clearing service: the wall clock, unless the demo moved it."""

    def __init__(self) -> None:
        self._offset = timedelta()

    def __call__(self) -> datetime:
        return wall_clock() + self._offset

    def move_to(self, moment: datetime) -> None:
        """From now on the clock reads ``moment`` plus the time passed since."""
        self._offset = moment - wall_clock()

    def reset(self) -> None:
        """Back to the wall clock."""
        self._offset = timedelta()

    def start_node(self, settings: NodeSettings) -> Node:
        """Start a node (``start_federation``'s ``start``); the national node's clearing service reads this clock."""
        groups = groups_for(settings)
        if settings.region == NATIONAL_REGION:
            groups = [self._on_this_clock(group) if group.name == "clearing" else group for group in groups]
        return create_server(settings, groups)

    def _on_this_clock(self, group: ServiceGroup) -> ServiceGroup:
        return replace(
            group, register=lambda server, context: clearing_servicer.register(server, context, clock=self)
        )


def month_of(moment: datetime) -> str:
    """The clearing period (yyyy-MM, China time) a moment falls in."""
    return str(Period.of(moment))


def _settled(results: Sequence[StoryResult]) -> list[StoryResult]:
    return [result for result in results if result.settlement is not None]


def _journalled(results: Sequence[StoryResult]) -> list[StoryResult]:
    """The stories' cross-province settlements: only those reach the national journal."""
    return [
        result
        for result in _settled(results)
        if result.settlement is not None
        and province_of(result.settlement.insuplc_admdvs) != province_of(result.settlement.mdtrtarea_admvs)
    ]


@dataclass(kw_only=True)
class Reconciled(Checked):
    """The day reconciled: the hole planted, what the first run found, the repair, the run after it."""

    msgid: str = ""
    first_day: date | None = None
    last_day: date | None = None
    run: reconciliation_pb2.ReconciliationRun | None = None
    lines: list[reconciliation_pb2.ReconciliationLine] = field(default_factory=list)
    found: list[reconciliation_pb2.Discrepancy] = field(default_factory=list)
    repair: api.RepairDiscrepanciesResponse | None = None
    rerun: reconciliation_pb2.ReconciliationRun | None = None
    rerun_lines: list[reconciliation_pb2.ReconciliationLine] = field(default_factory=list)
    still_open: list[reconciliation_pb2.Discrepancy] = field(default_factory=list)

    @property
    def span(self) -> str:
        """The days reconciled, as the summary names them."""
        if self.first_day is None or self.first_day == self.last_day:
            return str(self.first_day or "")
        return f"{self.first_day} to {self.last_day}"

    @property
    def outcome(self) -> str:
        """One line for the summary."""
        if self.failure or self.repair is None:
            return f"{len(self.found)} differences found, not repaired"
        left = f"{len(self.still_open)} left open" if self.still_open else "none left"
        return f"{len(self.found)} differences found, {self.repair.repaired_count} repaired, {left}"


@dataclass(kw_only=True)
class Cleared(Checked):
    """The month cleared: the run, every province's statement and the ledger's check."""

    period: str = ""
    run: statement_pb2.ClearingRun | None = None
    statements: list[statement_pb2.Statement] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        """One line for the summary."""
        if self.run is None or self.run.state != statement_pb2.JOB_STATE_SUCCEEDED:
            return "not cleared"
        return f"{len(self.statements)} statements, nets sum to {yuan(nets_sum_fen(self.statements))}"


def _wait_for_journal(federation: Federation, results: Sequence[StoryResult], ending: Reconciled) -> None:
    """Every story's settlement reached the national journal (the outboxes deliver in the background)."""
    for result in _journalled(results):
        assert result.settlement is not None
        msgid = result.settlement.medins_setl_id
        held = journal_entries(federation, msgid, province_of(result.patient.insuplc_admdvs))
        ending.expect(f"the national journal holds story {result.number}'s settlement", len(held) == 1)


def reconcile_the_day(federation: Federation, results: Sequence[StoryResult]) -> Reconciled:
    """Lose the Qinghai story's settlement on the way, reconcile the stories' days, repair, reconcile again."""
    ending = Reconciled()
    story = next((r for r in results if r.number == QINGHAI_STORY and r.settlement is not None), None)
    if story is None or story.settlement is None:
        ending.failure = f"story {QINGHAI_STORY} made no settlement to lose"
        return ending
    ending.msgid = msgid = story.settlement.medins_setl_id
    days = [
        china_day(r.settlement.setl_time.ToDatetime(tzinfo=UTC)) for r in _settled(results) if r.settlement
    ]
    ending.first_day, ending.last_day = min(days), max(china_day(datetime.now(UTC)), *days)
    client = ClearingClient(federation.channel(NATIONAL_REGION, NATIONAL_OPERATOR))
    try:
        _wait_for_journal(federation, results, ending)
        lost = lose_settlement_on_the_way(
            federation, story.settlement.fixmedins_code, msgid, story.patient.insuplc_admdvs
        )
        ending.steps += [
            f"fault injected: the national journal lost the entry {msgid}",
            f"fault injected: {lost.insured_node} never got the confirmation; when the hold timed out it asked "
            "the Jiaxing node, which had recorded the settlement: confirmed, not voided",
        ]
        _first_run(client, ending)
        if ending.ok:
            _repair(client, ending)
    except grpc.RpcError as error:
        ending.failure = f"{refusal_reason(error)}: {error.details()}"  # type: ignore[attr-defined]
    except (FaultNotPlanted, StillRunning) as error:
        ending.failure = str(error)
    return ending


def _reconcile(client: ClearingClient, ending: Reconciled) -> reconciliation_pb2.ReconciliationRun:
    assert ending.first_day is not None and ending.last_day is not None
    run = client.reconcile(ending.first_day, ending.last_day, timeout_s=_JOB_WAIT_S)
    ending.expect(
        f"reconciliation run {run.run_id} succeeded",
        run.state == statement_pb2.JOB_STATE_SUCCEEDED and not run.failure_reason,
    )
    ending.steps.append(
        f"Reconcile {ending.first_day} to {ending.last_day}: run {run.run_id}, "
        f"{run.compared_count} settlements compared, {run.discrepancy_count} differences"
    )
    return run


def _first_run(client: ClearingClient, ending: Reconciled) -> None:
    ending.run = _reconcile(client, ending)
    ending.lines = client.report_lines(ending.run.run_id)
    ending.found = client.discrepancies(ending.run.run_id)
    kinds = {(d.msgid, kind_name(d.kind)) for d in ending.found}
    ending.expect(
        "the hole is found: MISSING_AT_NATIONAL for the lost settlement, nothing else",
        kinds == {(ending.msgid, "MISSING_AT_NATIONAL")},
    )


def _repair(client: ClearingClient, ending: Reconciled) -> None:
    assert ending.run is not None
    repair = ending.repair = client.repair(ending.run.run_id)
    ending.steps.append(
        f"RepairDiscrepancies: {repair.repaired_count} repaired, {repair.failed_count} left for an operator"
    )
    ending.expect(
        "it is repaired from the Jiaxing node's record",
        (repair.repaired_count, repair.failed_count) == (1, 0),
    )
    ending.rerun = _reconcile(client, ending)
    ending.rerun_lines = client.report_lines(ending.rerun.run_id)
    ending.still_open = client.discrepancies(ending.rerun.run_id, open_only=True)
    ending.expect(
        "reconciled again: no difference open", not ending.still_open and ending.rerun.discrepancy_count == 0
    )


CONFIRMING_PROVINCE = "130000"
"""The province whose operator confirms its statement through its own node in the demo (Hebei)."""


def clear_the_month(
    federation: Federation, results: Sequence[StoryResult], clock: ClearingClock, period: str
) -> Cleared:
    """Move the national clearing clock to the month's end, clear the month, check every statement."""
    ending = Cleared(period=period)
    client = ClearingClient(federation.channel(NATIONAL_REGION, NATIONAL_OPERATOR))
    ends = Period.parse(period).end
    clock.move_to(ends)
    ending.steps.append(
        "the month ends: the national node's clearing clock moves to "
        f"{ends.astimezone(CHINA_STANDARD_TIME):%Y-%m-%d %H:%M} China time"
    )
    try:
        run = ending.run = client.clear(period, timeout_s=_JOB_WAIT_S)
        ending.steps.append(
            f"RunClearing {period}: run {run.run_id} {statement_pb2.JobState.Name(run.state)}, "
            f"{run.entries_counted} journal entries counted {run.failure_reason}".rstrip()
        )
        if not ending.expect(
            f"clearing run {run.run_id} succeeded", run.state == statement_pb2.JOB_STATE_SUCCEEDED
        ):
            return ending
        issued = set(run.statement_ids)
        ending.statements = [s for s in client.statements(period) if s.statement_id in issued]
        ledger = client.ledger()
    except grpc.RpcError as error:
        ending.failure = f"{refusal_reason(error)}: {error.details()}"  # type: ignore[attr-defined]
        return ending
    except StillRunning as error:
        ending.failure = str(error)
        return ending
    finally:
        clock.reset()
    ending.steps.append("the national node's clearing clock is back on the wall clock")
    _check_statements(ending, results, run, ledger)
    try:
        _province_confirms(federation, ending)
    except grpc.RpcError as error:
        ending.failure = f"{refusal_reason(error)}: {error.details()}"  # type: ignore[attr-defined]
    return ending


def _province_confirms(federation: Federation, ending: Cleared) -> None:
    """Hebei's operator, at the Hebei node, reads the province's own statement and confirms it in time."""
    hebei = ClearingClient(federation.channel(CONFIRMING_PROVINCE, region_operator(CONFIRMING_PROVINCE)))
    seen = hebei.statements(ending.period, CONFIRMING_PROVINCE)
    ending.steps.append(
        f"ListStatements by Hebei's operator at node {CONFIRMING_PROVINCE}: "
        f"{', '.join(statement.statement_id for statement in seen) or 'none'}"
    )
    if not ending.expect(
        "Hebei's operator finds Hebei's statement through its own node",
        [statement.admdvs for statement in seen] == [CONFIRMING_PROVINCE],
    ):
        return
    due = seen[0].confirm_by
    confirmed = hebei.confirm(seen[0].statement_id, "Hebei medical insurance centre")
    ending.steps.append(
        f"ConfirmStatement {confirmed.statement_id} by Hebei through its node, due by "
        f"{due.year:04d}-{due.month:02d}-{due.day:02d}: {statement_pb2.StatementState.Name(confirmed.state)}"
    )
    ending.expect(
        "Hebei confirms its statement within its confirmation days",
        confirmed.state in (statement_pb2.STATEMENT_STATE_CONFIRMED, statement_pb2.STATEMENT_STATE_SETTLED),
    )
    ending.statements = [
        confirmed if statement.statement_id == confirmed.statement_id else statement
        for statement in ending.statements
    ]


def _check_statements(
    ending: Cleared,
    results: Sequence[StoryResult],
    run: statement_pb2.ClearingRun,
    ledger: api.GetLedgerResponse,
) -> None:
    journalled = _journalled(results)
    ending.expect(
        f"every story's cross-province settlement is counted ({len(journalled)})",
        run.entries_counted == len(journalled),
    )
    ending.expect(
        "the net positions sum to zero", bool(ending.statements) and nets_sum_fen(ending.statements) == 0
    )
    ending.expect("the ledger sums to zero", ledger.balanced and ledger.total_fen == 0)
    qinghai = next((r.settlement for r in results if r.number == QINGHAI_STORY and r.settlement), None)
    lines = [
        line
        for statement in ending.statements
        if statement.admdvs == "630000"
        for line in statement.lines
        if (line.insured_admdvs, line.treatment_admdvs) == ("630000", "330000") and not line.adjustment
    ]
    ending.expect(
        "the repaired Qinghai→Zhejiang settlement is on Qinghai's statement",
        qinghai is not None
        and [(line.settlement_count, line.fund_pay_sumamt_fen) for line in lines]
        == [(1, qinghai.result.amounts.fund_pay_sumamt_fen)],
    )
