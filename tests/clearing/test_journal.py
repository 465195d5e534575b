"""The national settlement journal through ClearingService's stub: appended once, listed in record order."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from google.protobuf.timestamp_pb2 import Timestamp

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import clearing_service_pb2_grpc as api_grpc
from yidi.clearing.v1 import journal_pb2
from yidi_runtime.auth import PRINCIPAL_HEADER
from yidi_runtime.config import Peer
from yidi_runtime.server import Node, create_server
from yidi_services.clearing import servicer as clearing_servicer
from yidi_services.clearing.models import Base
from yidi_services.node import GROUPS
from yidi_testing import NodeSpec, error_details, node_tree, settings_for

RECORDED_AT = datetime(2026, 2, 1, 8, 30, tzinfo=UTC)
JANUARY = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
SETTLEMENT = journal_pb2.JOURNAL_ENTRY_KIND_SETTLEMENT
REVERSAL = journal_pb2.JOURNAL_ENTRY_KIND_REVERSAL
_SEQUENCE = itertools.count(1)


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def msgid() -> str:
    """A fresh settlement message id from a Beijing hospital."""
    return f"H1101050000120260105093000{next(_SEQUENCE):04d}"


def settlement(
    *,
    insured: str = "131000",
    treatment: str = "110105",
    fund: int = 4889,
    acct: int = 0,
    cash: int = 1540,
    at: datetime = JANUARY,
    **fields: object,
) -> journal_pb2.JournalEntry:
    """A settlement entry (the worked example's amounts unless told)."""
    values: dict[str, object] = {
        "msgid": msgid(),
        "setl_id": f"110000SETL{next(_SEQUENCE):020d}",
        "kind": SETTLEMENT,
        "mdtrt_id": f"110000MDTR{next(_SEQUENCE):020d}",
        "psn_no": "131000000000000000000000000001",
        "fixmedins_code": "H11010500001",
        "insuplc_admdvs": insured,
        "mdtrtarea_admvs": treatment,
        "insutype": "310",
        "clr_type": "11",
        "medfee_sumamt_fen": fund + acct + cash,
        "fund_pay_sumamt_fen": fund,
        "acct_pay_fen": acct,
        "psn_cash_pay_fen": cash,
        "setl_time": stamp(at),
    }
    return journal_pb2.JournalEntry(**(values | fields))


def reversal_of(original: journal_pb2.JournalEntry, **fields: object) -> journal_pb2.JournalEntry:
    """The reversal of ``original``: same regions, amounts negated."""
    values: dict[str, object] = {
        "msgid": msgid(),
        "setl_id": f"110000SETL{next(_SEQUENCE):020d}",
        "kind": REVERSAL,
        "reverses_msgid": original.msgid,
        "fixmedins_code": original.fixmedins_code,
        "insuplc_admdvs": original.insuplc_admdvs,
        "mdtrtarea_admvs": original.mdtrtarea_admvs,
        "medfee_sumamt_fen": -original.medfee_sumamt_fen,
        "fund_pay_sumamt_fen": -original.fund_pay_sumamt_fen,
        "acct_pay_fen": -original.acct_pay_fen,
        "psn_cash_pay_fen": -original.psn_cash_pay_fen,
        "setl_time": stamp(original.setl_time.ToDatetime(tzinfo=UTC) + timedelta(hours=1)),
    }
    return journal_pb2.JournalEntry(**(values | fields))


def batch(*entries: journal_pb2.JournalEntry, source: str = "110000") -> api.AppendJournalEntriesRequest:
    return api.AppendJournalEntriesRequest(
        request_id=f"110000000000202602010830{next(_SEQUENCE):06d}"[-30:],
        source_admdvs=source,
        entries=entries,
    )


@dataclass
class National:
    node: Node
    stub: api_grpc.ClearingServiceStub

    def listed(self, **filters: object) -> list[journal_pb2.JournalEntry]:
        """Every entry matching the filters, page after page."""
        found, token = [], ""
        while True:
            page = self.stub.ListJournalEntries(
                api.ListJournalEntriesRequest(page_size=2, page_token=token, **filters), timeout=10
            )
            found += page.entries
            token = page.next_page_token
            if not token:
                return found


@pytest.fixture
def national(tmp_path: Path, database_url: str | None) -> Iterator[National]:
    """A national node serving the clearing service with a fixed clock."""
    group = dataclasses.replace(
        GROUPS["clearing"],
        register=lambda server, context: clearing_servicer.register(
            server, context, clock=lambda: RECORDED_AT
        ),
    )
    children = [Peer("110000", "127.0.0.1:9"), Peer("330000", "127.0.0.1:9")]
    started = create_server(
        settings_for(
            tmp_path, database_url, children=children, role="national", region="000000", auto_migrate=True
        ),
        [group],
    )
    try:
        with grpc.insecure_channel(started.address) as channel:
            yield National(started, api_grpc.ClearingServiceStub(channel))
    finally:
        started.stop(0)


def refusal(call: object, request: object) -> tuple[grpc.StatusCode, str, list[str]]:
    """The status code, reason and violated fields of a refused call."""
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10)  # type: ignore[operator]
    details = error_details(caught.value)
    fields = [v.field for v in details["BadRequest"].field_violations] if "BadRequest" in details else []
    return caught.value.code(), details["ErrorInfo"].reason, fields


def test_the_migration_creates_the_tables_the_models_map(national: National) -> None:
    database = national.node.services[0].database
    with database.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, _parent: kind != "table" or name.startswith("clearing_"),
            },
        )
        assert compare_metadata(context, Base.metadata) == []


def test_a_batch_is_appended_once_and_listed_in_record_order(national: National) -> None:
    first, second = settlement(), settlement(insured="630100", treatment="110101", fund=100_000, cash=0)
    undo = reversal_of(first)
    request = batch(first, second, undo)

    answer = national.stub.AppendJournalEntries(request, timeout=10)
    assert (answer.appended_count, answer.duplicate_count) == (3, 0)
    assert national.stub.AppendJournalEntries(request, timeout=10) == answer

    listed = national.listed()
    assert [entry.msgid for entry in listed] == [first.msgid, second.msgid, undo.msgid]
    assert all(entry.record_time.ToDatetime(tzinfo=UTC) == RECORDED_AT for entry in listed)
    assert all(entry.cleared_period == "" for entry in listed)
    delivered = journal_pb2.JournalEntry()
    delivered.CopyFrom(listed[0])
    delivered.ClearField("record_time")
    assert delivered == first


def test_an_entry_delivered_again_in_another_batch_is_a_duplicate(national: National) -> None:
    first = settlement()
    national.stub.AppendJournalEntries(batch(first), timeout=10)
    fresh = settlement()
    answer = national.stub.AppendJournalEntries(batch(first, fresh, fresh), timeout=10)
    assert (answer.appended_count, answer.duplicate_count) == (1, 2)
    undo = reversal_of(first)
    national.stub.AppendJournalEntries(batch(undo), timeout=10)
    again = national.stub.AppendJournalEntries(batch(undo, first), timeout=10)
    assert (again.appended_count, again.duplicate_count) == (0, 2)
    assert [entry.msgid for entry in national.listed()] == [first.msgid, fresh.msgid, undo.msgid]


def test_the_same_msgid_with_other_content_is_refused_and_nothing_is_recorded(national: National) -> None:
    first = settlement()
    national.stub.AppendJournalEntries(batch(first), timeout=10)
    changed = journal_pb2.JournalEntry()
    changed.CopyFrom(first)
    changed.fund_pay_sumamt_fen -= 1
    changed.psn_cash_pay_fen += 1
    code, reason, fields = refusal(national.stub.AppendJournalEntries, batch(settlement(), changed))
    assert (code, reason, fields) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "DUPLICATE_REQUEST",
        ["entries[1].msgid"],
    )
    # Output-only fields a sender fills in change nothing.
    echoed = journal_pb2.JournalEntry(record_time=stamp(JANUARY), cleared_period="2026-01")
    echoed.MergeFrom(first)
    repeat = national.stub.AppendJournalEntries(batch(echoed), timeout=10)
    assert (repeat.appended_count, repeat.duplicate_count) == (0, 1)
    assert [entry.msgid for entry in national.listed()] == [first.msgid]


def test_concurrent_deliveries_of_one_entry_record_it_once(national: National) -> None:
    entry = settlement()
    requests = [batch(entry, settlement()) for _ in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(
            pool.map(lambda request: national.stub.AppendJournalEntries(request, timeout=30), requests)
        )
    assert sum(answer.appended_count for answer in answers) == 7
    assert sum(answer.duplicate_count for answer in answers) == 5
    assert len(national.listed()) == 7


def test_a_request_id_reused_for_another_batch_is_refused(national: National) -> None:
    request = batch(settlement())
    national.stub.AppendJournalEntries(request, timeout=10)
    other = batch(settlement())
    other.request_id = request.request_id
    assert refusal(national.stub.AppendJournalEntries, other)[:2] == (
        grpc.StatusCode.ALREADY_EXISTS,
        "DUPLICATE_REQUEST",
    )


def test_every_bad_field_is_named_and_nothing_is_recorded(national: National) -> None:
    good = settlement()
    bad = [
        settlement(insured="110100"),  # same province on both sides
        settlement(insured="13100"),
        settlement(fund=-1, cash=1541),
        settlement(kind=journal_pb2.JOURNAL_ENTRY_KIND_UNSPECIFIED),
        settlement(medfee_sumamt_fen=1),
        settlement(reverses_msgid=good.msgid),
        settlement(msgid=""),
        settlement(clr_type="12"),
        reversal_of(good, reverses_msgid=""),
        reversal_of(good, fund_pay_sumamt_fen=4889, medfee_sumamt_fen=3349),
    ]
    no_time = settlement()
    no_time.ClearField("setl_time")
    code, reason, fields = refusal(national.stub.AppendJournalEntries, batch(good, *bad, no_time))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert set(fields) >= {
        "entries[1].mdtrtarea_admvs",
        "entries[2].insuplc_admdvs",
        "entries[3].fund_pay_sumamt_fen",
        "entries[4].kind",
        "entries[5].medfee_sumamt_fen",
        "entries[6].reverses_msgid",
        "entries[7].msgid",
        "entries[8].clr_type",
        "entries[9].reverses_msgid",
        "entries[10].fund_pay_sumamt_fen",
        "entries[11].setl_time",
    }
    assert "entries[0]" not in " ".join(fields)

    too_many = batch(*(settlement() for _ in range(1001)))
    assert refusal(national.stub.AppendJournalEntries, too_many)[2] == ["entries"]
    assert refusal(national.stub.AppendJournalEntries, batch())[2] == ["entries"]
    assert national.listed() == []


def test_a_reversal_names_a_recorded_settlement_mirrors_it_and_undoes_it_once(national: National) -> None:
    first, other = settlement(), settlement(insured="630100", treatment="110101", fund=500, cash=500)
    national.stub.AppendJournalEntries(batch(first, other), timeout=10)
    checks = {
        "entries[0].reverses_msgid": reversal_of(first, reverses_msgid=msgid()),
        "entries[1].insuplc_admdvs": reversal_of(first, insuplc_admdvs="130100"),
        "entries[2].psn_cash_pay_fen": reversal_of(first, psn_cash_pay_fen=-1, acct_pay_fen=-1539),
    }
    code, _, fields = refusal(national.stub.AppendJournalEntries, batch(*checks.values()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(fields) >= set(checks)

    undo = reversal_of(first)
    national.stub.AppendJournalEntries(batch(undo), timeout=10)
    _, _, fields = refusal(national.stub.AppendJournalEntries, batch(reversal_of(first)))
    assert fields == ["entries[0].reverses_msgid"]
    _, _, fields = refusal(
        national.stub.AppendJournalEntries, batch(reversal_of(first, reverses_msgid=undo.msgid))
    )
    assert fields == ["entries[0].reverses_msgid"]
    _, _, fields = refusal(national.stub.AppendJournalEntries, batch(reversal_of(other), reversal_of(other)))
    assert fields == ["entries[1].reverses_msgid"]


def test_entries_are_listed_by_province_and_settlement_time_page_by_page(national: National) -> None:
    beijing_for_hebei = [settlement(at=JANUARY + timedelta(days=day)) for day in range(3)]
    zhejiang_for_qinghai = settlement(insured="630100", treatment="330402", at=JANUARY)
    beijing_for_qinghai = settlement(insured="630100", treatment="110101", at=JANUARY + timedelta(days=40))
    national.stub.AppendJournalEntries(batch(*beijing_for_hebei, beijing_for_qinghai), timeout=10)
    national.stub.AppendJournalEntries(batch(zhejiang_for_qinghai, source="330000"), timeout=10)

    def msgids(**filters: object) -> list[str]:
        return [entry.msgid for entry in national.listed(**filters)]

    assert msgids(admdvs="110000") == [entry.msgid for entry in (*beijing_for_hebei, beijing_for_qinghai)]
    assert msgids(admdvs="630000") == [beijing_for_qinghai.msgid, zhejiang_for_qinghai.msgid]
    assert msgids(admdvs="130000") == [entry.msgid for entry in beijing_for_hebei]
    assert msgids(admdvs="440000") == []
    january = {
        "start_time": stamp(JANUARY + timedelta(days=1)),
        "end_time": stamp(datetime(2026, 2, 1, tzinfo=UTC)),
    }
    assert msgids(**january) == [entry.msgid for entry in beijing_for_hebei[1:]]
    assert msgids(admdvs="630000", start_time=stamp(JANUARY)) == [
        beijing_for_qinghai.msgid,
        zhejiang_for_qinghai.msgid,
    ]
    assert msgids(admdvs="630000", end_time=stamp(JANUARY + timedelta(days=1))) == [
        zhejiang_for_qinghai.msgid
    ]

    first_page = national.stub.ListJournalEntries(api.ListJournalEntriesRequest(page_size=2), timeout=10)
    assert len(first_page.entries) == 2 and first_page.next_page_token
    foreign = api.ListJournalEntriesRequest(admdvs="110000", page_token=first_page.next_page_token)
    for request, field in (
        (foreign, "page_token"),
        (api.ListJournalEntriesRequest(page_token="not-a-token"), "page_token"),
        (api.ListJournalEntriesRequest(admdvs="110100"), "admdvs"),
        (api.ListJournalEntriesRequest(admdvs="000000"), "admdvs"),
        (
            api.ListJournalEntriesRequest(start_time=stamp(JANUARY), end_time=stamp(JANUARY - timedelta(1))),
            "end_time",
        ),
        (api.ListJournalEntriesRequest(page_size=-1), "page_size"),
    ):
        assert refusal(national.stub.ListJournalEntries, request)[2] == [field]


def test_a_node_journals_only_settlements_made_in_its_region(national: National) -> None:
    code, reason, _ = refusal(national.stub.AppendJournalEntries, batch(settlement(), source="330000"))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED_REGION")
    assert national.listed() == []


def test_a_node_without_a_way_to_the_national_node_refuses_journal_calls(channel: grpc.Channel) -> None:
    stub = api_grpc.ClearingServiceStub(channel)
    code, reason, _ = refusal(stub.AppendJournalEntries, batch(settlement()))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED_REGION")
    code, reason, _ = refusal(stub.ListJournalEntries, api.ListJournalEntriesRequest())
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED_REGION")


def test_a_city_node_reaches_the_national_journal_through_its_province(
    tmp_path: Path, database_factory: Callable[[], str | None]
) -> None:
    specs = [
        NodeSpec("000000", "national", services=("clearing",)),
        NodeSpec("330000", "province", "000000", services=("clearing",)),
        NodeSpec("330400", "city", "330000", services=("clearing",)),
    ]
    entry = settlement(insured="630100", treatment="330402")
    with node_tree(tmp_path, specs, database_factory) as nodes:
        with grpc.insecure_channel(nodes["330400"].address) as city:
            stub = api_grpc.ClearingServiceStub(city)
            answer = stub.AppendJournalEntries(batch(entry, source="330400"), timeout=10)
            assert (answer.appended_count, answer.duplicate_count) == (1, 0)
            assert refusal(stub.AppendJournalEntries, batch(settlement(), source="330400"))[1:] == (
                "PERMISSION_DENIED_REGION",
                [],
            )
            via_city = stub.ListJournalEntries(api.ListJournalEntriesRequest(admdvs="630000"), timeout=10)
        with grpc.insecure_channel(nodes["000000"].address) as national:
            at_home = api_grpc.ClearingServiceStub(national).ListJournalEntries(
                api.ListJournalEntriesRequest(admdvs="630000"), timeout=10
            )
    assert [listed.msgid for listed in at_home.entries] == [entry.msgid]
    assert via_city == at_home


def test_a_province_node_reads_only_its_own_part_of_the_journal(national: National) -> None:
    """Entries whose insured or treatment region lies in the caller's subtree; nothing of other provinces'."""
    beijing_for_hebei = settlement(at=JANUARY)
    zhejiang_for_qinghai = settlement(insured="630100", treatment="330402", at=JANUARY)
    qinghai_in_beijing = settlement(insured="630100", treatment="110101", at=JANUARY)
    national.stub.AppendJournalEntries(batch(beijing_for_hebei, qinghai_in_beijing), timeout=10)
    national.stub.AppendJournalEntries(batch(zhejiang_for_qinghai, source="330000"), timeout=10)

    def listed_by(node: str, **filters: object) -> list[str]:
        answer = national.stub.ListJournalEntries(
            api.ListJournalEntriesRequest(page_size=100, **filters),  # type: ignore[arg-type]
            metadata=[(PRINCIPAL_HEADER, f"node/{node}")],
            timeout=10,
        )
        return [entry.msgid for entry in answer.entries]

    assert listed_by("330000") == [zhejiang_for_qinghai.msgid]
    assert listed_by("330000", admdvs="630000") == [zhejiang_for_qinghai.msgid]
    assert listed_by("110000") == [beijing_for_hebei.msgid, qinghai_in_beijing.msgid]
    assert listed_by("110000", admdvs="130000") == [beijing_for_hebei.msgid]
    everything = national.stub.ListJournalEntries(api.ListJournalEntriesRequest(page_size=100), timeout=10)
    assert len(everything.entries) == 3  # the national node's own (here: the developer) see it all
    advance = api.GetAdvanceStatusRequest(admdvs="110000", year=2026)
    error = refusal(
        lambda request, timeout: national.stub.GetAdvanceStatus(
            request, metadata=[(PRINCIPAL_HEADER, "node/330000")], timeout=timeout
        ),
        advance,
    )
    assert error[:2] == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED_REGION")
