"""The gRPC side of `yidi filing`: reading the person CSV and rules TOML, calling the node, printing.

Kept apart from the command definitions so `yidi` starts without loading gRPC for other commands.
"""

from __future__ import annotations

import csv
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import grpc
from google.type import date_pb2
from rich.console import Console
from rich.table import Table

from yidi.filing.v1 import filing_pb2 as pb
from yidi.filing.v1 import filing_service_pb2 as api
from yidi.filing.v1 import filing_service_pb2_grpc as api_grpc
from yidi.filing.v1 import insured_person_pb2 as person_pb
from yidi.type.v1 import filing_category_pb2
from yidi_cli.client_tls import ClientTls
from yidi_cli.node_client import explain_refusal, message_id, open_channel
from yidi_core.errors import DomainError
from yidi_core.money import parse_money, to_fen

UNREADABLE = 2
PERSON_COLUMNS = (
    "certno",
    "psn_name",
    "insuplc_admdvs",
    "insutype",
    "psn_type",
    "insured_since",
    "credential_activated",
    "has_personal_account",
    "emp_name",
    "contribution_gaps",
)
FUND_COLUMNS = ("low_income", "civil_servant", "assistance_category", "family_account_balance")
"""Optional columns the further funds and 门诊共济 read; a file without them enrols persons without these facts."""
_TRUE = {"true": True, "false": False, "": False}


class FileProblem(ValueError):
    """A cell or key the command cannot read, named as the file's author sees it."""


def _date(text: str, where: str) -> date_pb2.Date | None:
    if not text.strip():
        return None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise FileProblem(f"{where}: must be a date yyyy-mm-dd, got {text[:20]!r}") from None
    return date_pb2.Date(year=day.year, month=day.month, day=day.day)


def _flag(text: str, where: str) -> bool:
    value = _TRUE.get(text.strip().lower())
    if value is None:
        raise FileProblem(f"{where}: must be true or false, got {text[:20]!r}")
    return value


def _fen(text: str, where: str) -> int:
    """An amount in yuan (e.g. ``300.00``) as fen; empty is 0."""
    if not text.strip():
        return 0
    try:
        return to_fen(parse_money(text, where))
    except DomainError as error:
        raise FileProblem(error.message) from None


def _gaps(text: str, where: str) -> list[person_pb.ContributionGap]:
    """``start..end`` periods separated by ';' (an empty end: still interrupted)."""
    gaps = []
    for part in filter(None, (piece.strip() for piece in text.split(";"))):
        start, separator, end = part.partition("..")
        if not separator:
            raise FileProblem(f"{where}: each gap must be yyyy-mm-dd..[yyyy-mm-dd], got {part[:30]!r}")
        gaps.append(person_pb.ContributionGap(start_date=_date(start, where), end_date=_date(end, where)))
    return gaps


def read_persons(path: Path) -> list[person_pb.InsuredPerson]:
    """Every row of a person CSV as a message; the node validates codes and ID numbers."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in PERSON_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise FileProblem(f"row 1: missing columns {', '.join(missing)}")
        persons = []
        for number, row in enumerate(reader, start=2):
            cell = {column: (row.get(column) or "") for column in (*PERSON_COLUMNS, *FUND_COLUMNS)}
            persons.append(
                person_pb.InsuredPerson(
                    certno=cell["certno"].strip(),
                    psn_name=cell["psn_name"].strip(),
                    insuplc_admdvs=cell["insuplc_admdvs"].strip(),
                    insutype=cell["insutype"].strip(),
                    psn_type=cell["psn_type"].strip(),
                    insured_since=_date(cell["insured_since"], f"row {number}, column insured_since"),
                    credential_activated=_flag(
                        cell["credential_activated"], f"row {number}, column credential_activated"
                    ),
                    has_personal_account=_flag(
                        cell["has_personal_account"], f"row {number}, column has_personal_account"
                    ),
                    emp_name=cell["emp_name"].strip(),
                    contribution_gaps=_gaps(
                        cell["contribution_gaps"], f"row {number}, column contribution_gaps"
                    ),
                    low_income=_flag(cell["low_income"], f"row {number}, column low_income"),
                    civil_servant=_flag(cell["civil_servant"], f"row {number}, column civil_servant"),
                    assistance_category=cell["assistance_category"].strip(),
                    family_account_balance_fen=_fen(
                        cell["family_account_balance"], f"row {number}, column family_account_balance"
                    ),
                )
            )
    return persons


def _console_problem(problem: FileProblem) -> int:
    Console(stderr=True).print(f"yidi: {problem}", markup=False)
    return UNREADABLE


def run_import_persons(address: str, tls: ClientTls, path: Path, request_id: str | None) -> int:
    """Send the CSV's persons in one all-or-nothing batch; the exit code."""
    try:
        persons = read_persons(path)
    except FileProblem as problem:
        return _console_problem(problem)
    regions = {person.insuplc_admdvs for person in persons}
    rid = request_id or message_id(regions.pop() if len(regions) == 1 else "000000")
    with open_channel(address, tls) as channel:
        try:
            answer = api_grpc.FilingServiceStub(channel).ImportInsuredPersons(
                api.ImportInsuredPersonsRequest(request_id=rid, persons=persons), timeout=120
            )
        except grpc.RpcError as error:
            return explain_refusal(error)
    print(
        f"imported {path.name}: {len(persons)} persons, {answer.created_count} created, "
        f"{answer.updated_count} updated (request {rid})"
    )
    return 0


_RULE_FIELDS = {field.name for field in pb.FilingRules.DESCRIPTOR.fields}
_DATE_LISTS = {"holidays", "working_weekends"}


def read_rules(path: Path) -> list[pb.FilingRules]:
    """Each ``[[rules]]`` table of a TOML file as a FilingRules message (TOML dates for dates)."""
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise FileProblem(f"{path.name}: not valid TOML: {error}") from None
    tables = document.get("rules")
    if not isinstance(tables, list) or not tables:
        raise FileProblem(f"{path.name}: needs at least one [[rules]] table")
    messages = []
    for index, table in enumerate(tables):
        unknown = sorted(set(table) - _RULE_FIELDS)
        if unknown:
            raise FileProblem(f"rules[{index}].{unknown[0]}: not a filing rule")
        values: dict[str, Any] = dict(table)
        for name in _DATE_LISTS & set(values):
            values[name] = [date_pb2.Date(year=d.year, month=d.month, day=d.day) for d in values[name]]
        if "effective_date" in values:
            day = values["effective_date"]
            values["effective_date"] = date_pb2.Date(year=day.year, month=day.month, day=day.day)
        try:
            messages.append(pb.FilingRules(**values))
        except (TypeError, ValueError, AttributeError) as error:
            raise FileProblem(f"rules[{index}]: {error}") from None
    return messages


def run_set_rules(address: str, tls: ClientTls, path: Path) -> int:
    """Set every region's rules from the file, one idempotent request each; the exit code."""
    try:
        all_rules = read_rules(path)
    except FileProblem as problem:
        return _console_problem(problem)
    with open_channel(address, tls) as channel:
        stub = api_grpc.FilingServiceStub(channel)
        for rules in all_rules:
            try:
                stub.SetFilingRules(
                    api.SetFilingRulesRequest(request_id=message_id(rules.insuplc_admdvs), rules=rules),
                    timeout=30,
                )
            except grpc.RpcError as error:
                print(f"rules of {rules.insuplc_admdvs} refused:")
                return explain_refusal(error)
            approval = "auto-approve self-service" if rules.auto_approve else "manual review"
            print(
                f"rules of {rules.insuplc_admdvs}: {approval}, {rules.review_deadline_working_days} working days"
            )
    return 0


def _iso(value: date_pb2.Date) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}" if value.year else ""


def _name(enum: Any, prefix: str, number: int) -> str:
    return enum.Name(number).removeprefix(prefix).lower()


def _table(answer: api.ListPendingReviewsResponse, region: str) -> Table:
    table = Table(
        title=f"Review queue of {region}: {answer.total_size} waiting, {answer.overdue_count} overdue",
    )
    for heading in (
        "deadline",
        "days left",
        "",
        "filing",
        "person",
        "ID number",
        "category",
        "channel",
        "submitted",
    ):
        table.add_column(heading, justify="right" if heading == "days left" else "left")
    for item in answer.reviews:
        filing = item.filing
        table.add_row(
            _iso(filing.review_deadline),
            str(item.working_days_left),
            "[bold red]OVERDUE[/]" if item.overdue else "",
            filing.filing_id,
            filing.psn_no,
            filing.certno_masked,
            _name(filing_category_pb2.FilingCategory, "FILING_CATEGORY_", filing.category),
            _name(pb.FilingChannel, "FILING_CHANNEL_", filing.channel),
            filing.submit_time.ToDatetime().strftime("%Y-%m-%d %H:%M") + " UTC",
        )
    return table


def run_pending(address: str, tls: ClientTls, region: str, overdue_only: bool, limit: int) -> int:
    """Print the first ``limit`` items of the queue; the exit code."""
    request = api.ListPendingReviewsRequest(insuplc_admdvs=region, overdue_only=overdue_only, page_size=limit)
    with open_channel(address, tls) as channel:
        try:
            answer = api_grpc.FilingServiceStub(channel).ListPendingReviews(request, timeout=30)
        except grpc.RpcError as error:
            return explain_refusal(error)
    console = Console(width=200)
    console.print(_table(answer, region))
    shown = len(answer.reviews)
    if answer.next_page_token:
        console.print(f"showing the first {shown}; raise --limit to see more", markup=False)
    return 0


def _enum_number(enum: Any, prefix: str, name: str, what: str) -> int | None:
    try:
        return int(enum.Value(prefix + name.strip().upper()))
    except ValueError:
        Console(stderr=True).print(f"yidi: {name[:30]!r} is not a {what}", markup=False)
        return None


def run_rechecks(address: str, tls: ClientTls, region: str, state: str, limit: int) -> int:
    """Print the first ``limit`` rechecks of ``region`` in ``state`` ('all': every state); the exit code."""
    number = (
        0
        if state == "all"
        else _enum_number(api.FilingRecheckState, "FILING_RECHECK_STATE_", state, "recheck state")
    )
    if number is None:
        return UNREADABLE
    request = api.ListFilingRechecksRequest(insuplc_admdvs=region, state=number, page_size=limit)  # type: ignore[arg-type]
    with open_channel(address, tls) as channel:
        try:
            answer = api_grpc.FilingServiceStub(channel).ListFilingRechecks(request, timeout=30)
        except grpc.RpcError as error:
            return explain_refusal(error)
    table = Table(title=f"Filing rechecks of {region} ({state})")
    for heading in ("filing", "person", "category", "rules", "fails", "state", "decided by"):
        table.add_column(heading)
    for recheck in answer.rechecks:
        filing = recheck.filing
        table.add_row(
            filing.filing_id,
            filing.psn_no,
            _name(filing_category_pb2.FilingCategory, "FILING_CATEGORY_", filing.category),
            f"{recheck.old_rules_version} → {recheck.new_rules_version}",
            "\n".join(f"{failure.reason} {failure.field}" for failure in recheck.failures),
            _name(api.FilingRecheckState, "FILING_RECHECK_STATE_", recheck.state),
            recheck.decided_by,
        )
    console = Console(width=200)
    console.print(table)
    if answer.next_page_token:
        console.print(f"showing the first {len(answer.rechecks)}; raise --limit to see more", markup=False)
    return 0


def run_decide_recheck(
    address: str, tls: ClientTls, filing_id: str, decision: str, reason: str, request_id: str | None
) -> int:
    """Send one decision (idempotent on the request id printed); the exit code."""
    number = _enum_number(api.RecheckDecision, "RECHECK_DECISION_", decision, "recheck decision")
    if number is None:
        return UNREADABLE
    rid = request_id or message_id(filing_id[:6])
    request = api.DecideFilingRecheckRequest(
        request_id=rid,
        filing_id=filing_id,
        decision=number,  # type: ignore[arg-type]
        reason=reason,
    )
    with open_channel(address, tls) as channel:
        try:
            answer = api_grpc.FilingServiceStub(channel).DecideFilingRecheck(request, timeout=30)
        except grpc.RpcError as error:
            return explain_refusal(error)
    state = _name(api.FilingRecheckState, "FILING_RECHECK_STATE_", answer.recheck.state)
    print(f"recheck of {filing_id}: {state} (request {rid})")
    return 0
