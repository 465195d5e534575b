"""ClearingService requests become commands at the national node: plain values in, every bad field out.

Every RPC has a command (a read, its query) of plain values; the handlers take those and
nothing else. The conversion refuses a bad request with the reason and field paths the
API promises — several bad fields at once where it did before — and a journal batch's
seals are checked there, on the bytes they sign, before any field.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest
from google.protobuf.message import Message
from prometheus_client import CollectorRegistry

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import journal_pb2
from yidi_core.errors import DomainError
from yidi_runtime.certs import Pki, init_pki
from yidi_runtime.config import NodeSettings
from yidi_runtime.integrity import NodeIntegrity, Seal
from yidi_runtime.wire import date_message, timestamp_message
from yidi_services.clearing import commands, convert, messages
from yidi_services.clearing.calls import Answering
from yidi_services.clearing.handlers import Clearing
from yidi_services.clearing.periods import Period
from yidi_services.clearing.reconciliation import commands as reconciliation_commands
from yidi_services.clearing.reconciliation import convert as reconciliation_convert
from yidi_services.clearing.reconciliation.handlers import Reconciliation

JIAXING, NATIONAL = "330400", "000000"
COMMANDS = {
    name: value
    for module in (commands, reconciliation_commands)
    for name, value in vars(module).items()
    if dataclasses.is_dataclass(value) and value.__module__ == module.__name__
}


def proto_types(hint: object) -> list[object]:
    """The protobuf message types anywhere in a type hint (through unions, tuples and dataclasses)."""
    if isinstance(hint, type) and issubclass(hint, Message):
        return [hint]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return [found for field in typing.get_type_hints(hint).values() for found in proto_types(field)]
    return [found for argument in typing.get_args(hint) for found in proto_types(argument)]


def test_every_rpc_has_a_command_of_plain_values() -> None:
    service = api.DESCRIPTOR.services_by_name["ClearingService"]
    assert [name for name in service.methods_by_name if name not in COMMANDS] == []
    for name in service.methods_by_name:
        command = COMMANDS[name]
        assert command.__dataclass_params__.frozen, name  # type: ignore[attr-defined]
        assert proto_types(command) == [], name


@pytest.mark.parametrize("handlers", [Clearing, Reconciliation])
def test_the_handlers_take_commands_and_never_a_request(handlers: type) -> None:
    for name, method in inspect.getmembers(handlers, inspect.isfunction):
        if name.startswith("_"):
            continue
        hints = typing.get_type_hints(method)
        hints.pop("return")
        command, *rest = hints.values()
        assert command in COMMANDS.values(), name
        assert all(typing.get_origin(hint) is Answering for hint in rest), name


def refused(convert_request: Callable[[], object]) -> tuple[str, list[str]]:
    """The reason and the fields named of a refused conversion."""
    with pytest.raises(DomainError) as raised:
        convert_request()
    return raised.value.reason_code, [violation.field for violation in raised.value.violations]


TRANSFER = api.RecordTransferRequest(request_id="T1", statement_id="2026-05/630000")
REFUSALS: list[tuple[str, Callable[[], object], str, list[str]]] = [
    (
        "every bad field of an advance",
        lambda: messages.set_advance(
            api.SetAdvanceRequest(request_id="A1", admdvs="630100", year=1999, amount_fen=0)
        ),
        "INVALID_CODE",
        ["admdvs", "year", "amount_fen"],
    ),
    (
        "a top-up's reason too long",
        lambda: messages.top_up_advance(
            api.TopUpAdvanceRequest(
                request_id="A2", admdvs="630000", year=2026, amount_fen=1, reason="因" * 201
            )
        ),
        "INVALID_ARGUMENT",
        ["reason"],
    ),
    (
        "the pool has no advance",
        lambda: messages.get_advance_status(api.GetAdvanceStatusRequest(admdvs=NATIONAL, year=2026)),
        "INVALID_CODE",
        ["admdvs"],
    ),
    (
        "a negative page",
        lambda: messages.list_alerts(api.ListAlertsRequest(page_size=-1)),
        "INVALID_ARGUMENT",
        ["page_size"],
    ),
    (
        "no period",
        lambda: messages.run_clearing(api.RunClearingRequest(request_id="C1")),
        "INVALID_ARGUMENT",
        ["period"],
    ),
    (
        "a thirteenth month",
        lambda: messages.run_clearing(api.RunClearingRequest(request_id="C2", period="2026-13")),
        "INVALID_ARGUMENT",
        ["period"],
    ),
    (
        "an unknown statement state",
        lambda: messages.list_statements(api.ListStatementsRequest(state=99)),  # type: ignore[arg-type]
        "INVALID_ARGUMENT",
        ["state"],
    ),
    (
        "a confirming name too long",
        lambda: messages.confirm_statement(
            api.ConfirmStatementRequest(request_id="S1", statement_id="x", confirmed_by="x" * 65)
        ),
        "INVALID_ARGUMENT",
        ["confirmed_by"],
    ),
    ("no transfer", lambda: messages.record_transfer(TRANSFER), "INVALID_ARGUMENT", ["transfer"]),
    (
        "a transfer of nothing",
        lambda: messages.record_transfer(
            api.RecordTransferRequest(request_id="T2", transfer={"bank_reference": "B1"})
        ),
        "INVALID_ARGUMENT",
        ["transfer.amount_fen"],
    ),
    (
        "every field of a clawback",
        lambda: messages.record_clawback(api.RecordClawbackRequest(request_id="K1")),
        "INVALID_ARGUMENT",
        ["msgid", "amount_fen", "reason", "fixmedins_code"],
    ),
    (
        "a journal filtered by a city",
        lambda: convert.list_journal_entries(api.ListJournalEntriesRequest(admdvs="630100")),
        "INVALID_CODE",
        ["admdvs"],
    ),
    (
        "a journal range running backwards",
        lambda: convert.list_journal_entries(
            api.ListJournalEntriesRequest(
                start_time=timestamp_message(datetime(2026, 5, 2, tzinfo=UTC)),
                end_time=timestamp_message(datetime(2026, 5, 1, tzinfo=UTC)),
            )
        ),
        "INVALID_ARGUMENT",
        ["end_time"],
    ),
    (
        "a reconciliation without request id",
        lambda: reconciliation_convert.reconcile(api.ReconcileRequest()),
        "INVALID_ARGUMENT",
        ["request_id"],
    ),
    (
        "a reconciliation without days",
        lambda: reconciliation_convert.reconcile(api.ReconcileRequest(request_id="R1")),
        "INVALID_ARGUMENT",
        ["start_date"],
    ),
    (
        "a reconciliation over more than a month",
        lambda: reconciliation_convert.reconcile(
            api.ReconcileRequest(
                request_id="R2",
                start_date=date_message(date(2026, 5, 1)),
                end_date=date_message(date(2026, 6, 1)),
            )
        ),
        "INVALID_ARGUMENT",
        ["end_date"],
    ),
    (
        "a run named by blanks",
        lambda: reconciliation_convert.get_reconciliation_run(api.GetReconciliationRunRequest(run_id="  ")),
        "INVALID_ARGUMENT",
        ["run_id"],
    ),
    (
        "a repair naming an empty id",
        lambda: reconciliation_convert.repair_discrepancies(
            api.RepairDiscrepanciesRequest(request_id="P1", discrepancy_ids=["d1", " "])
        ),
        "INVALID_ARGUMENT",
        ["discrepancy_ids"],
    ),
    (
        "a repair naming nothing",
        lambda: reconciliation_convert.repair_discrepancies(api.RepairDiscrepanciesRequest(request_id="P2")),
        "INVALID_ARGUMENT",
        ["run_id"],
    ),
    (
        "every bad field of a 3201 check",
        lambda: reconciliation_convert.check_institution_totals(
            api.CheckInstitutionTotalsRequest(fixmedins_code="H1", fixmedins_setl_cnt=-1)
        ),
        "INVALID_CODE",
        ["fixmedins_code", "group.insutype", "group.clr_type", "group.setl_optins", "fixmedins_setl_cnt"],
    ),
    (
        "a 3202 row twice",
        lambda: reconciliation_convert.check_institution_details(
            api.CheckInstitutionDetailsRequest(
                fixmedins_code="H33040200001",
                start_date=date_message(date(2026, 5, 1)),
                end_date=date_message(date(2026, 5, 31)),
                rows=[{"setl_id": "S1"}, {"setl_id": " S1 "}, {}],
            )
        ),
        "INVALID_ARGUMENT",
        ["rows[1].setl_id", "rows[2].setl_id"],
    ),
]


@pytest.mark.parametrize(
    ("convert_request", "reason", "fields"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_a_bad_request_is_refused_naming_its_fields(
    convert_request: Callable[[], object], reason: str, fields: list[str]
) -> None:
    assert refused(convert_request) == (reason, fields)


def test_good_requests_become_plain_values() -> None:
    assert messages.top_up_advance(
        api.TopUpAdvanceRequest(
            request_id="A3", admdvs="630000", year=2026, amount_fen=5, reason=" 红色预警 "
        )
    ) == commands.TopUpAdvance("A3", "630000", 2026, 5, "红色预警")
    assert messages.run_clearing(api.RunClearingRequest(request_id="C3", period="2026-05")) == (
        commands.RunClearing("C3", Period(2026, 5))
    )
    moved = api.RecordTransferRequest(
        request_id="T3", statement_id=" 2026-05/630000 ", transfer={"amount_fen": 7, "bank_reference": "B7"}
    )
    assert messages.record_transfer(moved) == commands.RecordTransfer("T3", "2026-05/630000", 7, "B7", None)
    details = reconciliation_convert.check_institution_details(
        api.CheckInstitutionDetailsRequest(
            fixmedins_code="H33040200001",
            start_date=date_message(date(2026, 5, 1)),
            end_date=date_message(date(2026, 5, 31)),
            rows=[
                {
                    "setl_id": " S1 ",
                    "medfee_sumamt_fen": 100,
                    "fund_pay_sumamt_fen": -60,
                    "refd_setl_flag": True,
                }
            ],
        )
    )
    assert details.rows == (
        reconciliation_commands.DetailRow("S1", "", "", -100, -60, 0, refd_setl_flag=True),
    )
    assert details.days.start == date(2026, 5, 1) and details.days.end == date(2026, 5, 31)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki"), nodes=[JIAXING, NATIONAL])


def integrity(pki: Pki, region: str) -> NodeIntegrity:
    return NodeIntegrity(NodeSettings(region=region, tls=pki.node(region)), CollectorRegistry())


def entry(**fields: object) -> journal_pb2.JournalEntry:
    """A settlement made at a Jiaxing hospital for a person insured in Qinghai."""
    values: dict[str, object] = {
        "msgid": "H33040200001202605201030000001",
        "setl_id": "330400SETL00000000000000000001",
        "kind": journal_pb2.JOURNAL_ENTRY_KIND_SETTLEMENT,
        "fixmedins_code": "H33040200001",
        "insuplc_admdvs": "630102",
        "mdtrtarea_admvs": "330402",
        "medfee_sumamt_fen": 1_500,
        "fund_pay_sumamt_fen": 1_000,
        "psn_cash_pay_fen": 500,
        "setl_time": timestamp_message(datetime(2026, 5, 20, 2, 30, tzinfo=UTC)),
    }
    return journal_pb2.JournalEntry(**(values | fields))


def test_a_sealed_batch_becomes_entries_that_keep_their_seals(pki: Pki) -> None:
    sealed = entry()
    integrity(pki, JIAXING).seal(sealed)
    request = api.AppendJournalEntriesRequest(request_id="J1", source_admdvs=JIAXING, entries=[sealed])
    command = convert.append_journal_entries(request, integrity(pki, NATIONAL))
    assert (command.request_id, command.source_admdvs) == ("J1", JIAXING)
    (kept,) = command.entries
    assert (kept.msgid, kept.amounts.fund_pay_sumamt_fen, kept.insured_province) == (
        sealed.msgid,
        1_000,
        "630000",
    )
    assert kept.seal == Seal.of(sealed.payload_signature) and kept.seal.signature


def test_a_batch_is_refused_for_its_seals_before_its_fields(pki: Pki) -> None:
    unsealed = entry(fund_pay_sumamt_fen=-1)
    request = api.AppendJournalEntriesRequest(request_id="J2", source_admdvs=JIAXING, entries=[unsealed])
    with pytest.raises(DomainError) as raised:
        convert.append_journal_entries(request, integrity(pki, NATIONAL))
    assert raised.value.reason_code == "SIGNATURE_INVALID"
    insecure = NodeIntegrity(NodeSettings(region=NATIONAL, insecure=True), CollectorRegistry())
    assert refused(lambda: convert.append_journal_entries(request, insecure)) == (
        "INVALID_ARGUMENT",
        ["entries[0].fund_pay_sumamt_fen"],
    )
