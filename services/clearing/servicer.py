"""ClearingService over gRPC: the national settlement journal (the other methods are still to come).

Only the journal's two methods are overridden; every other method is the generated base
servicer's, which answers UNIMPLEMENTED (``NOT_IMPLEMENTED``) until its issue lands. The
journal is kept at the national node; another node passes journal calls to its parent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress

import grpc
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from yidi.clearing.v1 import clearing_service_pb2 as api
from yidi.clearing.v1 import clearing_service_pb2_grpc as api_grpc
from yidi_runtime.idempotency import RequestLog
from yidi_runtime.logs import get_logger
from yidi_runtime.routing import Router
from yidi_runtime.service import ServiceContext
from yidi_runtime.wire import Clock, wall_clock
from yidi_services.clearing import convert, journal
from yidi_services.clearing.home import JournalHome
from yidi_services.clearing.models import RequestRecord

_APPEND_ATTEMPTS = 3
"""A concurrent delivery of the same entry can win the msgid's unique key; the next attempt sees a repeat."""


class ClearingServicer(api_grpc.ClearingServiceServicer):
    """Money between provinces at the national node; for now its settlement journal."""

    def __init__(self, context: ServiceContext, home: JournalHome, clock: Clock = wall_clock) -> None:
        self._database = context.database
        self._home = home
        self._clock = clock
        self._log = RequestLog(RequestRecord)

    def AppendJournalEntries(
        self, request: api.AppendJournalEntriesRequest, context: grpc.ServicerContext
    ) -> api.AppendJournalEntriesResponse:
        parent = self._home.parent()
        if parent is not None:
            return parent.call(parent.stub(api_grpc.ClearingServiceStub).AppendJournalEntries, request)
        source, entries = convert.journal_entries(request)
        journal.ensure_sent_by_treatment_node(source, entries)

        def effect(session: Session) -> api.AppendJournalEntriesResponse:
            appended = journal.append(session, source, entries, self._clock())
            return api.AppendJournalEntriesResponse(
                appended_count=appended.appended_count, duplicate_count=appended.duplicate_count
            )

        response = self._run_once_retrying(request, effect)
        get_logger().info(
            "journal entries delivered",
            source_admdvs=source,
            appended=response.appended_count,
            duplicates=response.duplicate_count,
        )
        return response

    def _run_once_retrying(
        self,
        request: api.AppendJournalEntriesRequest,
        effect: Callable[[Session], api.AppendJournalEntriesResponse],
    ) -> api.AppendJournalEntriesResponse:
        def attempt() -> api.AppendJournalEntriesResponse:
            return self._log.run_once(
                self._database,
                request.request_id,
                "AppendJournalEntries",
                [request],
                api.AppendJournalEntriesResponse,
                effect,
            )

        for _ in range(_APPEND_ATTEMPTS - 1):
            with suppress(IntegrityError):
                return attempt()
        return attempt()

    def ListJournalEntries(
        self, request: api.ListJournalEntriesRequest, context: grpc.ServicerContext
    ) -> api.ListJournalEntriesResponse:
        parent = self._home.parent()
        if parent is not None:
            return parent.call(parent.stub(api_grpc.ClearingServiceStub).ListJournalEntries, request)
        query = convert.journal_query(request)
        with self._database.unit_of_work() as uow:
            page, token = journal.list_entries(uow.session, query)
        return api.ListJournalEntriesResponse(
            entries=[convert.entry_message(recorded) for recorded in page], next_page_token=token
        )


def register(server: grpc.Server, context: ServiceContext, clock: Clock = wall_clock) -> Sequence[str]:
    """Add the clearing service to a node's server; returns the gRPC service names it serves."""
    router = Router(context.settings)
    context.run_in_background(router)
    home = JournalHome(router)
    api_grpc.add_ClearingServiceServicer_to_server(ClearingServicer(context, home, clock), server)
    return [api.DESCRIPTOR.services_by_name["ClearingService"].full_name]
