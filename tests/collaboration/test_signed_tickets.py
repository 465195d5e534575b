"""Tickets between nodes that talk mutual TLS: each change travels with its node's vouch and is
authorized, at every hop, as that node (SQLite only; test_federation.py covers both databases)."""

from __future__ import annotations

from pathlib import Path

from collaboration_support import (
    DENIED,
    HOSPITAL,
    JIAXING,
    LANGFANG,
    LANGFANG_OPS,
    TREE,
    Clock,
    eventually,
    held,
    opening,
    refusal,
    request_id,
    start_on,
    stub,
)

from yidi.collaboration.v1 import collaboration_service_pb2 as api
from yidi.collaboration.v1 import ticket_pb2 as pb
from yidi_harness.federation import init_demo_pki, start_federation


def test_a_ticket_opened_at_jiaxing_is_answered_at_langfang_over_mutual_tls(tmp_path: Path) -> None:
    pki = init_demo_pki(tmp_path / "pki", TREE)
    with start_federation(TREE, tmp_path / "tree", start=start_on(Clock()), pki=pki) as federation:
        request = opening(JIAXING, LANGFANG, fixmedins_code=HOSPITAL.name)
        ticket_id = stub(federation, JIAXING, HOSPITAL).OpenTicket(request).ticket.ticket_id
        eventually(held(federation, LANGFANG, LANGFANG_OPS, ticket_id), lambda t: t.version == 1)
        answer = api.AnswerTicketRequest(request_id=request_id(), ticket_id=ticket_id, text="Paid in full.")
        assert refusal(lambda: stub(federation, JIAXING, HOSPITAL).AnswerTicket(answer))[:2] == DENIED
        stub(federation, LANGFANG, LANGFANG_OPS).AnswerTicket(answer)
        back = eventually(held(federation, JIAXING, HOSPITAL, ticket_id), lambda t: t.version == 2)
        assert back.state == pb.TICKET_STATE_ANSWERED
