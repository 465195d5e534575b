"""Tickets at one node serving both parties (Hebei 130000: a Shijiazhuang hospital, the Langfang
insured place): the life cycle, who may act, bad input, replays, overdue tickets and the gauges.

Every operator a node admits works for a region containing the node's, so here the Hebei
operator may act for either party; telling the parties' operators apart takes two nodes
(test_federation.py).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator

import grpc
import pytest
from collaboration_support import Clock, iso, opening, refusal, request_id, start_on
from prometheus_client.parser import text_string_to_metric_families

from yidi.collaboration.v1 import collaboration_service_pb2 as api
from yidi.collaboration.v1 import collaboration_service_pb2_grpc as api_grpc
from yidi.collaboration.v1 import ticket_pb2 as pb
from yidi_harness.federation import Federation, NodeSpec, Topology, institution, region_operator
from yidi_runtime.config import Role
from yidi_runtime.identity import CallerRole, Principal
from yidi_testing import settings_for

HEBEI, SHIJIAZHUANG, LANGFANG = "130000", "130100", "131000"
HOSPITAL = institution("H13010200001")
OTHER_HOSPITAL = institution("H13010200002")
HEBEI_OPS = region_operator(HEBEI)
Stubs = Callable[[Principal], api_grpc.CollaborationServiceStub]


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory, module_databases: Callable[[], str | None], clock: Clock
) -> Iterator[Federation]:
    settings = settings_for(
        tmp_path_factory.mktemp("hebei"),
        module_databases(),
        auto_migrate=True,
        role="province",
        region=HEBEI,
        services="collaboration",
    )
    started = start_on(clock)(settings)
    with Federation(Topology((NodeSpec(HEBEI, Role.PROVINCE, "hebei"),)), {HEBEI: started}) as federation:
        yield federation


@pytest.fixture
def as_(node: Federation) -> Stubs:
    return lambda principal: api_grpc.CollaborationServiceStub(node.channel(HEBEI, principal))


def opened(as_: Stubs, **fields: object) -> pb.Ticket:
    request = opening(SHIJIAZHUANG, LANGFANG, fixmedins_code=HOSPITAL.name, **fields)
    return as_(HOSPITAL).OpenTicket(request).ticket


def test_a_ticket_is_opened_answered_followed_up_and_closed_each_in_its_partys_turn(
    as_: Stubs, clock: Clock
) -> None:
    clock.set("2026-03-05")  # Thursday
    ticket = opened(as_)
    assert ticket.ticket_id.startswith(SHIJIAZHUANG + "20260305")
    assert (ticket.state, ticket.opener, ticket.awaiting) == (
        pb.TICKET_STATE_OPEN,
        pb.TICKET_PARTY_TREATMENT,
        pb.TICKET_PARTY_INSURED,
    )
    assert iso(ticket.due_date) == "2026-03-12"  # five working days, the weekend skipped
    assert ticket.opened_by == "institution/H13010200001"

    answer = api.AnswerTicketRequest(request_id=request_id(), ticket_id=ticket.ticket_id, text="Recounted.")
    answered = as_(HEBEI_OPS).AnswerTicket(answer).ticket
    assert (answered.state, answered.awaiting, answered.answered_by) == (
        pb.TICKET_STATE_ANSWERED,
        pb.TICKET_PARTY_TREATMENT,
        "operator/130000/ops",
    )
    assert iso(answered.due_date) == "2026-03-19"  # ten working days to close or follow up
    assert as_(HEBEI_OPS).AnswerTicket(answer).ticket == answered  # a repeat replays

    follow = api.FollowUpTicketRequest(
        request_id=request_id(), ticket_id=ticket.ticket_id, text="Still 20 short."
    )
    assert as_(HOSPITAL).FollowUpTicket(follow).ticket.state == pb.TICKET_STATE_OPEN
    as_(HEBEI_OPS).AnswerTicket(
        api.AnswerTicketRequest(request_id=request_id(), ticket_id=ticket.ticket_id, text="Paid the 20.")
    )
    closed = (
        as_(HOSPITAL)
        .CloseTicket(api.CloseTicketRequest(request_id=request_id(), ticket_id=ticket.ticket_id))
        .ticket
    )
    assert (closed.state, closed.awaiting, closed.closed_by, closed.HasField("due_date")) == (
        pb.TICKET_STATE_CLOSED,
        pb.TICKET_PARTY_UNSPECIFIED,
        "institution/H13010200001",
        False,
    )
    read = as_(HEBEI_OPS).GetTicket(api.GetTicketRequest(ticket_id=ticket.ticket_id)).ticket
    assert [(m.seq, m.action, m.party) for m in read.messages] == [
        (1, pb.TICKET_ACTION_OPEN, pb.TICKET_PARTY_TREATMENT),
        (2, pb.TICKET_ACTION_ANSWER, pb.TICKET_PARTY_INSURED),
        (3, pb.TICKET_ACTION_FOLLOW_UP, pb.TICKET_PARTY_TREATMENT),
        (4, pb.TICKET_ACTION_ANSWER, pb.TICKET_PARTY_INSURED),
        (5, pb.TICKET_ACTION_CLOSE, pb.TICKET_PARTY_TREATMENT),
    ]
    assert read.messages[1].text == "Recounted." and read.version == 5
    code, reason, _ = refusal(
        lambda: as_(HOSPITAL).CloseTicket(
            api.CloseTicketRequest(request_id=request_id(), ticket_id=ticket.ticket_id)
        )
    )
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TICKET_STATE")


def test_only_a_party_acts_and_only_in_its_turn(as_: Stubs, clock: Clock) -> None:
    clock.set("2026-03-05")
    ticket = opened(as_)

    def answer(principal: Principal) -> Callable[[], object]:
        return lambda: as_(principal).AnswerTicket(
            api.AnswerTicketRequest(request_id=request_id(), ticket_id=ticket.ticket_id, text="ok")
        )

    def close(principal: Principal) -> Callable[[], object]:
        return lambda: as_(principal).CloseTicket(
            api.CloseTicketRequest(request_id=request_id(), ticket_id=ticket.ticket_id)
        )

    denied = (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED_REGION")
    assert refusal(answer(HOSPITAL))[:2] == denied  # the opener does not answer itself
    assert refusal(answer(region_operator(SHIJIAZHUANG)))[:2] == denied
    assert refusal(answer(region_operator("000000")))[:2] == denied  # the national centre is no party
    assert refusal(close(OTHER_HOSPITAL))[:2] == denied  # a hospital acts on its own tickets only
    assert refusal(close(HOSPITAL))[:2] == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "TICKET_STATE",
    )  # not answered
    read = lambda who: as_(who).GetTicket(api.GetTicketRequest(ticket_id=ticket.ticket_id))  # noqa: E731
    assert refusal(lambda: read(OTHER_HOSPITAL))[:2] == denied
    assert read(region_operator("000000")).ticket.version == 1
    assert refusal(lambda: read(region_operator("110000")))[:2] == denied  # not an operator of this node
    answer(HEBEI_OPS)()
    assert refusal(answer(HEBEI_OPS))[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "TICKET_STATE")
    # An institution opens only naming itself; a provincial operator serving both parties says which it is.
    other = opening(SHIJIAZHUANG, LANGFANG, fixmedins_code=OTHER_HOSPITAL.name)
    assert refusal(lambda: as_(HOSPITAL).OpenTicket(other))[:2] == denied
    hebei = as_(HEBEI_OPS)
    assert refusal(lambda: hebei.OpenTicket(opening(SHIJIAZHUANG, LANGFANG)))[2] == ["opener"]
    mine = hebei.OpenTicket(opening(SHIJIAZHUANG, LANGFANG, opener=pb.TICKET_PARTY_INSURED)).ticket
    assert (mine.opener, mine.awaiting) == (pb.TICKET_PARTY_INSURED, pb.TICKET_PARTY_TREATMENT)


def test_bad_input_is_refused_naming_every_field_and_keeps_nothing(as_: Stubs) -> None:
    listing = api.ListTicketsRequest(include_not_awaiting=True)
    before = as_(HEBEI_OPS).ListTickets(listing).total_size
    bad = opening(
        "13010",
        LANGFANG,
        subject_kind=pb.TICKET_SUBJECT_KIND_UNSPECIFIED,
        subject_id="no spaces allowed",
        category=7,
        text="x" * 2001,
    )
    code, reason, fields = refusal(lambda: as_(HEBEI_OPS).OpenTicket(bad))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert set(fields) == {"subject_kind", "category", "subject_id", "treatment_admdvs", "text"}
    same = opening(LANGFANG, LANGFANG)
    assert refusal(lambda: as_(HEBEI_OPS).OpenTicket(same))[2] == ["insured_admdvs"]
    outside = opening(SHIJIAZHUANG, LANGFANG, fixmedins_code="H33040200001")
    assert refusal(lambda: as_(HEBEI_OPS).OpenTicket(outside))[2] == ["fixmedins_code"]
    assert refusal(lambda: as_(HEBEI_OPS).GetTicket(api.GetTicketRequest(ticket_id="nope")))[1] == "NOT_FOUND"
    assert as_(HEBEI_OPS).ListTickets(listing).total_size == before


def test_a_repeated_request_id_replays_and_other_content_under_it_is_refused(
    as_: Stubs, clock: Clock
) -> None:
    clock.set("2026-03-05")
    request = opening(SHIJIAZHUANG, LANGFANG, fixmedins_code=HOSPITAL.name)
    first = as_(HOSPITAL).OpenTicket(request).ticket
    assert as_(HOSPITAL).OpenTicket(request).ticket == first
    changed = api.OpenTicketRequest()
    changed.CopyFrom(request)
    changed.text = "Something else."
    assert refusal(lambda: as_(HOSPITAL).OpenTicket(changed))[:2] == (
        grpc.StatusCode.ALREADY_EXISTS,
        "DUPLICATE_REQUEST",
    )


def _gauges(node: Federation) -> dict[str, float]:
    endpoint = node.nodes[HEBEI].metrics_endpoint
    assert endpoint is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{endpoint.port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        family.name: family.samples[0].value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("yidi_collaboration_")
    }


def test_the_queue_shows_overdue_tickets_by_due_date_and_the_gauges_count_them(
    as_: Stubs, node: Federation, clock: Clock
) -> None:
    clock.set("2026-04-01")  # Wednesday: due on Wednesday 8 April
    late = opened(
        as_, subject_kind=pb.TICKET_SUBJECT_KIND_FILING, subject_id="131000202604010900001234567890"
    )
    clock.set("2026-04-02")
    opened(as_, category=pb.TICKET_CATEGORY_PATIENT_COMPLAINT)
    ops = as_(HEBEI_OPS)
    clock.set("2026-04-08")
    assert not ops.GetTicket(api.GetTicketRequest(ticket_id=late.ticket_id)).ticket.overdue
    clock.set("2026-04-09")
    overdue = ops.ListTickets(api.ListTicketsRequest(overdue_only=True))
    assert late.ticket_id in [t.ticket_id for t in overdue.tickets]
    assert all(t.overdue and not t.messages for t in overdue.tickets)
    answered = ops.ListTickets(api.ListTicketsRequest(states=[pb.TICKET_STATE_ANSWERED])).tickets
    assert answered and {t.state for t in answered} == {pb.TICKET_STATE_ANSWERED}
    queue = ops.ListTickets(api.ListTicketsRequest())
    assert queue.overdue_count == overdue.total_size >= 1
    assert _gauges(node) == {
        "yidi_collaboration_backlog_tickets": queue.total_size,
        "yidi_collaboration_overdue_tickets": queue.overdue_count,
    }
    pages, token = [], ""
    while True:
        page = ops.ListTickets(api.ListTicketsRequest(page_size=2, page_token=token))
        pages += page.tickets
        token = page.next_page_token
        if not token:
            break
    assert [t.ticket_id for t in pages] == [t.ticket_id for t in queue.tickets]
    assert [iso(t.due_date) for t in pages] == sorted(iso(t.due_date) for t in pages)
    # An institution's queue holds its own tickets only.
    assert {t.fixmedins_code for t in as_(OTHER_HOSPITAL).ListTickets(api.ListTicketsRequest()).tickets} <= {
        OTHER_HOSPITAL.name
    }


def test_a_received_change_is_checked_as_if_made_here(as_: Stubs, clock: Clock) -> None:
    """SyncTicket, as the node itself sends it in process: only the sender party's next turn is taken."""
    clock.set("2026-03-05")
    ticket = opened(as_)
    held = as_(HEBEI_OPS).GetTicket(api.GetTicketRequest(ticket_id=ticket.ticket_id)).ticket
    node = as_(Principal(CallerRole.NODE, HEBEI, HEBEI))

    def sync(sender: str, changed: pb.Ticket) -> Callable[[], api.SyncTicketResponse]:
        request = api.SyncTicketRequest(request_id=request_id(), sender_admdvs=sender, ticket=changed)
        return lambda: node.SyncTicket(request)

    def with_message(**fields: object) -> pb.Ticket:
        changed = pb.Ticket()
        changed.CopyFrom(held)
        message = changed.messages.add()
        message.CopyFrom(held.messages[0])
        message.seq = 2
        for name, value in fields.items():
            setattr(message, name, value)
        return changed

    assert sync(SHIJIAZHUANG, held)().version == 1  # what it holds already: nothing to do
    answer = {
        "action": pb.TICKET_ACTION_ANSWER,
        "party": pb.TICKET_PARTY_INSURED,
        "author": "operator/131000/ops",
    }
    assert refusal(sync(SHIJIAZHUANG, with_message(**answer)))[:2] == (  # not the sender's party
        grpc.StatusCode.PERMISSION_DENIED,
        "PERMISSION_DENIED_REGION",
    )
    forged = with_message(**answer | {"author": "operator/110000/ops"})
    assert refusal(sync(LANGFANG, forged))[1] == "PERMISSION_DENIED_REGION"  # no Langfang author
    closing = {"action": pb.TICKET_ACTION_CLOSE, "party": pb.TICKET_PARTY_TREATMENT}
    assert refusal(sync(SHIJIAZHUANG, with_message(**closing)))[1] == "TICKET_STATE"  # not its turn
    rewritten = with_message(**answer)
    rewritten.messages[0].text = "Something the hospital never said."
    assert refusal(sync(LANGFANG, rewritten))[2] == ["ticket"]
    assert refusal(sync("110000", held))[2] == ["sender_admdvs"]
    assert sync(LANGFANG, with_message(**answer))().version == 2
    assert as_(HOSPITAL).GetTicket(api.GetTicketRequest(ticket_id=ticket.ticket_id)).ticket.state == (
        pb.TICKET_STATE_ANSWERED
    )
