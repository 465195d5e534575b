"""Tickets across the tree: a Jiaxing hospital and the Langfang insured place, each at its own node.

Topology: national 000000, Zhejiang 330000 → Jiaxing 330400, Hebei 130000 → Langfang 131000.
A change made at one party's node reaches the other's through the collaboration outbox
(relayed by the nodes between), so each node's queue shows what awaits its own regions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from collaboration_support import (
    DENIED,
    HOSPITAL,
    JIAXING,
    JIAXING_OPS,
    LANGFANG,
    LANGFANG_OPS,
    TREE,
    Clock,
    eventually,
    held,
    iso,
    opening,
    refusal,
    request_id,
    start_on,
    stub,
)

from yidi.collaboration.v1 import collaboration_service_pb2 as api
from yidi.collaboration.v1 import collaboration_service_pb2_grpc as api_grpc
from yidi.collaboration.v1 import ticket_pb2 as pb
from yidi_harness.federation import Federation, region_operator, start_federation
from yidi_runtime.identity import Principal


@pytest.fixture(scope="module")
def federation(
    tmp_path_factory: pytest.TempPathFactory, module_databases: Callable[[], str | None], clock: Clock
) -> Iterator[Federation]:
    with start_federation(
        TREE, tmp_path_factory.mktemp("tree"), module_databases, start=start_on(clock)
    ) as started:
        yield started


def queue(federation: Federation, node: str, who: Principal, **filters: object) -> list[pb.Ticket]:
    listing = api.ListTicketsRequest(**filters)  # type: ignore[arg-type]
    return list(stub(federation, node, who).ListTickets(listing).tickets)


def test_a_jiaxing_hospital_and_the_langfang_insured_place_settle_a_ticket_each_at_its_own_node(
    federation: Federation, clock: Clock
) -> None:
    clock.set("2026-03-06")  # Friday
    request = opening(JIAXING, LANGFANG, fixmedins_code=HOSPITAL.name)
    ticket = stub(federation, JIAXING, HOSPITAL).OpenTicket(request).ticket
    assert stub(federation, JIAXING, HOSPITAL).OpenTicket(request).ticket == ticket  # a repeat replays
    ticket_id = ticket.ticket_id

    # Langfang's queue shows it with its due date; Jiaxing's own queue awaits nothing of it.
    at_langfang = eventually(held(federation, LANGFANG, LANGFANG_OPS, ticket_id), lambda t: t.version == 1)
    assert iso(at_langfang.due_date) == "2026-03-13"
    assert ticket_id in [t.ticket_id for t in queue(federation, LANGFANG, LANGFANG_OPS)]
    assert ticket_id not in [t.ticket_id for t in queue(federation, JIAXING, JIAXING_OPS)]
    assert ticket_id in [
        t.ticket_id for t in queue(federation, JIAXING, JIAXING_OPS, include_not_awaiting=True)
    ]

    # No one but Langfang answers: not the hospital, not a third region's operator, not through another node.
    def answer(node: str, who: Principal, rid: str) -> Callable[[], api.AnswerTicketResponse]:
        request = api.AnswerTicketRequest(request_id=rid, ticket_id=ticket_id, text="We paid 1 yuan more.")
        return lambda: stub(federation, node, who).AnswerTicket(request)

    assert refusal(answer(JIAXING, HOSPITAL, request_id()))[:2] == DENIED
    assert refusal(answer(JIAXING, region_operator("330000"), request_id()))[:2] == DENIED
    assert refusal(answer(LANGFANG, region_operator("130100"), request_id()))[:2] == DENIED
    assert refusal(answer(JIAXING, LANGFANG_OPS, request_id()))[:2] == DENIED
    rid = request_id()
    answered = answer(LANGFANG, LANGFANG_OPS, rid)().ticket
    assert answer(LANGFANG, LANGFANG_OPS, rid)().ticket == answered  # a repeat replays
    assert answered.state == pb.TICKET_STATE_ANSWERED

    # Back at Jiaxing it awaits the hospital, which closes it there; Langfang sees it closed.
    eventually(held(federation, JIAXING, HOSPITAL, ticket_id), lambda t: t.state == pb.TICKET_STATE_ANSWERED)
    assert ticket_id in [t.ticket_id for t in queue(federation, JIAXING, HOSPITAL)]
    assert ticket_id not in [t.ticket_id for t in queue(federation, LANGFANG, LANGFANG_OPS)]
    close = api.CloseTicketRequest(request_id=request_id(), ticket_id=ticket_id, text="Agreed.")
    assert refusal(lambda: stub(federation, LANGFANG, LANGFANG_OPS).CloseTicket(close))[:2] == DENIED
    closed = stub(federation, JIAXING, HOSPITAL).CloseTicket(close).ticket
    final = eventually(held(federation, LANGFANG, LANGFANG_OPS, ticket_id), lambda t: t.version == 3)
    assert final.state == pb.TICKET_STATE_CLOSED
    assert list(final.messages) == list(closed.messages)
    assert (final.opened_by, final.answered_by, final.closed_by) == (
        "institution/H33040200001",
        "operator/131000/ops",
        "institution/H33040200001",
    )


def test_the_insured_place_opens_too_and_a_ticket_past_its_due_date_shows_overdue_where_it_waits(
    federation: Federation, clock: Clock
) -> None:
    clock.set("2026-03-09")  # Monday: due on Monday the 16th
    request = opening(JIAXING, LANGFANG, category=pb.TICKET_CATEGORY_MISSING_RECORD)
    ticket = stub(federation, LANGFANG, LANGFANG_OPS).OpenTicket(request).ticket
    assert (ticket.opener, ticket.awaiting) == (pb.TICKET_PARTY_INSURED, pb.TICKET_PARTY_TREATMENT)
    arrived = eventually(held(federation, JIAXING, JIAXING_OPS, ticket.ticket_id), lambda t: t.version == 1)
    assert not arrived.overdue
    clock.set("2026-03-17")
    late = queue(federation, JIAXING, JIAXING_OPS, overdue_only=True)
    assert ticket.ticket_id in [t.ticket_id for t in late]
    assert (
        queue(federation, LANGFANG, LANGFANG_OPS, overdue_only=True) == []
    )  # it awaits Jiaxing, not Langfang
    # The hospital named in no ticket of the insured place's sees none of them.
    assert ticket.ticket_id not in [
        t.ticket_id for t in queue(federation, JIAXING, HOSPITAL, include_not_awaiting=True)
    ]


def test_on_insecure_development_nodes_the_developer_s_ticket_travels_too(federation: Federation) -> None:
    developer = api_grpc.CollaborationServiceStub(federation.channel(JIAXING))
    request = opening(JIAXING, LANGFANG, opener=pb.TICKET_PARTY_TREATMENT)
    ticket = developer.OpenTicket(request).ticket
    arrived = eventually(held(federation, LANGFANG, LANGFANG_OPS, ticket.ticket_id), lambda t: t.version == 1)
    assert arrived.opened_by == "developer/developer"
