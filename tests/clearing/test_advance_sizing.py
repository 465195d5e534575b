"""Advance sizing (预付金测算): the national node proposes each province's advance from the year before, a
national operator applies it, and a province's operator reads its own proposal through its own node.

One small federation (national, Hebei, Zhejiang) per database, on mutual TLS, with the rule set to 1.5 months
(no minimum). The treatment nodes deliver 2026's settlements, sealed; the national node, its clearing clock on
20 January 2027, clears January to March 2026 — March carries a reversal of a January settlement and a
clawback — and leaves May's settlement uncleared. Qinghai, outside the tree, had an advance for 2026 and no
settlement at all. The expected proposals are computed here from the same entries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import NamedTuple

import grpc
import pytest
from clearing_support import DONE, beijing, refusal, stamp
from prometheus_client import CollectorRegistry
from sqlalchemy import inspect
from typer.testing import CliRunner, Result

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import clearing_service_pb2_grpc as api_grpc
from yidi.clearing.v1 import journal_pb2, statement_pb2
from yidi_cli.main import app
from yidi_core.codes import NATIONAL_REGION
from yidi_harness.federation import (
    DEMO_TOPOLOGY,
    NATIONAL_OPERATOR,
    Federation,
    Topology,
    init_demo_pki,
    region_operator,
    start_federation,
)
from yidi_harness.month_end import ClearingClock
from yidi_harness.polling import eventually
from yidi_runtime.config import ConfigError, NodeSettings, load_settings
from yidi_runtime.db import Database, service_url
from yidi_runtime.identity import CallerRole, Principal
from yidi_runtime.integrity import NodeIntegrity
from yidi_runtime.migrate import downgrade, upgrade
from yidi_services.clearing.sizing import Rule
from yidi_services.node import GROUPS
from yidi_testing import settings_for

HEBEI, ZHEJIANG, QINGHAI = "130000", "330000", "630000"
HEBEI_OPERATOR, ZHEJIANG_OPERATOR = region_operator(HEBEI), region_operator(ZHEJIANG)
CLEARED = ("2026-01", "2026-02", "2026-03")
MONTHS = Decimal("1.5")
DENIED = grpc.StatusCode.PERMISSION_DENIED
TREE = Topology(
    tuple(spec for spec in DEMO_TOPOLOGY.nodes if spec.region in (NATIONAL_REGION, HEBEI, ZHEJIANG))
)


class Delivered(NamedTuple):
    """What the national journal holds, and what supervision clawed back, as the test delivered it."""

    entries: list[journal_pb2.JournalEntry]
    clawbacks: dict[str, int]


def settlement(
    msgid: str, insured: str, treatment: str, code: str, fund: int, month: int
) -> journal_pb2.JournalEntry:
    """A settlement on the 15th of ``month`` 2026, at ``treatment``, of a person insured in ``insured``."""
    return journal_pb2.JournalEntry(
        msgid=msgid,
        setl_id=f"{treatment[:2]}0000{msgid}",
        kind=journal_pb2.JOURNAL_ENTRY_KIND_SETTLEMENT,
        mdtrt_id=f"M{msgid}",
        psn_no=f"P{msgid}",
        fixmedins_code=code,
        insuplc_admdvs=insured,
        mdtrtarea_admvs=treatment,
        insutype="310",
        clr_type="21",
        medfee_sumamt_fen=fund + 1000,
        fund_pay_sumamt_fen=fund,
        psn_cash_pay_fen=1000,
        setl_time=stamp(beijing(2026, month, 15)),
    )


def reversal(msgid: str, original: journal_pb2.JournalEntry, month: int) -> journal_pb2.JournalEntry:
    reversed_ = journal_pb2.JournalEntry()
    reversed_.CopyFrom(original)
    reversed_.msgid, reversed_.setl_id = msgid, f"{original.mdtrtarea_admvs[:2]}0000{msgid}"
    reversed_.kind, reversed_.reverses_msgid = journal_pb2.JOURNAL_ENTRY_KIND_REVERSAL, original.msgid
    reversed_.medfee_sumamt_fen = -original.medfee_sumamt_fen
    reversed_.fund_pay_sumamt_fen = -original.fund_pay_sumamt_fen
    reversed_.psn_cash_pay_fen = -original.psn_cash_pay_fen
    reversed_.setl_time.CopyFrom(stamp(beijing(2026, month, 5)))
    return reversed_


def stub(
    federation: Federation, region: str, as_: Principal = NATIONAL_OPERATOR
) -> api_grpc.ClearingServiceStub:
    return api_grpc.ClearingServiceStub(federation.channel(region, as_=as_))


def clear(national: api_grpc.ClearingServiceStub, period: str) -> None:
    run = national.RunClearing(api.RunClearingRequest(request_id=f"C{period}", period=period), timeout=30).run

    def finished() -> statement_pb2.ClearingRun | None:
        now = national.GetClearingRun(api.GetClearingRunRequest(run_id=run.run_id), timeout=30).run
        return now if now.state in DONE else None

    done = eventually(finished, within_s=60, interval_s=0.05, what=f"{period}'s clearing run is done")
    assert done.state == statement_pb2.JOB_STATE_SUCCEEDED, done.failure_reason


@pytest.fixture(scope="module")
def federation(
    tmp_path_factory: pytest.TempPathFactory, module_database_factory: Callable[[], str | None]
) -> Iterator[tuple[Federation, Delivered]]:
    """The three nodes with 2026's settlements delivered and January to March cleared on 20 January 2027."""
    tree_pki = init_demo_pki(tmp_path_factory.mktemp("pki"), TREE)
    clock = ClearingClock()
    with start_federation(
        TREE,
        tmp_path_factory.mktemp("nodes"),
        module_database_factory,
        start=clock.start_node,
        pki=tree_pki,
        clearing_advance_months=str(MONTHS),
    ) as started:
        clock.move_to(beijing(2027, 1, 20))
        january = settlement("H3304020000100000002", HEBEI, "330402", "H33040200001", 12_345, 1)
        clawed = settlement("H3304020000100000003", HEBEI, "330402", "H33040200001", 70_001, 2)
        by_treatment = {
            ZHEJIANG: [
                settlement("H3304020000100000001", HEBEI, "330402", "H33040200001", 50_000, 1),
                january,
                clawed,
                settlement("H3304020000100000004", HEBEI, "330402", "H33040200001", 33_333, 3),
                reversal("H3304020000100000005", january, 3),
                settlement("H3304020000100000006", HEBEI, "330402", "H33040200001", 99_999, 5),
            ],
            HEBEI: [settlement("H1310020000100000001", ZHEJIANG, "131002", "H13100200001", 20_000, 2)],
        }
        for source, entries in by_treatment.items():
            sealer = NodeIntegrity(
                NodeSettings(region=source, tls=tree_pki.node(source)), CollectorRegistry()
            )
            for entry in entries:
                sealer.seal(entry)
            stub(started, NATIONAL_REGION, Principal(CallerRole.NODE, source, source)).AppendJournalEntries(
                api.AppendJournalEntriesRequest(
                    request_id=f"J{source}", source_admdvs=source, entries=entries
                ),
                timeout=30,
            )
        national = stub(started, NATIONAL_REGION)
        national.SetAdvance(
            api.SetAdvanceRequest(request_id="A2026", admdvs=QINGHAI, year=2026, amount_fen=300_000),
            timeout=30,
        )
        clear(national, "2026-01")
        clear(national, "2026-02")
        clawback = api.RecordClawbackRequest(
            request_id="CB1",
            msgid=clawed.msgid,
            amount_fen=1_001,
            reason="超标准收费",
            fixmedins_code="H33040200001",
        )
        national.RecordClawback(clawback, timeout=30)
        clear(national, "2026-03")
        yield (
            started,
            Delivered(
                [entry for entries in by_treatment.values() for entry in entries],
                {HEBEI: clawback.amount_fen},
            ),
        )


def expected_outflow(delivered: Delivered) -> dict[str, int]:
    """Each province's fund payments for its insured settled (or reversed) in the cleared months, less clawbacks."""
    outflow: defaultdict[str, int] = defaultdict(int)
    for entry in delivered.entries:
        settled = entry.setl_time.ToDatetime()
        month = f"{settled.year:04d}-{(settled.month):02d}"
        if month in CLEARED:
            outflow[entry.insuplc_admdvs[:2] + "0000"] += entry.fund_pay_sumamt_fen
    for province, clawed in delivered.clawbacks.items():
        outflow[province] -= clawed
    return dict(outflow)


def half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), ROUND_HALF_UP))


def test_each_province_is_proposed_its_rule_sized_advance_and_an_operator_applies_it_once(
    federation: tuple[Federation, Delivered],
) -> None:
    started, delivered = federation
    national = stub(started, NATIONAL_REGION)
    outflow = expected_outflow(delivered)
    assert outflow[HEBEI] == 50_000 + 70_001 + 33_333 - 1_001 and outflow[ZHEJIANG] == 20_000

    propose = api.ProposeAdvancesRequest(request_id="P2027", year=2027)
    proposed = {p.admdvs: p for p in national.ProposeAdvances(propose, timeout=30).proposals}
    assert list(proposed) == [HEBEI, ZHEJIANG, QINGHAI], "by province"
    for province, proposal in proposed.items():
        history = outflow.get(province, 0)
        assert (proposal.year, proposal.basis_year, tuple(proposal.periods)) == (2027, 2026, CLEARED)
        assert (proposal.outflow_fen, proposal.monthly_average_fen) == (
            history,
            half_up(Decimal(history) / 3),
        )
        assert proposal.proposed_fen == half_up(MONTHS * history / 3), province
        assert (proposal.rule_months, proposal.minimum_fen, proposal.current_advance_fen) == ("1.5", 0, 0)
        assert "1.5 months" in proposal.rule and not proposal.applied
    # Statements, not the journal: the statements of the months counted carry the same payable.
    statements = national.ListStatements(api.ListStatementsRequest(admdvs=HEBEI, page_size=100), timeout=30)
    assert sum(s.payable_fen for s in statements.statements if s.period in CLEARED) == outflow[HEBEI]
    assert national.ProposeAdvances(propose, timeout=30).proposals == list(proposed.values()), (
        "a repeat replays"
    )
    first = national.ListAdvanceProposals(api.ListAdvanceProposalsRequest(year=2027, page_size=2), timeout=30)
    rest = national.ListAdvanceProposals(
        api.ListAdvanceProposalsRequest(year=2027, page_size=2, page_token=first.next_page_token), timeout=30
    )
    assert [*first.proposals, *rest.proposals] == list(proposed.values()) and not rest.next_page_token

    # A national operator applies Hebei's as proposed: SetAdvance's path, once.
    apply = api.ApplyAdvanceProposalRequest(request_id="AP-HB", year=2027, admdvs=HEBEI)
    applied = national.ApplyAdvanceProposal(apply, timeout=30)
    assert applied.status.advance_fen == proposed[HEBEI].proposed_fen
    assert applied.proposal.applied and applied.proposal.applied_fen == proposed[HEBEI].proposed_fen
    assert applied.proposal.applied_by == NATIONAL_OPERATOR.subject and applied.proposal.HasField(
        "apply_time"
    )
    assert applied.proposal.current_advance_fen == proposed[HEBEI].proposed_fen
    status = national.GetAdvanceStatus(
        api.GetAdvanceStatusRequest(admdvs=HEBEI, year=2027), timeout=30
    ).status
    assert status == applied.status
    assert national.ApplyAdvanceProposal(apply, timeout=30) == applied, "a repeat replays"
    again = api.ApplyAdvanceProposalRequest(request_id="AP-HB2", year=2027, admdvs=HEBEI, amount_fen=1)
    again.override_reason = "twice"
    assert refusal(national.ApplyAdvanceProposal, again)[:2] == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "ADVANCE_PROPOSAL_APPLIED",
    )
    ledger = national.ListLedgerEntries(api.ListLedgerEntriesRequest(admdvs=HEBEI, page_size=100), timeout=30)
    advance_entries = [entry for entry in ledger.entries if entry.source_id.startswith("AP-")]
    assert [entry.source_id for entry in advance_entries] == ["AP-HB"]
    assert [p.amount_fen for p in advance_entries[0].postings if p.admdvs == HEBEI] == [
        -proposed[HEBEI].proposed_fen
    ]

    # Qinghai has no history: its proposal is 0, applied only with an amount and a reason.
    bare = api.ApplyAdvanceProposalRequest(request_id="AP-QH", year=2027, admdvs=QINGHAI)
    assert refusal(national.ApplyAdvanceProposal, bare) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        ["amount_fen"],
    )
    bare.amount_fen = 250_000
    assert refusal(national.ApplyAdvanceProposal, bare)[2] == ["override_reason"]
    bare.amount_fen, bare.override_reason = 0, "no reason without an amount"
    assert refusal(national.ApplyAdvanceProposal, bare)[2] == ["override_reason"]
    unknown = api.ApplyAdvanceProposalRequest(request_id="AP-GD", year=2027, admdvs="440000")
    assert refusal(national.ApplyAdvanceProposal, unknown)[:2] == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    overridden = national.ApplyAdvanceProposal(
        api.ApplyAdvanceProposalRequest(
            request_id="AP-QH2",
            year=2027,
            admdvs=QINGHAI,
            amount_fen=250_000,
            override_reason="新开通跨省直接结算",
        ),
        timeout=30,
    )
    assert (overridden.status.advance_fen, overridden.proposal.proposed_fen) == (250_000, 0)
    assert overridden.proposal.override_reason == "新开通跨省直接结算"

    # April cleared later: proposing again recomputes what is pending, never what was applied.
    clear(national, "2026-04")
    again_proposed = {
        p.admdvs: p
        for p in national.ProposeAdvances(
            api.ProposeAdvancesRequest(request_id="P2027b", year=2027), timeout=30
        ).proposals
    }
    assert again_proposed[HEBEI].periods == proposed[HEBEI].periods and again_proposed[HEBEI].applied
    assert list(again_proposed[ZHEJIANG].periods) == [*CLEARED, "2026-04"]
    assert again_proposed[ZHEJIANG].proposed_fen == half_up(MONTHS * outflow[ZHEJIANG] / 4)

    # The CLI: a national operator applies Zhejiang's.
    shown = cli(
        started, NATIONAL_OPERATOR, NATIONAL_REGION, "apply", "--year", "2027", "--province", ZHEJIANG
    )
    assert shown.exit_code == 0, shown.output
    assert "Advance of 330000 for 2027" in shown.output and "75.00" in shown.output


def test_a_province_operator_reads_only_its_own_proposal_through_its_own_node(
    federation: tuple[Federation, Delivered],
) -> None:
    started, _ = federation
    national = stub(started, NATIONAL_REGION)
    proposing = cli(started, NATIONAL_OPERATOR, NATIONAL_REGION, "propose", "--year", "2028")
    assert proposing.exit_code == 0, proposing.output
    assert HEBEI in proposing.output and ZHEJIANG in proposing.output, (
        "the children, though 2027 cleared nothing"
    )
    hebei = stub(started, HEBEI, HEBEI_OPERATOR)

    own = api.GetAdvanceProposalRequest(year=2028, admdvs=HEBEI)
    assert hebei.GetAdvanceProposal(own, timeout=30) == national.GetAdvanceProposal(own, timeout=30)
    mine = hebei.ListAdvanceProposals(api.ListAdvanceProposalsRequest(year=2028), timeout=30).proposals
    assert [p.admdvs for p in mine] == [HEBEI] and not mine[0].periods, "2027 had nothing cleared"
    foreign = api.GetAdvanceProposalRequest(year=2028, admdvs=ZHEJIANG)
    assert refusal(hebei.GetAdvanceProposal, foreign)[:2] == (DENIED, "PERMISSION_DENIED_REGION")
    assert refusal(hebei.ListAdvanceProposals, api.ListAdvanceProposalsRequest(year=2028, admdvs=ZHEJIANG))[
        :2
    ] == (DENIED, "PERMISSION_DENIED_REGION")
    at_hebei_node = stub(started, HEBEI, ZHEJIANG_OPERATOR)
    assert refusal(at_hebei_node.GetAdvanceProposal, foreign)[0] == DENIED
    # Proposing and applying are the national operators'.
    assert (
        refusal(hebei.ProposeAdvances, api.ProposeAdvancesRequest(request_id="HB-P", year=2028))[0] == DENIED
    )
    apply = api.ApplyAdvanceProposalRequest(request_id="HB-A", year=2028, admdvs=HEBEI)
    assert refusal(hebei.ApplyAdvanceProposal, apply)[0] == DENIED

    shown = cli(started, HEBEI_OPERATOR, HEBEI, "proposals", "--year", "2028")
    assert shown.exit_code == 0, shown.output
    assert HEBEI in shown.output and ZHEJIANG not in shown.output and "1.5 months" in shown.output


def test_the_rule_takes_the_configured_months_of_the_average_and_never_less_than_the_minimum() -> None:
    rule = Rule(Decimal("2"), 50_000)
    assert rule.proposed_fen(0, 0) == 50_000, "no month cleared: the minimum"
    assert rule.proposed_fen(1_200_001, 12) == 200_000  # 200000.1667 → 200000
    assert rule.proposed_fen(1_200_003, 12) == 200_001  # 200000.5 → half up
    assert rule.proposed_fen(100_000, 12) == 50_000
    settings = NodeSettings(
        clearing_advance_months=Decimal("1.5"), clearing_advance_minimum=Decimal("500.00")
    )
    assert Rule.of(settings) == Rule(Decimal("1.5"), 50_000)


def cli(federation: Federation, operator: Principal, region: str, *arguments: str) -> Result:
    """``yidi clearing advance …`` as ``operator`` against ``region``'s node."""
    assert federation.pki is not None
    files = federation.pki.files(operator)
    tls = ("--cert", str(files.cert), "--key", str(files.key), "--ca", str(files.ca))
    return CliRunner().invoke(
        app, ["clearing", "advance", *arguments, "--address", federation.address(region), *tls]
    )


def test_the_sizing_rule_is_read_from_the_configuration() -> None:
    settings = load_settings(
        environ={"YIDI_CLEARING_ADVANCE_MONTHS": "2.5", "YIDI_CLEARING_ADVANCE_MINIMUM": "1000000.00"}
    )
    assert (settings.clearing_advance_months, settings.clearing_advance_minimum) == (
        Decimal("2.5"),
        Decimal("1000000.00"),
    )
    for name, bad in (("YIDI_CLEARING_ADVANCE_MONTHS", "0"), ("YIDI_CLEARING_ADVANCE_MINIMUM", "1.001")):
        with pytest.raises(ConfigError):
            load_settings(environ={name: bad})


def test_the_proposals_table_comes_and_goes_with_its_migration(
    tmp_path: Path, empty_database_url: str | None
) -> None:
    group = GROUPS["clearing"]
    database = Database.open("clearing", service_url(settings_for(tmp_path, empty_database_url), "clearing"))
    try:
        upgrade(database, group.versions, group.metadata, "clearing_0009")
        assert "clearing_advance_proposals" in inspect(database.engine).get_table_names()
        downgrade(database, group.versions, group.metadata, "clearing_0008")
        assert "clearing_advance_proposals" not in inspect(database.engine).get_table_names()
        assert "clearing_advances" in inspect(database.engine).get_table_names()
    finally:
        database.dispose()
