"""`yidi demo`: a federation in one process, loaded with the samples, playing the seed stories.

It starts the national node, seven province nodes and the Langfang and Jiaxing city nodes
on loopback (SQLite files in a temporary folder unless ``--data-dir`` is given), talking
mutual TLS with certificates from a development CA made for the run (``--certs`` names one
made by `yidi certs init --demo`; ``--insecure`` runs plaintext), loads the
sample institutions, catalogues, policies, persons and filing rules into the nodes that own
them through the generated stubs, then plays the domain's seed stories through the HIS
stubs — VerifyPerson, RegisterVisit, UploadFeeItems, PreSettle, Settle at each hospital's
own node — printing a settlement slip for each, and the stories beyond settlement (a
suspension published at the national node, a collaboration ticket, a bill reimbursed online
by the insured place). It ends with the month-end of :mod:`yidi_harness.month_end`: the
Qinghai story's settlement is lost on its way (fault injection, :mod:`yidi_harness.faults`),
the day's reconciliation finds and repairs the hole, the month's clearing issues every
province's statement, the net positions summing to zero, and Hebei confirms its own. The
month's direct-settlement rate per node and institution and a summary close it. The exit
code says whether every story and both endings behaved as the domain brief says they must.
"""

from __future__ import annotations

import signal
import tempfile
import threading
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, date, datetime
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from yidi.settlement.v1 import settlement_pb2, settlement_service_pb2, settlement_service_pb2_grpc
from yidi.type.v1 import fee_item_pb2
from yidi_cli import clearing_report
from yidi_cli.report import percent, reasons_text
from yidi_core.money import format_money, from_fen
from yidi_harness.federation import (
    DEMO_TOPOLOGY,
    Federation,
    demo_principals,
    init_demo_pki,
    institution,
    load_sample_data,
    missing_files,
    region_operator,
    start_federation,
)
from yidi_harness.month_end import (
    Cleared,
    ClearingClock,
    Reconciled,
    clear_the_month,
    month_of,
    reconcile_the_day,
)
from yidi_harness.stories import Checked, StoryResult, play_all
from yidi_runtime.certs import Pki
from yidi_runtime.logs import configure_logging
from yidi_runtime.wire import china_day, date_message, day_of

FAILED = 1
UNUSABLE = 2
"""A data folder already in use, fixed ports taken, or a certificate folder lacking files."""
HIS_EXAMPLE_INSTITUTION = "H11010100001"
"""The hospital `examples/his_client.py` plays by default: Peking Union Medical College Hospital, Beijing."""
_CLASSES = {"01": "A 甲类", "02": "B 乙类", "03": "C 丙类"}
_REASONS = {
    fee_item_pb2.SELF_PAY_REASON_NOT_IN_CATALOGUE: "not in catalogue",
    fee_item_pb2.SELF_PAY_REASON_CLASS_C: "class C",
    fee_item_pb2.SELF_PAY_REASON_RESTRICTED_MED_TYPE: "restricted care type",
    fee_item_pb2.SELF_PAY_REASON_RESTRICTED_DIAGNOSIS: "restricted diagnosis",
    fee_item_pb2.SELF_PAY_REASON_OVER_PRICE_CEILING: "over price ceiling",
    fee_item_pb2.SELF_PAY_REASON_FIRST_SELF_PAY: "class B first self-pay",
}
_PAY_LOCATIONS = {"3": "in-province, another city", "4": "cross-province"}


def _yuan(fen: int) -> str:
    return format_money(from_fen(fen))


def _reasons(reasons: Sequence[int]) -> str:
    return ", ".join(_REASONS.get(reason, fee_item_pb2.SelfPayReason.Name(reason)) for reason in reasons)


def _header(result: StoryResult, settlement: settlement_pb2.Settlement) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    person, visit, facts = result.person, result.visit, result.visit.facts if result.visit else None
    table.add_row(
        "institution",
        f"{result.institution_name} {settlement.fixmedins_code} (treatment node {result.treatment_node})",
    )
    if person is not None:
        table.add_row(
            "patient",
            f"{person.psn_name_masked} {person.certno_masked}, psn_no {person.psn_no}: {result.patient.who}",
        )
    table.add_row(
        "regions",
        f"insured {settlement.insuplc_admdvs} → treated {settlement.mdtrtarea_admvs} "
        f"({_PAY_LOCATIONS.get(settlement.pay_loc, 'pay_loc ' + settlement.pay_loc)})",
    )
    if visit is not None and facts is not None:
        chronic = f", chronic {facts.chronic_disease}" if facts.chronic_disease else ""
        table.add_row(
            "visit",
            f"{visit.mdtrt_id}: med_type {facts.med_type} on {day_of(facts.service_date, 'service_date')}, "
            f"diagnoses {', '.join(facts.diagnoses)}{chronic}",
        )
    return table


def _lines(result: StoryResult, settlement: settlement_pb2.Settlement) -> Table:
    """Each fee line: class in the treatment catalogue, the part the patient pays in full, and why."""
    names = {line.code: line.name for line in result.bill}
    table = Table(title="fee lines (yuan)", title_justify="left")
    for heading, justify in (
        ("sn", "left"),
        ("item", "left"),
        ("code", "left"),
        ("amount", "right"),
        ("class", "left"),
        ("self-pay", "right"),
        ("why", "left"),
    ):
        table.add_column(heading, justify=justify)  # type: ignore[arg-type]
    for item in settlement.result.items:
        self_pay = item.fulamt_ownpay_amt_fen + item.overlmt_amt_fen + item.preselfpay_amt_fen
        table.add_row(
            item.feedetl_sn,
            names.get(item.med_list_codg, ""),
            item.med_list_codg,
            _yuan(item.det_item_fee_sumamt_fen),
            _CLASSES.get(item.chrgitm_lv, "not listed"),
            _yuan(self_pay),
            _reasons(item.self_pay_reasons),
        )
    return table


def _amounts(settlement: settlement_pb2.Settlement) -> Table:
    amounts = settlement.result.amounts
    table = Table(title="the money (yuan)", title_justify="left", show_header=False)
    for label, fen in (
        ("bill (medfee_sumamt)", amounts.medfee_sumamt_fen),
        ("full self-pay (fulamt_ownpay_amt)", amounts.fulamt_ownpay_amt_fen),
        ("over price ceiling (overlmt_selfpay)", amounts.overlmt_selfpay_fen),
        ("first self-pay (preselfpay_amt)", amounts.preselfpay_amt_fen),
        ("deductible paid (act_pay_dedc)", amounts.act_pay_dedc_fen),
        ("fund pays (fund_pay_sumamt)", amounts.fund_pay_sumamt_fen),
        ("personal account pays (acct_pay)", amounts.acct_pay_fen),
        ("cash (psn_cash_pay)", amounts.psn_cash_pay_fen),
        ("patient's share (psn_part_amt)", amounts.psn_part_amt_fen),
    ):
        table.add_row(label, _yuan(fen))
    for line in settlement.result.fund_lines:
        table.add_row(
            f"  fund line {line.fund_pay_type} {line.fund_pay_type_name}", _yuan(line.fund_payamt_fen)
        )
    return table


def slip(result: StoryResult) -> RenderableType:
    """One story as the window prints it: steps, then the settlement slip with its explanation."""
    parts = _steps(result)
    settlement = result.settlement
    if settlement is not None:
        setl = settlement.result
        audit = "  [bold yellow]flagged for audit (大额协查)[/]" if settlement.audit_flag else ""
        parts += [
            Text(),
            _header(result, settlement),
            _lines(result, settlement),
            _amounts(settlement),
            Text.from_markup(
                f"setl_id [bold]{settlement.setl_id}[/], medins_setl_id {settlement.medins_setl_id}{audit}\n"
                f"catalogue {setl.catalogue_version}, policy {setl.policy_version}"
            ),
            *(Text(f"  {line}") for line in setl.explanation.lines),
        ]
    parts += _checks(result)
    return _panel(f"Story {result.number} · {result.title}", parts, result)


def _checks(checked: Checked) -> list[RenderableType]:
    """Each expectation ticked or crossed, and why the play stopped when it did."""
    marks: list[RenderableType] = [
        Text.from_markup(f"{'[green]✓' if held else '[bold red]✗'}[/] {description}")
        for description, held in checked.expectations
    ]
    if checked.failure:
        marks.append(Text(f"✗ stopped: {checked.failure}", style="bold red"))
    return marks


def _panel(title: str, parts: Sequence[RenderableType], checked: Checked) -> Panel:
    border = "green" if checked.ok else "red"
    return Panel(Group(*parts), title=title, title_align="left", border_style=border)


def _steps(checked: Checked) -> list[RenderableType]:
    return [Text(f"  · {step}", style="dim") for step in checked.steps]


def reconciliation_panel(ending: Reconciled) -> Panel:
    """The day's reconciliation: the hole planted, the report, the differences, the repair, the run after it."""
    parts = _steps(ending)
    if ending.lines:
        parts.append(clearing_report.lines_table(ending.lines))
    if ending.found:
        parts.append(clearing_report.discrepancies_table(ending.found, "Differences found"))
    if ending.repair is not None:
        parts.append(clearing_report.discrepancies_table(ending.repair.discrepancies, "After the repair"))
    if ending.rerun_lines:
        parts.append(clearing_report.lines_table(ending.rerun_lines))
    return _panel("Reconciliation (对账) · the Qinghai hole", [*parts, *_checks(ending)], ending)


def clearing_panel(ending: Cleared) -> Panel:
    """The month's clearing: every province's statement, the overview and the zero-sum check."""
    parts = _steps(ending)
    parts += [clearing_report.statement_table(statement) for statement in ending.statements]
    if ending.statements:
        parts.append(clearing_report.statements_overview(ending.statements))
    return _panel(f"Monthly clearing (清算) · {ending.period}", [*parts, *_checks(ending)], ending)


def direct_rate_table(federation: Federation, today: date) -> Table:
    """The month's direct-settlement rate (应结尽结) at every node whose hospitals saw patients, per institution."""
    first = today.replace(day=1)
    table = Table(title=f"The direct-settlement rate (应结尽结), {first} to {today}", title_justify="left")
    counts = ("cases", "direct", "refused", "manual", "rate")
    for heading in ("node", "institution", *counts, "why not direct"):
        table.add_column(
            heading, justify="right" if heading in counts else "left", no_wrap=heading != "why not direct"
        )
    for spec in federation.topology.nodes:
        if "settlement" not in spec.services:
            continue
        stub = settlement_service_pb2_grpc.SettlementServiceStub(
            federation.channel(spec.region, region_operator(spec.region))
        )
        report = stub.GetDirectSettlementReport(
            settlement_service_pb2.GetDirectSettlementReportRequest(
                start_date=date_message(first), end_date=date_message(today)
            ),
            timeout=20,
        )
        for tally in report.institutions:
            table.add_row(
                spec.name,
                tally.key,
                str(tally.case_count),
                str(tally.direct_count),
                str(tally.refused_count),
                str(tally.manual_count),
                percent(tally.direct_rate_bp),
                reasons_text(tally),
            )
    return table


def summary(results: Sequence[StoryResult], reconciled: Reconciled, cleared: Cleared) -> Table:
    """One row per story — what happened, the money, the settlement id or the reason it stopped — then the endings."""
    table = Table(title="The seed stories", title_justify="left")
    for heading in ("#", "story", "outcome", "fund", "patient", "setl_id / reason"):
        table.add_column(heading, justify="right" if heading in ("fund", "patient") else "left")
    for result in results:
        settlement = result.settlement
        refused = " → ".join(f"refused {reason}" for reason in result.refusals)
        if settlement is not None:
            outcome = f"{refused} → settled" if refused else "settled"
            amounts = settlement.result.amounts
            money = (_yuan(amounts.fund_pay_sumamt_fen), _yuan(amounts.psn_part_amt_fen))
        elif result.reimbursement is not None:
            outcome = f"{refused} → reimbursed online"
            amounts = result.reimbursement.result.amounts
            money = (_yuan(amounts.fund_pay_sumamt_fen), _yuan(amounts.psn_part_amt_fen))
        elif result.ending:
            outcome, money = result.ending, ("", "")
        elif refused:
            outcome, money = refused, ("", "")
        else:
            outcome, money = "stopped", ("", "")
        if not result.ok:
            outcome = f"[bold red]{outcome} (not as expected)[/]"
        table.add_row(
            str(result.number),
            result.short,
            outcome,
            *money,
            settlement.setl_id if settlement else _bill_or_failure(result),
        )
    table.add_section()
    table.add_row(
        "",
        f"reconciliation {reconciled.span}".rstrip(),
        _outcome(reconciled.outcome, reconciled),
        "",
        "",
        reconciled.failure,
    )
    cleared_fen = sum(statement.payable_fen for statement in cleared.statements)
    table.add_row(
        "",
        f"clearing {cleared.period}",
        _outcome(cleared.outcome, cleared),
        _yuan(cleared_fen) if cleared.statements else "",
        "",
        cleared.failure,
    )
    return table


def _bill_or_failure(result: StoryResult) -> str:
    return result.reimbursement.bill_id if result.reimbursement is not None else result.failure


def _outcome(text: str, checked: Checked) -> str:
    return text if checked.ok else f"[bold red]{text} (not as expected)[/]"


def _nodes(federation: Federation) -> Table:
    transport = (
        "mutual TLS"
        if federation.pki is not None
        else "insecure: plaintext, no identities, local development only"
    )
    table = Table(title=f"The federation (loopback, {transport})", title_justify="left")
    for heading in ("region", "node", "role", "parent", "address"):
        table.add_column(heading)
    for spec in federation.topology.nodes:
        table.add_row(
            spec.region, spec.name, spec.role.value, spec.parent or "", federation.address(spec.region)
        )
    return table


def _usable(data_dir: Path | None) -> bool:
    """A given data folder must be new or empty: the stories start from the samples alone."""
    return data_dir is None or not data_dir.exists() or not any(data_dir.iterdir())


def _wait_for_interrupt(console: Console, federation: Federation) -> None:
    """Keep the nodes serving until Ctrl-C (or SIGTERM), after saying where they are and how to try one.

    The handlers are installed before the hint is printed, so an interrupt sent the moment
    the hint appears still stops the federation cleanly.
    """
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    nodes = "\n".join(
        f"  {spec.region} {spec.name:<10} {federation.address(spec.region)}"
        for spec in federation.topology.nodes
    )
    console.print(
        f"\nThe federation keeps running:\n{nodes}\n{_connecting(federation)}"
        "A HIS at Peking Union Medical College Hospital (Beijing node) settles another visit of the Langfang retiree:\n"
        f"  .venv/bin/python examples/his_client.py --address {federation.address('110000')} "
        f"--institution {HIS_EXAMPLE_INSTITUTION}{_his_credentials(federation)}\n"
        "Press Ctrl-C to stop.",
        markup=False,
        soft_wrap=True,
    )
    stop.wait()
    console.print("stopping the federation", markup=False)


def _connecting(federation: Federation) -> str:
    """Where a client finds its certificate (or that it needs none)."""
    if federation.pki is None:
        return "The nodes run insecure: clients connect in plaintext (--insecure).\n"
    root = federation.pki.root
    return (
        f"Certificates: {root} (CA {federation.pki.ca}); an institution connects with "
        f"{root / 'institutions'}/<code>.pem and .key, "
        f"an operator with {root / 'operators'}/<region>-<name>.pem and .key.\n"
    )


def _his_credentials(federation: Federation) -> str:
    if federation.pki is None:
        return " --insecure"
    files = federation.pki.files(institution(HIS_EXAMPLE_INSTITUTION))
    return f" --cert {files.cert} --key {files.key} --ca {files.ca}"


def _pki(console: Console, root: Path, certs: Path | None, insecure: bool) -> Pki | None:
    """The federation's PKI: the one given, else a new one in the data folder; None when insecure.

    Raises ValueError naming what a given folder lacks.
    """
    if insecure:
        console.print(
            "[bold yellow]warning:[/] --insecure: the nodes run plaintext and accept anyone; "
            "for local development only"
        )
        return None
    if certs is None:
        return init_demo_pki(root / "certs")
    pki = Pki(certs)
    missing = missing_files(pki, demo_principals())
    if missing:
        raise ValueError(
            f"{certs} lacks {len(missing)} files of the demo (first: {missing[0]}); "
            f"make them with `yidi certs init --demo --out {certs}`"
        )
    return pki


def _show(console: Console, federation: Federation, clock: ClearingClock) -> bool:
    """Load the samples, play every story, reconcile and clear, print it all; whether all behaved as expected."""
    console.print(_nodes(federation))
    for line in load_sample_data(federation):
        console.print(f"  loaded {line}", markup=False)
    started = datetime.now(UTC)
    results = play_all(federation, started)
    for result in results:
        console.print()
        console.print(slip(result))
    reconciled = reconcile_the_day(federation, results)
    console.print()
    console.print(reconciliation_panel(reconciled))
    cleared = clear_the_month(federation, results, clock, month_of(started))
    console.print()
    console.print(clearing_panel(cleared))
    console.print()
    console.print(direct_rate_table(federation, china_day(started)))
    console.print()
    console.print(summary(results, reconciled, cleared))
    failed = [f"story {result.number}" for result in results if not result.ok]
    failed += [
        name for name, ending in (("reconciliation", reconciled), ("clearing", cleared)) if not ending.ok
    ]
    if failed:
        console.print(f"[bold red]{', '.join(failed)} did not behave as expected[/]")
    else:
        console.print(
            "[bold green]every story behaved as the domain brief says it must; reconciliation found and "
            "repaired the Qinghai hole, and the month cleared to zero[/]"
        )
    return not failed


def run_demo(
    data_dir: Path | None,
    *,
    keep_running: bool,
    base_port: int,
    certs: Path | None = None,
    insecure: bool = False,
) -> int:
    """Start the federation, load the samples, play and print the stories; 0 when all behaved as expected.

    With ``keep_running`` the nodes listen on consecutive ports from ``base_port`` (else on
    free ports) and stay up after the stories until Ctrl-C. The nodes talk mutual TLS with
    the PKI in ``certs``, else with one made in ``<data folder>/certs``; ``insecure`` runs
    them plaintext.
    """
    console = Console()
    if not _usable(data_dir):
        console.print(f"yidi demo: {data_dir} is not empty; give a new or empty folder", markup=False)
        return UNUSABLE
    if insecure and certs is not None:
        console.print("yidi demo: --certs and --insecure exclude each other", markup=False)
        return UNUSABLE
    configure_logging("error", "console")
    clock = ClearingClock()
    with ExitStack() as stack:
        root = data_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="yidi-demo-")))
        try:
            pki = _pki(console, root, certs, insecure)
        except ValueError as error:
            console.print(f"yidi demo: {error}", markup=False)
            return UNUSABLE
        try:
            federation = start_federation(
                DEMO_TOPOLOGY,
                root,
                base_port=base_port if keep_running else None,
                start=clock.start_node,
                pki=pki,
            )
        except OSError as error:
            console.print(f"yidi demo: {error}", markup=False)
            return UNUSABLE
        with federation:
            console.print(f"data in {root}", markup=False, soft_wrap=True)
            if pki is not None:
                console.print(f"certificates in {pki.root}", markup=False, soft_wrap=True)
            behaved = _show(console, federation, clock)
            if keep_running:
                _wait_for_interrupt(console, federation)
    return 0 if behaved else FAILED
