"""`yidi audit`: read a node's audit trail — who changed or read what, when, and how it ended.

Times are UTC unless they carry an offset; relative forms (``30m``, ``1h``, ``2d``) count
back from now. Output is a table, or one JSON object per line with ``--json``. Exit codes:
0 done, 1 the node refused (its stable reason is printed), 2 bad options, 3 node unreachable.
The gRPC machinery loads only when the command runs.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import typer

from yidi_cli.client_tls import ClientTls, dials_node

if TYPE_CHECKING:
    from yidi.audit.v1 import audit_record_pb2

_RELATIVE = re.compile(r"(?P<count>\d+)(?P<unit>[smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_CALL_DEADLINE_S = 20.0
_PAGE_SIZE = 1000
_TIME_HELP = "UTC unless it carries an offset (+08:00 for China time); or 30m, 1h, 2d ago."


def parse_moment(text: str, option: str, now: datetime | None = None) -> datetime:
    """``2026-11-25``, ``2026-11-25T08:00[+08:00]`` (UTC without an offset) or ``90m``/``1h``/``2d`` ago."""
    relative = _RELATIVE.fullmatch(text.strip())
    if relative is not None:
        delta = timedelta(**{_UNITS[relative["unit"]]: int(relative["count"])})
        return (now or datetime.now(UTC)) - delta
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date, a date and time, or a span like 30m, 1h, 2d", param_hint=option
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _fields(record: audit_record_pb2.AuditRecord) -> dict[str, Any]:
    from yidi.audit.v1 import audit_record_pb2

    def name(enum: Any, number: int, prefix: str) -> str:
        return "" if number == 0 else str(enum.Name(number)).removeprefix(prefix).lower()

    return {
        "record_id": record.record_id,
        "record_time": record.record_time.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z"),
        "node": record.node,
        "node_region": record.node_region,
        "caller_role": name(audit_record_pb2.CallerRole, record.caller_role, "CALLER_ROLE_"),
        "caller": record.caller,
        "via": name(audit_record_pb2.Via, record.via, "VIA_"),
        "service": record.service,
        "method": record.method,
        "request_id": record.request_id,
        "grpc_code": record.grpc_code,
        "reason": record.reason,
        "peer": record.peer,
    }


def _show(
    address: str,
    tls: ClientTls,
    since: datetime,
    until: datetime | None,
    caller: str,
    method: str,
    as_json: bool,
) -> int:
    import json

    import grpc
    from rich.table import Column, Table

    from yidi.audit.v1 import audit_service_pb2 as api
    from yidi.audit.v1 import audit_service_pb2_grpc as api_grpc
    from yidi_cli.clearing_commands import console
    from yidi_cli.node_client import explain_refusal, open_channel
    from yidi_runtime.wire import timestamp_message

    request = api.ListAuditRecordsRequest(
        since=timestamp_message(since),
        until=timestamp_message(until),
        caller=caller,
        method=method,
        page_size=_PAGE_SIZE,
    )
    # Folded, never cut with an ellipsis: an audit line is read for its exact values.
    headers = ("time (UTC)", "node", "caller", "method", "request id", "result", "peer")
    table = Table(*(Column(header, overflow="fold") for header in headers))
    count = 0
    with open_channel(address, tls) as channel:
        stub = api_grpc.AuditServiceStub(channel)
        while True:
            try:
                page = stub.ListAuditRecords(request, timeout=_CALL_DEADLINE_S)
            except grpc.RpcError as error:
                return explain_refusal(error)
            for record in page.records:
                fields = _fields(record)
                count += 1
                if as_json:
                    typer.echo(json.dumps(fields, ensure_ascii=False))
                    continue
                table.add_row(
                    fields["record_time"],
                    fields["node"],
                    fields["caller"] or "(unauthenticated)",
                    f"{fields['service'].rpartition('.')[2]}/{fields['method']}",
                    fields["request_id"],
                    fields["reason"] or fields["grpc_code"],
                    fields["peer"],
                )
            if not page.next_page_token:
                break
            request.page_token = page.next_page_token
    if not as_json:
        table.caption = f"{count} record{'' if count == 1 else 's'}"
        console().print(table)
    return 0


@dials_node
def audit(
    since: str = typer.Option(..., "--since", help=f"From this moment on: {_TIME_HELP}"),
    until: str | None = typer.Option(None, "--until", help=f"Before this moment (default now): {_TIME_HELP}"),
    caller: str = typer.Option(
        "",
        "--caller",
        help="Only this caller (institution/H33040200001, operator/330000/zhang.wei, node/330000), "
        "or every caller under a prefix ending in / (institution/).",
    ),
    method: str = typer.Option(
        "", "--method", help="Only this method: Settle, or yidi.settlement.v1.SettlementService/Settle."
    ),
    address: str = typer.Option("127.0.0.1:50051", "--address", help="The node's gRPC address."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per record and line, not a table."),
    *,
    tls: ClientTls,
) -> None:
    """Who made which change or read of personal or money data at a node, when, and how it ended (its audit trail)."""
    now = datetime.now(UTC)
    start = parse_moment(since, "--since", now)
    end = parse_moment(until, "--until", now) if until is not None else None
    if end is not None and end < start:
        raise typer.BadParameter("must not be before --since", param_hint="--until")
    raise typer.Exit(_show(address, tls, start, end, caller.strip(), method.strip(), as_json))
