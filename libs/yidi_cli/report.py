"""`yidi report`: the direct-settlement rate (应结尽结) of a treatment node, per institution and region.

Prints the node's cases over a span of service dates (default: this month so far, in China)
as tables: per institution, per treatment region and per insured region, each with the
direct, refused and manual cases, the rate, and the reasons for the cases not settled
directly; or the node's answer as JSON. Exit codes: 0 done, 1 the node refused (its stable
reason is printed), 2 bad options, 3 node unreachable. The gRPC machinery loads only when
the command runs.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import typer

from yidi_cli.client_tls import ClientTls, dials_node

if TYPE_CHECKING:
    from rich.table import Table

    from yidi.settlement.v1 import settlement_service_pb2 as api

_CALL_DEADLINE_S = 60.0
_REASONS_SHOWN = 3


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date yyyy-mm-dd", param_hint=option) from None


def percent(rate_bp: int) -> str:
    """Basis points as a percentage with two decimals (``9876`` → ``98.76%``)."""
    return f"{rate_bp // 100}.{rate_bp % 100:02d}%"


def reasons_text(tally: api.DirectSettlementTally) -> str:
    """The main reasons cases were not settled directly (``NOT_FILED (refused) 2; …``)."""
    shown = [
        f"{reason.reason} ({reason.outcome}) {reason.count}" for reason in tally.reasons[:_REASONS_SHOWN]
    ]
    more = len(tally.reasons) - _REASONS_SHOWN
    return "; ".join(shown) + (f"; {more} more" if more > 0 else "")


def tally_table(title: str, heading: str, tallies: list[api.DirectSettlementTally]) -> Table:
    """One row per institution or region: cases by outcome, the rate, and the main reasons."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column(heading, no_wrap=True)
    for column in ("cases", "direct", "refused", "manual", "pending", "rate"):
        table.add_column(column, justify="right")
    table.add_column("why not direct")
    for tally in tallies:
        table.add_row(
            tally.key or "all",
            str(tally.case_count),
            str(tally.direct_count),
            str(tally.refused_count),
            str(tally.manual_count),
            str(tally.pending_count),
            percent(tally.direct_rate_bp),
            reasons_text(tally),
        )
    return table


def run_report(
    address: str, tls: ClientTls, start: date, end: date, institution: str, insured: str, as_json: bool
) -> int:
    """Ask the node for the report and print it; the exit code."""
    import json

    import grpc
    from google.protobuf import json_format
    from google.type.date_pb2 import Date
    from rich.console import Console

    from yidi.settlement.v1 import settlement_service_pb2 as api
    from yidi.settlement.v1 import settlement_service_pb2_grpc as api_grpc
    from yidi_cli.node_client import explain_refusal, open_channel

    request = api.GetDirectSettlementReportRequest(
        start_date=Date(year=start.year, month=start.month, day=start.day),
        end_date=Date(year=end.year, month=end.month, day=end.day),
        fixmedins_code=institution,
        insuplc_admdvs=insured,
    )
    with open_channel(address, tls) as channel:
        try:
            report = api_grpc.SettlementServiceStub(channel).GetDirectSettlementReport(
                request, timeout=_CALL_DEADLINE_S
            )
        except grpc.RpcError as error:
            return explain_refusal(error)
    if as_json:
        document = json_format.MessageToDict(
            report, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
        )
        print(json.dumps(document, ensure_ascii=False, indent=2))
        return 0
    console = Console(width=160)
    total = report.total
    console.print(
        f"Direct settlement (应结尽结) {start} to {end}: {percent(total.direct_rate_bp)} of "
        f"{total.case_count} cases settled directly ({total.refused_count} refused, "
        f"{total.manual_count} reimbursed manually, {total.pending_count} visits pending)",
        markup=False,
    )
    console.print(tally_table("Per institution", "institution", list(report.institutions)))
    console.print(tally_table("Per treatment region", "region", list(report.treatment_regions)))
    console.print(tally_table("Per insured region", "region", list(report.insured_regions)))
    return 0


@dials_node
def report(
    start: str | None = typer.Option(
        None, "--from", help="First service date yyyy-mm-dd (default: the 1st)."
    ),
    end: str | None = typer.Option(
        None, "--to", help="Last service date yyyy-mm-dd (default: today, China)."
    ),
    institution: str = typer.Option("", "--institution", help="Only this institution."),
    insured: str = typer.Option("", "--insured", help="Only patients insured in this region (or below it)."),
    as_json: bool = typer.Option(False, "--json", help="Print the node's answer as JSON."),
    address: str = typer.Option("127.0.0.1:50051", "--address", help="The treatment node's gRPC address."),
    *,
    tls: ClientTls,
) -> None:
    """The direct-settlement rate (应结尽结) per institution and region: direct, refused, manual, why."""
    from datetime import datetime

    from yidi_runtime.wire import china_day

    today = china_day(datetime.now().astimezone())
    last = _day(end, "--to") or today
    first = _day(start, "--from") or last.replace(day=1)
    raise typer.Exit(run_report(address, tls, first, last, institution.strip(), insured.strip(), as_json))
