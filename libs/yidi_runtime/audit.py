"""The audit trail (审计日志): every mutating call a node served, and every read of personal or
money data — who, as what, which method, how it ended.

The trail lives in a database of its own, opened and migrated like a service's (service
name ``audit``, table ``audit_records``, history in ``audit_migrations/versions``). It is
append-only: this module offers no update or delete, and on PostgreSQL a trigger refuses
UPDATE, DELETE and TRUNCATE, so even a mistaken statement cannot rewrite history.

A row names the caller by its certificate or token subject only; request contents never
reach it, so no personal ID number or name can. Its text is kept as the trail shows it:
control characters (a request id with a NUL byte, say) escaped as ``\\x00``, each value cut
to its column. Writing a row must never fail the call it describes.

A node starts its trail as a background worker: a call then only queues its row, and a
writer thread appends what has queued in one transaction, within a fifth of a second. Every
node writes a row per audited call it serves or relays, so one transaction per row would
be a second commit on every call; batched, the rows cost a fraction of that. A batch the
database refuses is one of two things:

- **the database fails** (down, restarting, locked; or it does not even take a blank row):
  the batch waits and is retried, up to :data:`QUEUE_LIMIT` rows (beyond, the oldest are
  dropped, logged and counted in ``yidi_audit_write_failures_total``);
- **a row is bad** (the database takes a blank row but not the batch): the batch is split
  until each row it refuses is alone; such a row is stored with every character outside
  printable ASCII escaped, and if even that is refused it is dead-lettered — logged whole
  at error level and counted in ``yidi_audit_dead_letters_total`` — while every row behind
  it is written.

Reading the trail first writes what has queued, and stopping the node writes the rest. What
a crash of the process loses is the last fifth of a second's rows. A trail that was never
started writes each row at once.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import BigInteger, DateTime, Index, Integer, String, insert, select
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Mapped, Session, mapped_column

from yidi_core.errors import invalid
from yidi_runtime import paging
from yidi_runtime.db import Database, service_base
from yidi_runtime.identity import URI_SCHEME, Principal
from yidi_runtime.interceptor import split_method
from yidi_runtime.logs import get_logger
from yidi_runtime.wire import Clock, as_utc, wall_clock

SERVICE = "audit"
"""The trail's name as a database owner: its URL (``service_url``), version table and SQLite file."""

VERSIONS = Path(__file__).with_name("audit_migrations") / "versions"
"""The trail's Alembic history, for ``migrate.upgrade`` / ``ensure_current``."""

Base = service_base(SERVICE)

_REQUEST_ID = "request_id"
_STREAM_HEADER = "header"
"""A streamed upload carries its request id in its first message's ``header``."""

_LENGTHS = {
    "node": 64,
    "node_region": 6,
    "caller_role": 16,
    "caller": 100,
    "via": 16,
    "service": 100,
    "method": 64,
    "request_id": 64,
    "grpc_code": 32,
    "reason": 64,
    "peer": 128,
}


class AuditRecord(Base):
    """One audited call, as the node that served it saw it (never updated, never deleted)."""

    __tablename__ = "audit_records"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    node: Mapped[str] = mapped_column(String(_LENGTHS["node"]))
    node_region: Mapped[str] = mapped_column(String(_LENGTHS["node_region"]))
    caller_role: Mapped[str] = mapped_column(String(_LENGTHS["caller_role"]))
    caller: Mapped[str] = mapped_column(String(_LENGTHS["caller"]))
    via: Mapped[str] = mapped_column(String(_LENGTHS["via"]))
    service: Mapped[str] = mapped_column(String(_LENGTHS["service"]))
    method: Mapped[str] = mapped_column(String(_LENGTHS["method"]))
    request_id: Mapped[str] = mapped_column(String(_LENGTHS["request_id"]))
    grpc_code: Mapped[str] = mapped_column(String(_LENGTHS["grpc_code"]))
    reason: Mapped[str] = mapped_column(String(_LENGTHS["reason"]))
    peer: Mapped[str] = mapped_column(String(_LENGTHS["peer"]))

    __table_args__ = (Index("ix_audit_records_recorded_at", "recorded_at"),)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A recorded call as a plain value (``caller_role``, ``caller`` and ``via`` are empty when unauthenticated)."""

    id: int
    recorded_at: datetime
    node: str
    node_region: str
    caller_role: str
    caller: str
    via: str
    service: str
    method: str
    request_id: str
    grpc_code: str
    reason: str
    peer: str

    @classmethod
    def of(cls, row: AuditRecord) -> AuditEntry:
        """The value of a stored row, its time as aware UTC (SQLite drops the zone)."""
        return cls(
            row.id,
            as_utc(row.recorded_at),
            row.node,
            row.node_region,
            row.caller_role,
            row.caller,
            row.via,
            row.service,
            row.method,
            row.request_id,
            row.grpc_code,
            row.reason,
            row.peer,
        )


@dataclass(frozen=True, slots=True)
class _Query:
    """The filters of one list: a half-open time range, a caller (or subject prefix), a method."""

    since: datetime | None = None
    until: datetime | None = None
    caller: str = ""
    method: str = ""

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.until < self.since:
            raise invalid("INVALID_ARGUMENT", "until", "must not be before since")

    @property
    def key(self) -> list[str]:
        """What a page token is bound to."""
        bounds = [as_utc(moment).isoformat() if moment else "" for moment in (self.since, self.until)]
        return ["audit", *bounds, self.caller, self.method]


QUEUE_LIMIT = 100_000
"""Rows a started trail keeps waiting for its database at most; beyond, the oldest are dropped (and counted)."""
_BATCH = 500
_RETRY_S = 1.0
_LINGER_S = 0.2


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
"""Control characters and lone surrogates: kept escaped, so the trail reads the same on every backend and terminal."""
_TEXT_COLUMNS = tuple(_LENGTHS)

Row = dict[str, Any]


def _kept(value: str, column: str) -> str:
    """A value as the trail keeps it: control characters escaped (``\\x00``), cut to its column."""
    if _UNPRINTABLE.search(value):
        value = _UNPRINTABLE.sub(lambda found: found.group().encode("unicode_escape").decode(), value)
    return value[: _LENGTHS[column]]


def _ascii(row: Row) -> Row:
    """The row with every character outside printable ASCII escaped: what a database refusing its text may still take."""
    return row | {
        column: row[column].encode("ascii", "backslashreplace").decode()[: _LENGTHS[column]]
        for column in _TEXT_COLUMNS
    }


def _insert(session: Session, rows: list[Row]) -> None:
    """Append ``rows`` with a Core INSERT on the session's connection: the ORM's bulk insert costs about
    half as much again on the small batches a node writes five times a second."""
    session.connection().execute(insert(AuditRecord.__table__), rows)


def _database_failed(error: Exception) -> bool:
    """The database or the connection to it failed (down, restarting, locked), whatever the rows held."""
    return isinstance(
        error, OperationalError | InterfaceError | DisconnectionError | PoolTimeoutError
    ) or bool(getattr(error, "connection_invalidated", False))


class _Unwritten(Exception):
    """The database failed: ``rows`` (in record order) are still to be written."""

    def __init__(self, rows: list[Row]) -> None:
        super().__init__(f"{len(rows)} audit rows not written")
        self.rows = rows


class AuditTrail:
    """Appends one row per audited call and reads them back a page at a time."""

    def __init__(
        self,
        database: Database,
        node_label: str,
        node_region: str,
        *,
        registry: CollectorRegistry,
        clock: Clock = wall_clock,
    ) -> None:
        self._database = database
        self._node = node_label
        self._region = node_region
        self._clock = clock
        self._failures = Counter(
            "yidi_audit_write_failures",
            "Audit records that could not be written (the calls they describe went ahead).",
            registry=registry,
        )
        self._dead_letters = Counter(
            "yidi_audit_dead_letters",
            "Audit records the database refused even escaped: logged whole at error level instead.",
            registry=registry,
        )
        self._queued: deque[Row] = deque()
        self._changed = threading.Condition()
        self._writing = 0
        self._flushing = 0
        self._thread: threading.Thread | None = None
        self._stopping = False

    def record(
        self,
        principal: Principal | None,
        service: str,
        method: str,
        request_id: str,
        code: grpc.StatusCode,
        reason: str,
        peer: str = "",
    ) -> None:
        """Append one call (``principal`` None: refused before anyone was authenticated); never raises."""
        row: Row = {
            "recorded_at": self._clock(),
            "node": self._node,
            "node_region": self._region,
            "caller_role": principal.role.value if principal else "",
            "caller": principal.subject if principal else "",
            "via": principal.via.value if principal else "",
            "service": service,
            "method": method,
            "request_id": request_id,
            "grpc_code": code.name,
            "reason": reason,
            "peer": peer,
        }
        row |= {column: _kept(row[column], column) for column in _TEXT_COLUMNS}
        if self._thread is None:
            self._write_or_count([row])
            return
        with self._changed:
            self._queued.append(row)
            if len(self._queued) > QUEUE_LIMIT:
                self._lost([self._queued.popleft()], "audit queue full: oldest record dropped")
            if len(self._queued) in (1, _BATCH):  # the writer waits for the first row, then a batch
                self._changed.notify_all()

    def _write(self, rows: list[Row]) -> None:
        with self._database.unit_of_work(write=True) as uow:
            _insert(uow.session, rows)
            uow.commit()

    def _takes_blank_row(self, row: Row) -> bool:
        """Whether the database takes a row like ``row`` with every text emptied (tried, then rolled back).

        A database that refuses even that is failing itself (a table missing, a schema
        out of date), whatever the rows hold: they wait rather than being dead-lettered.
        """
        try:
            with self._database.unit_of_work(write=True) as uow:
                _insert(uow.session, [row | dict.fromkeys(_TEXT_COLUMNS, "")])
        except Exception:
            return False
        return True

    def _store(self, rows: list[Row]) -> None:
        """Write ``rows`` in order, isolating each the database refuses: stored escaped, else dead-lettered.

        Raises :class:`_Unwritten` with the rows not yet written when the database itself fails.
        """
        pending = [rows]  # a stack: the next rows to write last
        database_answers = False
        while pending:
            chunk = pending.pop()
            try:
                self._write(chunk)
                continue
            except Exception as error:
                if _database_failed(error) or not (database_answers or self._takes_blank_row(chunk[0])):
                    raise _Unwritten(
                        [*chunk, *(row for part in reversed(pending) for row in part)]
                    ) from error
                refusal = error
            database_answers = True
            if len(chunk) > 1:
                middle = len(chunk) // 2
                pending += [chunk[middle:], chunk[:middle]]
                continue
            (row,) = chunk
            escaped = _ascii(row)
            if escaped != row:
                self._log_row(row, "audit record refused: storing it escaped", refusal, level="warning")
                pending.append([escaped])
            else:
                self._dead_letters.inc()
                self._log_row(row, "audit record dead-lettered", refusal, level="error")

    def _log_row(self, row: Row, event: str, error: Exception, *, level: str) -> None:
        """One log line holding the whole row, so that it survives in the logs whatever the trail took."""
        cause = getattr(error, "orig", None) or error
        getattr(get_logger(node=self._node), level)(
            event,
            audit_recorded_at=as_utc(row["recorded_at"]).isoformat(),
            refusal=f"{type(cause).__name__}: {cause}".splitlines()[0],
            **{f"audit_{column}": row[column] for column in _TEXT_COLUMNS},
        )

    def _write_or_count(self, rows: list[Row]) -> None:
        try:
            self._store(rows)
        except _Unwritten as unwritten:
            self._lost(unwritten.rows, "audit record not written", failed=True)

    def _lost(self, rows: list[Row], event: str, *, failed: bool = False) -> None:
        self._failures.inc(len(rows))
        log = get_logger(node=self._node)
        for row in rows:
            log.error(
                event,
                audited_service=row["service"],
                audited_method=row["method"],
                request_id=row["request_id"],
                exc_info=failed,
            )

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._queued and not self._stopping:
                    self._changed.wait()
                # Rows that arrive in the next moments go in the same transaction.
                self._changed.wait_for(
                    lambda: self._stopping or self._flushing or len(self._queued) >= _BATCH, _LINGER_S
                )
                if not self._queued:
                    return
                batch = [self._queued.popleft() for _ in range(min(_BATCH, len(self._queued)))]
                self._writing = len(batch)
            left: list[Row] = []
            try:
                self._store(batch)
            except _Unwritten as unwritten:
                left = unwritten.rows
                get_logger(node=self._node).warning(
                    "audit rows waiting for their database", rows=len(left), exc_info=True
                )
            with self._changed:
                self._writing = 0
                self._queued.extendleft(reversed(left))
                self._changed.notify_all()
            if left:
                if self._stopping:
                    with self._changed:
                        lost = list(self._queued)
                        self._queued.clear()
                    self._lost(lost, "audit record not written")
                    return
                time.sleep(_RETRY_S)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every row queued so far is written; whether it was within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            self._flushing += 1
            self._changed.notify_all()
            try:
                while self._queued or self._writing:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._thread is None:
                        return not (self._queued or self._writing)
                    self._changed.wait(left)
            finally:
                self._flushing -= 1
        return True

    def start(self) -> None:
        """Write rows in the background from now on (a node's worker)."""
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"audit-{self._node}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Write what has queued, then stop; rows recorded afterwards are written at once."""
        thread = self._thread
        if thread is None:
            return
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        thread.join(timeout_s)
        self._thread = None

    def list(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        caller: str = "",
        method: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[AuditEntry], str]:
        """One page of records in record order and the token for the next ("" on the last).

        The time range is half-open, ``[since, until)``. ``caller`` is a subject (``yidi://``
        optional) or, ending in ``/``, a prefix of subjects; ``method`` a method name, or
        ``Service/Method``, or ``Service/`` for all of a service's. ``page_size`` 0 is the
        default page. A range that runs backwards, a negative size or a token issued for
        other filters is INVALID_ARGUMENT.
        """
        query = _Query(since, until, caller.removeprefix(URI_SCHEME), method)
        self.flush()
        limit = paging.page_size(page_size)
        after = paging.decode_token(page_token, query.key, 1)
        statement = select(AuditRecord)
        if after is not None:
            if not after[0].isdigit():
                raise paging.bad_token()
            statement = statement.where(AuditRecord.id > int(after[0]))
        if query.since is not None:
            statement = statement.where(AuditRecord.recorded_at >= as_utc(query.since))
        if query.until is not None:
            statement = statement.where(AuditRecord.recorded_at < as_utc(query.until))
        if query.caller.endswith("/"):
            statement = statement.where(AuditRecord.caller.startswith(query.caller, autoescape=True))
        elif query.caller:
            statement = statement.where(AuditRecord.caller == query.caller)
        service, method = split_method(query.method)
        if service:
            statement = statement.where(AuditRecord.service == service)
        if method:
            statement = statement.where(AuditRecord.method == method)
        with self._database.unit_of_work() as uow:
            rows = uow.session.scalars(statement.order_by(AuditRecord.id).limit(limit + 1)).all()
            page = [AuditEntry.of(row) for row in rows[:limit]]
        token = paging.encode_token([str(page[-1].id)], query.key) if len(rows) > limit else ""
        return page, token


def _carries_request_id(message: Descriptor) -> bool:
    fields = message.fields_by_name
    if _REQUEST_ID in fields:
        return True
    header = fields.get(_STREAM_HEADER)
    return (
        header is not None
        and header.message_type is not None
        and _REQUEST_ID in header.message_type.fields_by_name
    )


def _reads(service: str, *methods: str) -> frozenset[str]:
    return frozenset(f"/{service}/{method}" for method in methods)


PERSONAL_DATA_READS: frozenset[str] = (
    _reads(
        "yidi.settlement.v1.SettlementService",
        "VerifyPerson",
        "PreSettle",
        "GetSettlement",
        "ListSettlements",
        "GetSelfPayBill",
    )
    | _reads(
        "yidi.settlement.v1.InsuredSettlementService",
        "ResolvePerson",
        "GetAccumulators",
        "ListSettlementRecords",
        "GetBill",
    )
    | _reads(
        "yidi.filing.v1.FilingService",
        "GetInsuredPerson",
        "ListInsuredPersons",
        "GetFiling",
        "ListFilings",
        "ListPendingReviews",
        "ListFilingRechecks",
        "CheckEligibility",
    )
    | _reads(
        "yidi.clearing.v1.ClearingService",
        "ListJournalEntries",
        "GetAdvanceStatus",
        "ListAlerts",
        "GetClearingRun",
        "ListStatements",
        "GetStatement",
        "GetLedger",
        "ListLedgerEntries",
        "GetReconciliationRun",
        "ListDiscrepancies",
        "ListReconciliationLines",
        "CheckInstitutionTotals",
        "CheckInstitutionDetails",
    )
    | _reads("yidi.collaboration.v1.CollaborationService", "GetTicket", "ListTickets")
    | _reads("yidi.audit.v1.AuditService", "ListAuditRecords")
)
"""The reads the trail records besides every mutating call: those answering with personal data
(a person, a filing, a visit's settlement, accumulators and account) or money data (journal,
ledger, advances, statements, reconciliation). Who read whose data is the auditors' business as
much as who changed it; reading the trail itself is recorded too. Reads by nodes count (they
carry persons and amounts between regions); a node's in-process calls to its own services do
not, being part of a call recorded already. Reads of public reference data (catalogues,
policies, institutions, suspensions) and estimates on data the caller supplies are not recorded.
"""


def mutating_methods(service_names: Iterable[str]) -> frozenset[str]:
    """Full names (``/pkg.Service/Method``) of the methods whose request carries a ``request_id``.

    Every mutating RPC of this API carries one (DESIGN.md principle 4); a streamed upload
    carries it in the ``header`` of its first message. The services must be registered in
    the default descriptor pool (importing their ``_pb2`` module does it).
    """
    pool = descriptor_pool.Default()
    return frozenset(
        f"/{name}/{method.name}"
        for name in service_names
        for method in pool.FindServiceByName(name).methods
        if _carries_request_id(method.input_type)
    )
