"""Clearing and reconciliation as people read them: rich tables in yuan, and statements as CSV.

Shared by `yidi clearing`, `yidi reconcile` and the demo. Amounts travel as integer fen;
they are shown (and exported) in yuan with two decimals, never through a float.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from typing import IO

from google.type.date_pb2 import Date
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import ledger_pb2, reconciliation_pb2, statement_pb2
from yidi_core.money import format_money, from_fen

STATEMENT_CSV_COLUMNS = (
    "statement_id",
    "period",
    "province",
    "state",
    "payable",
    "receivable",
    "net",
    "insured_province",
    "treatment_province",
    "side",
    "settlement_count",
    "medfee_sumamt",
    "fund_pay_sumamt",
    "adjustment",
    "adjustment_note",
)
"""One row per statement line; the statement's own columns repeat on each of its lines (yuan)."""


def yuan(fen: int) -> str:
    """Fen as yuan with two decimals (``"48.89"``)."""
    return format_money(from_fen(fen))


def state_name(state: int) -> str:
    """``STATEMENT_STATE_ISSUED`` → ``issued``."""
    return statement_pb2.StatementState.Name(state).removeprefix("STATEMENT_STATE_").lower()


def job_state_name(state: int) -> str:
    """``JOB_STATE_SUCCEEDED`` → ``succeeded``."""
    return statement_pb2.JobState.Name(state).removeprefix("JOB_STATE_").lower()


def kind_name(kind: int) -> str:
    """``DISCREPANCY_KIND_MISSING_AT_NATIONAL`` → ``MISSING_AT_NATIONAL``."""
    return reconciliation_pb2.DiscrepancyKind.Name(kind).removeprefix("DISCREPANCY_KIND_")


def _day(day: Date) -> str:
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}"


def _table(
    title: str, columns: Sequence[str], *, right: Iterable[str] = (), whole: Iterable[str] = ()
) -> Table:
    """A table whose ``right`` columns are numbers and whose ``whole`` columns never wrap (ids)."""
    table = Table(title=title, title_justify="left")
    numeric, unbroken = set(right), set(whole)
    for heading in columns:
        table.add_column(
            heading, justify="right" if heading in numeric else "left", no_wrap=heading in unbroken
        )
    return table


# -- statements ----------------------------------------------------------------------------------


def lists_every_province(statements: Sequence[statement_pb2.Statement]) -> bool:
    """Whether every province the lines name has its statement listed (a province's operator sees only its own)."""
    listed = {(statement.period, statement.admdvs) for statement in statements}
    named = {
        (statement.period, admdvs)
        for statement in statements
        for line in statement.lines
        for admdvs in (line.insured_admdvs, line.treatment_admdvs)
    }
    return named <= listed


def nets_sum_fen(statements: Iterable[statement_pb2.Statement]) -> int:
    """The sum of the provinces' net positions: zero when the clearing is whole."""
    return sum(statement.net_fen for statement in statements)


def _side(statement: statement_pb2.Statement, line: statement_pb2.StatementLine) -> str:
    """Whether a pair line is the province's payable (its insured) or receivable (its hospitals)."""
    return "payable" if line.insured_admdvs == statement.admdvs else "receivable"


def statement_table(statement: statement_pb2.Statement) -> Table:
    """One province's statement: its pair lines, then payable, receivable and net."""
    table = _table(
        f"Statement {statement.statement_id} · {state_name(statement.state)}",
        ("insured → treatment", "side", "settlements", "fees", "fund pays", "note"),
        right=("settlements", "fees", "fund pays"),
    )
    for line in statement.lines:
        note = f"adjustment: {line.adjustment_note}" if line.adjustment else ""
        table.add_row(
            f"{line.insured_admdvs} → {line.treatment_admdvs}",
            _side(statement, line),
            str(line.settlement_count),
            yuan(line.medfee_sumamt_fen),
            yuan(line.fund_pay_sumamt_fen),
            note,
        )
    table.add_section()
    table.add_row("payable", "", "", "", yuan(statement.payable_fen), "as insured place")
    table.add_row("receivable", "", "", "", yuan(statement.receivable_fen), "as treatment place")
    table.add_row("[bold]net[/]", "", "", "", f"[bold]{yuan(statement.net_fen)}[/]", _net_meaning(statement))
    if statement.dispute_reason:
        table.caption = f"disputed by {statement.disputed_by}: {statement.dispute_reason}"
        table.caption_justify = "left"
    return table


def _net_meaning(statement: statement_pb2.Statement) -> str:
    if statement.net_fen > 0:
        return "the province is paid"
    return "the province pays" if statement.net_fen < 0 else "nothing moves"


def statements_overview(statements: Sequence[statement_pb2.Statement]) -> Table:
    """One row per province, then the nets' sum, which must be zero."""
    periods = sorted({statement.period for statement in statements})
    table = _table(
        f"Clearing statements {', '.join(periods)}",
        ("province", "state", "payable", "receivable", "net", "confirm by", "transfer by"),
        right=("payable", "receivable", "net"),
    )
    for statement in statements:
        table.add_row(
            statement.admdvs,
            state_name(statement.state),
            yuan(statement.payable_fen),
            yuan(statement.receivable_fen),
            yuan(statement.net_fen),
            _day(statement.confirm_by) if statement.HasField("confirm_by") else "",
            _day(statement.transfer_by) if statement.HasField("transfer_by") else "",
        )
    total = nets_sum_fen(statements)
    table.add_section()
    table.add_row(
        "all provinces",
        "",
        yuan(sum(s.payable_fen for s in statements)),
        yuan(sum(s.receivable_fen for s in statements)),
        f"[bold {'green' if total == 0 else 'red'}]{yuan(total)}[/]",
        "",
        "",
    )
    return table


def zero_sum_line(statements: Sequence[statement_pb2.Statement]) -> Text:
    """The zero-sum check of the nets, as a line to print."""
    total = nets_sum_fen(statements)
    if total == 0:
        return Text.from_markup(f"[green]✓[/] the {len(statements)} net positions sum to 0.00")
    return Text.from_markup(f"[bold red]✗ the net positions sum to {yuan(total)}, not 0.00[/]")


def statements_view(
    statements: Sequence[statement_pb2.Statement], *, every_province: bool = True
) -> RenderableType:
    """Every statement's table and the overview; with ``every_province``, the zero-sum check too."""
    check = [zero_sum_line(statements)] if every_province else []
    return Group(*(statement_table(s) for s in statements), statements_overview(statements), *check)


def _csv_statement(statement: statement_pb2.Statement) -> dict[str, str]:
    return {
        "statement_id": statement.statement_id,
        "period": statement.period,
        "province": statement.admdvs,
        "state": state_name(statement.state),
        "payable": yuan(statement.payable_fen),
        "receivable": yuan(statement.receivable_fen),
        "net": yuan(statement.net_fen),
    }


def write_statements_csv(handle: IO[str], statements: Iterable[statement_pb2.Statement]) -> int:
    """Write one CSV row per statement line (a statement with no line still gets a row); rows written."""
    writer = csv.DictWriter(handle, fieldnames=STATEMENT_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    rows = 0
    for statement in statements:
        head = _csv_statement(statement)
        for line in statement.lines or [None]:
            row = dict(head)
            if line is not None:
                row |= {
                    "insured_province": line.insured_admdvs,
                    "treatment_province": line.treatment_admdvs,
                    "side": _side(statement, line),
                    "settlement_count": str(line.settlement_count),
                    "medfee_sumamt": yuan(line.medfee_sumamt_fen),
                    "fund_pay_sumamt": yuan(line.fund_pay_sumamt_fen),
                    "adjustment": "true" if line.adjustment else "false",
                    "adjustment_note": line.adjustment_note,
                }
            writer.writerow(row)
            rows += 1
    return rows


# -- ledger and advances ---------------------------------------------------------------------------


def _account_kind(kind: int) -> str:
    return ledger_pb2.AccountKind.Name(kind).removeprefix("ACCOUNT_KIND_").lower().replace("_", " ")


def ledger_table(ledger: api.GetLedgerResponse) -> Table:
    """Every account's balance (debits positive) and the ledger's total, which must be zero."""
    table = _table(
        "The national ledger (debits positive)", ("region", "account", "balance"), right=("balance",)
    )
    for account in ledger.accounts:
        table.add_row(account.admdvs, _account_kind(account.kind), yuan(account.balance_fen))
    table.add_section()
    colour = "green" if ledger.balanced and ledger.total_fen == 0 else "red"
    table.add_row(
        "all accounts",
        "balanced" if ledger.balanced else "NOT balanced",
        f"[{colour}]{yuan(ledger.total_fen)}[/]",
    )
    return table


def _level(level: int) -> str:
    return (
        ledger_pb2.AlertLevel.Name(level).removeprefix("ALERT_LEVEL_").lower().replace("unspecified", "none")
    )


def advance_table(status: api.AdvanceStatus) -> Table:
    """A province's advance (预付金), what its insured used of it, and the alert level."""
    table = _table(
        f"Advance of {status.admdvs} for {status.year}",
        ("advance", "used", "usage", "alert"),
        right=("advance", "used", "usage"),
    )
    table.add_row(
        yuan(status.advance_fen), yuan(status.used_fen), status.usage_ratio, _level(status.alert_level)
    )
    return table


def proposals_table(proposals: Sequence[api.AdvanceProposal]) -> RenderableType:
    """Advance proposals (预付金测算) with their basis, the rule under them, and whether each was applied."""
    if not proposals:
        return "no advance proposal"
    first = proposals[0]
    table = _table(
        f"Advances proposed for {first.year}: {first.rule}",
        ("province", "months counted", "outflow", "monthly average", "proposed", "current", "applied"),
        right=("months counted", "outflow", "monthly average", "proposed", "current", "applied"),
    )
    for proposal in proposals:
        applied = yuan(proposal.applied_fen) if proposal.applied else "no"
        if proposal.override_reason:
            applied += f" ({proposal.override_reason})"
        table.add_row(
            proposal.admdvs,
            str(len(proposal.periods)),
            yuan(proposal.outflow_fen),
            yuan(proposal.monthly_average_fen),
            yuan(proposal.proposed_fen),
            yuan(proposal.current_advance_fen),
            applied,
        )
    return table


def alerts_table(alerts: Sequence[ledger_pb2.Alert]) -> Table:
    """Alerts, newest first."""
    table = _table("Clearing alerts", ("raised", "province", "kind", "level", "active", "message"))
    for alert in alerts:
        table.add_row(
            alert.raise_time.ToDatetime().isoformat(timespec="seconds") + "Z",
            alert.admdvs,
            ledger_pb2.AlertKind.Name(alert.kind).removeprefix("ALERT_KIND_").lower(),
            _level(alert.level),
            "yes" if alert.active else "no",
            alert.message,
        )
    return table


# -- reconciliation -------------------------------------------------------------------------------


def _totals(side: reconciliation_pb2.SideTotals) -> str:
    return f"{side.count} · {yuan(side.fund_pay_sumamt_fen)}"


def lines_table(lines: Sequence[reconciliation_pb2.ReconciliationLine]) -> Table:
    """The report: per day, province pair and insurance type, each side's count and fund payments."""
    table = _table(
        "Reconciliation report (settlements · fund pays, per side)",
        ("day", "insured → treatment", "insutype", "treatment", "national", "insured", "differences"),
        right=("treatment", "national", "insured", "differences"),
    )
    for line in lines:
        differences = str(line.discrepancy_count)
        table.add_row(
            _day(line.day),
            f"{line.insured_province} → {line.treatment_province}",
            line.insutype,
            _totals(line.treatment),
            _totals(line.national),
            _totals(line.insured),
            f"[bold red]{differences}[/]" if line.discrepancy_count else differences,
        )
    return table


def _record(side: reconciliation_pb2.SideRecord, undone: str = "reversed") -> str:
    """One side's record, in brief: absent, or its fund payment and state (``undone``: how it names a reversal)."""
    if not side.present:
        return "—"
    marks = [mark for mark, held in ((undone, side.reversed), ("confirmed", side.confirmed)) if held]
    return yuan(side.fund_pay_sumamt_fen) + (f" ({', '.join(marks)})" if marks else "")


def discrepancies_table(
    found: Sequence[reconciliation_pb2.Discrepancy], title: str = "Discrepancies"
) -> Table:
    """Each difference with the three sides' records side by side, and what repair did."""
    table = _table(
        title,
        ("kind", "msgid", "day", "insured → treatment", "treatment", "national", "insured", "repair"),
        right=("treatment", "national", "insured"),
        whole=("kind", "msgid", "day"),
    )
    for discrepancy in found:
        repair = discrepancy.repair_note or ("repaired" if discrepancy.repaired else "open")
        table.add_row(
            kind_name(discrepancy.kind),
            discrepancy.msgid,
            _day(discrepancy.day),
            f"{discrepancy.insured_province} → {discrepancy.treatment_province}",
            _record(discrepancy.treatment),
            _record(discrepancy.national),
            _record(discrepancy.insured, "voided"),
            f"[green]✓[/] {repair}" if discrepancy.repaired else f"[yellow]{repair}[/]",
        )
    return table
