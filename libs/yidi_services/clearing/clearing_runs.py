"""Monthly clearing (月度清算) as a long-running job: sum the journal per province pair, issue statements.

RunClearing records a PENDING run (one live run per period); a background thread then
clears the period in ONE transaction — statements, ledger postings, the journal marks and
the run's success commit together or not at all, so a failed or interrupted run leaves
nothing behind and is simply run again.

What a run of period P counts: every journal entry not yet cleared whose ``setl_time``
(China time) is before the end of P, and every clawback not yet cleared whose adjustment
period is P or earlier. The journal is read window by window — each earlier month that
still holds uncleared entries, then each day of P — aggregated in SQL (GROUP BY
province pair), and each window is then marked with one set-based UPDATE of
``cleared_period``. The window's aggregate and its UPDATE see the same rows: PostgreSQL
runs the transaction REPEATABLE READ (entries journalled meanwhile stay uncleared and go
to the next run), SQLite holds its write lock. A window whose UPDATE marks a different
number of rows than it counted fails the run rather than clear anything twice or never.

Lines: entries settled in P net into one line per (insured, treatment) pair; entries of
an earlier month (journalled after that month was cleared) and reversals of settlements
cleared in an earlier period become adjustment lines naming their origin period, and so
do clawbacks — and so does the return of a reversed settlement's clawbacks, since its
reversal gives back the whole payment (the clawed-back part must not be refunded twice). A
closed period never changes: periods are cleared in order, a period at or
before the latest cleared one is closed, and running a period again answers its run.
"""

from __future__ import annotations

import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, func, null, select, text, update
from sqlalchemy.orm import Session

from yidi_core.errors import DomainError, invalid
from yidi_runtime.db import Database
from yidi_runtime.logs import get_logger
from yidi_runtime.wire import Clock, as_utc, china_day
from yidi_services.clearing import clawbacks, ledger, statements
from yidi_services.clearing.calendar import ClearingCalendar
from yidi_services.clearing.jobs import RunState
from yidi_services.clearing.journal import Kind
from yidi_services.clearing.models import (
    ClearingRunRecord,
    JournalEntryRecord,
    StatementRecord,
)
from yidi_services.clearing.periods import Period, midnight
from yidi_services.clearing.statements import Line

_REASON_LENGTH = 400
_POLL_S = 5.0


@dataclass(frozen=True, slots=True)
class Run:
    """A clearing run as reported."""

    run_id: str
    period: str
    state: RunState
    entries_counted: int
    statement_ids: tuple[str, ...]
    failure_reason: str
    start_time: datetime
    end_time: datetime | None


def last_closed(session: Session) -> Period | None:
    """The latest period with a live or finished run: it and every period before it are closed."""
    latest = session.scalar(select(func.max(ClearingRunRecord.active_period)))
    return Period.parse(latest) if latest else None


def _run_of(session: Session, record: ClearingRunRecord, progress: int | None = None) -> Run:
    ids = session.scalars(
        select(StatementRecord.statement_id)
        .where(StatementRecord.run_id == record.run_id)
        .order_by(StatementRecord.statement_id)
    ).all()
    running = record.state == RunState.RUNNING.value and progress is not None
    return Run(
        run_id=record.run_id,
        period=record.period,
        state=RunState(record.state),
        entries_counted=progress if running and progress is not None else record.entries_counted,
        statement_ids=tuple(ids),
        failure_reason=record.failure_reason,
        start_time=as_utc(record.start_time),
        end_time=as_utc(record.end_time) if record.end_time else None,
    )


def get(session: Session, run_id: str, progress: int | None = None) -> Run:
    """One run (NOT_FOUND when there is none); ``progress`` is the live count of a running one."""
    if not run_id:
        raise invalid("INVALID_ARGUMENT", "run_id", "is required")
    record = session.get(ClearingRunRecord, run_id[:32])
    if record is None or record.run_id != run_id:
        raise DomainError("NOT_FOUND", f"no clearing run {run_id!r}", metadata={"run_id": run_id[:32]})
    return _run_of(session, record, progress)


def start(session: Session, period: Period, now: datetime) -> Run:
    """Record a run of ``period`` (PENDING), or answer the period's live or finished run.

    A period must have ended (China time) before it is cleared; a period before the latest
    one cleared is closed (PERIOD_CLOSED) unless it has a run of its own.
    """
    if as_utc(now) < period.end:
        raise invalid(
            "INVALID_ARGUMENT", "period", f"{period} has not ended yet (China time): it cannot be cleared"
        )
    existing = session.scalars(
        select(ClearingRunRecord).where(ClearingRunRecord.active_period == str(period))
    ).one_or_none()
    if existing is not None:
        return _run_of(session, existing)
    closed = last_closed(session)
    if closed is not None and period < closed:
        raise DomainError(
            "PERIOD_CLOSED",
            f"{period} is closed: {closed} is already cleared, so anything of {period} still "
            "uncleared is carried into the next clearing as adjustment lines",
            metadata={"period": str(period), "last_cleared": str(closed)},
        )
    attempts = session.scalar(
        select(func.count()).select_from(ClearingRunRecord).where(ClearingRunRecord.period == str(period))
    )
    record = ClearingRunRecord(
        run_id=f"CR-{period}-{int(attempts or 0) + 1}",
        period=str(period),
        state=RunState.PENDING.value,
        active_period=str(period),
        entries_counted=0,
        failure_reason="",
        start_time=as_utc(now),
        end_time=None,
    )
    session.add(record)
    session.flush()
    return _run_of(session, record)


def unfinished(session: Session) -> list[str]:
    """Runs left pending or running (e.g. by a node that stopped): to run again."""
    return list(
        session.scalars(
            select(ClearingRunRecord.run_id)
            .where(ClearingRunRecord.state.in_([RunState.PENDING.value, RunState.RUNNING.value]))
            .order_by(ClearingRunRecord.period)
        )
    )


@dataclass(frozen=True, slots=True)
class _Window:
    """A ``setl_time`` range read and marked at once; ``origin`` is set for a month before the period."""

    start: datetime
    end: datetime
    origin: Period | None = None


@dataclass(slots=True)
class _Sums:
    """Running sums of one line."""

    count: int = 0
    medfee: int = 0
    fund: int = 0

    def add(self, count: int, medfee: int, fund: int) -> None:
        self.count += count
        self.medfee += medfee
        self.fund += fund


@dataclass(slots=True)
class _Tally:
    """What the windows summed: plain pair lines, late entries per origin month, reversals of cleared settlements."""

    regular: defaultdict[tuple[str, str], _Sums] = field(default_factory=lambda: defaultdict(_Sums))
    late: defaultdict[tuple[str, str, str], _Sums] = field(default_factory=lambda: defaultdict(_Sums))
    reversals: defaultdict[tuple[str, str, str], _Sums] = field(default_factory=lambda: defaultdict(_Sums))
    entries: int = 0


def _windows(session: Session, period: Period) -> Iterator[_Window]:
    """Each earlier month holding uncleared entries, then each day of the period."""
    journal = JournalEntryRecord
    earliest = session.scalar(
        select(func.min(journal.setl_time)).where(
            journal.cleared_period.is_(None), journal.setl_time < period.start
        )
    )
    month = Period.of(as_utc(earliest)) if earliest is not None else period
    while month < period:
        yield _Window(month.start, month.end, month)
        month = month.next()
    day = period.first_day
    while day < period.next().first_day:
        yield _Window(midnight(day), midnight(day + timedelta(days=1)))
        day += timedelta(days=1)


def _aggregate(session: Session, period: Period, window: _Window, tally: _Tally) -> int:
    """Sum one window's uncleared entries per pair (and origin of reversed settlements); its entry count."""
    journal = JournalEntryRecord.__table__
    target = journal.alias("target")
    reversed_from = case(
        (journal.c.reverses_msgid.is_(None), null()),
        else_=select(target.c.cleared_period)
        .where(
            target.c.fixmedins_code == journal.c.fixmedins_code,
            target.c.msgid == journal.c.reverses_msgid,
            target.c.cleared_period != str(period),
        )
        .scalar_subquery(),
    )
    rows = select(
        journal.c.insured_province,
        journal.c.treatment_province,
        case((journal.c.kind == Kind.SETTLEMENT.value, 1), else_=-1).label("net_count"),
        journal.c.medfee_sumamt_fen,
        journal.c.fund_pay_sumamt_fen,
        reversed_from.label("reversed_from"),
    ).where(
        journal.c.cleared_period.is_(None),
        journal.c.setl_time >= window.start,
        journal.c.setl_time < window.end,
    )
    inner = rows.subquery()
    summed = select(
        inner.c.insured_province,
        inner.c.treatment_province,
        inner.c.reversed_from,
        func.count(),
        func.sum(inner.c.net_count),
        func.sum(inner.c.medfee_sumamt_fen),
        func.sum(inner.c.fund_pay_sumamt_fen),
    ).group_by(inner.c.insured_province, inner.c.treatment_province, inner.c.reversed_from)
    counted = 0
    for insured, treatment, origin, entries, net_count, medfee, fund in session.execute(summed):
        counted += int(entries)
        sums = (int(net_count), int(medfee), int(fund))
        if origin is not None:
            tally.reversals[insured, treatment, origin].add(*sums)
        elif window.origin is not None:
            tally.late[insured, treatment, str(window.origin)].add(*sums)
        else:
            tally.regular[insured, treatment].add(*sums)
    return counted


def _mark(session: Session, period: Period, window: _Window, counted: int) -> None:
    """Set ``cleared_period`` on exactly the entries the window counted."""
    journal = JournalEntryRecord
    marked = session.execute(
        update(journal)
        .where(
            journal.cleared_period.is_(None),
            journal.setl_time >= window.start,
            journal.setl_time < window.end,
        )
        .values(cleared_period=str(period))
        .execution_options(synchronize_session=False)
    ).rowcount
    if marked != counted:
        raise RuntimeError(
            f"clearing {period}: window from {window.start.isoformat()} counted {counted} entries "
            f"but marked {marked}; nothing is cleared"
        )


def _lines(tally: _Tally, cleared: set[str], carried: list[Line]) -> list[Line]:
    """Pair lines first, then adjustments by origin period, pair and note."""
    regular = [
        Line(insured, treatment, sums.count, sums.medfee, sums.fund)
        for (insured, treatment), sums in sorted(tally.regular.items())
    ]

    def late_note(origin: str) -> str:
        if origin in cleared:
            return f"{origin}: settlements and reversals journalled after {origin} was cleared"
        return f"{origin}: carried forward, {origin} was not cleared on its own"

    adjustments = [
        Line(insured, treatment, sums.count, sums.medfee, sums.fund, True, origin, late_note(origin))
        for (insured, treatment, origin), sums in tally.late.items()
    ] + [
        Line(
            insured,
            treatment,
            sums.count,
            sums.medfee,
            sums.fund,
            True,
            origin,
            f"{origin}: reversals of settlements cleared in {origin}",
        )
        for (insured, treatment, origin), sums in tally.reversals.items()
    ]
    adjustments += carried
    adjustments.sort(
        key=lambda line: (
            line.origin_period or "",
            line.insured_admdvs,
            line.treatment_admdvs,
            line.adjustment_note,
        )
    )
    return regular + adjustments


def _cleared_periods(session: Session) -> set[str]:
    return set(
        session.scalars(
            select(ClearingRunRecord.period).where(ClearingRunRecord.state == RunState.SUCCEEDED.value)
        )
    )


def clear(
    session: Session,
    run_id: str,
    calendar: ClearingCalendar,
    now: datetime,
    progress: Callable[[int], None] = lambda _counted: None,
) -> Run | None:
    """Clear the run's period in the caller's transaction; None when the run is no longer running."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
    record = session.scalars(
        select(ClearingRunRecord).where(ClearingRunRecord.run_id == run_id).with_for_update()
    ).one_or_none()
    if record is None or record.state != RunState.RUNNING.value:
        return None
    period = Period.parse(record.period)
    tally = _Tally()
    for window in _windows(session, period):
        counted = _aggregate(session, period, window, tally)
        _mark(session, period, window, counted)
        tally.entries += counted
        progress(tally.entries)
    carried = clawbacks.carried(session, period) + clawbacks.returned(session, period)
    lines = _lines(tally, _cleared_periods(session), carried)
    statements.issue(session, run_id, str(period), lines, calendar.deadlines(period, china_day(now)), now)
    payable, receivable = statements.totals(lines)
    ledger.post(
        session,
        run_id,
        f"clearing {period}: {tally.entries} journal entries in {len(lines)} lines",
        ledger.clearing(payable, receivable),
        now,
    )
    record.state, record.entries_counted, record.end_time = (
        RunState.SUCCEEDED.value,
        tally.entries,
        as_utc(now),
    )
    session.flush()
    return _run_of(session, record)


def _set_state(database: Database, run_id: str, state: RunState, now: datetime, reason: str = "") -> None:
    """Move an unfinished run to ``state`` in a short transaction of its own (a failed run frees its period)."""
    values: dict[str, object] = {"state": state.value}
    if state is RunState.FAILED:
        values |= {"active_period": None, "failure_reason": reason[:_REASON_LENGTH], "end_time": as_utc(now)}
    with database.unit_of_work(write=True) as uow:
        uow.session.execute(
            update(ClearingRunRecord)
            .where(
                ClearingRunRecord.run_id == run_id,
                ClearingRunRecord.state.in_([RunState.PENDING.value, RunState.RUNNING.value]),
            )
            .values(**values)
        )
        uow.commit()


class ClearingRunner:
    """Works through clearing runs one at a time in a thread that lives with the node.

    ``submit`` queues a run recorded by RunClearing; on start, runs a previous process left
    unfinished are queued again. The live count of entries cleared is kept here (the run's
    own transaction is not visible until it commits), and ``on_cleared`` is told when a
    run succeeds (advance usage drops then).
    """

    def __init__(
        self,
        database: Database,
        calendar: ClearingCalendar,
        clock: Clock,
        on_cleared: Callable[[Run], None] = lambda _run: None,
    ) -> None:
        self._database = database
        self._calendar = calendar
        self._clock = clock
        self._on_cleared = on_cleared
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._progress: dict[str, int] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._log = get_logger(service="clearing")

    def submit(self, run_id: str) -> None:
        """Queue a run (a run already done or failed is skipped when its turn comes)."""
        self._queue.put(run_id)

    def progress(self, run_id: str) -> int | None:
        """Entries counted so far by a run in progress here."""
        return self._progress.get(run_id)

    def execute(self, run_id: str) -> Run | None:
        """Run one clearing now, in the calling thread; None when it was not pending or running."""
        _set_state(self._database, run_id, RunState.RUNNING, self._clock())
        self._progress[run_id] = 0
        try:
            with self._database.unit_of_work(write=True) as uow:
                done = clear(
                    uow.session,
                    run_id,
                    self._calendar,
                    self._clock(),
                    lambda counted: self._progress.__setitem__(run_id, counted),
                )
                uow.commit()
        except Exception as error:
            reason = error.message if isinstance(error, DomainError) else f"{type(error).__name__}: {error}"
            self._log.exception("clearing run failed", run_id=run_id, reason=reason)
            _set_state(self._database, run_id, RunState.FAILED, self._clock(), reason)
            return None
        finally:
            self._progress.pop(run_id, None)
        if done is not None:
            self._log.info(
                "clearing run succeeded",
                run_id=run_id,
                period=done.period,
                entries_counted=done.entries_counted,
                statements=len(done.statement_ids),
            )
            self._on_cleared(done)
        return done

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                run_id = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if run_id is None or self._stopping.is_set():
                return
            try:
                self.execute(run_id)
            except Exception:  # the database may be down; the run stays unfinished for the next start
                self._log.exception("clearing run could not be started", run_id=run_id)

    def start(self) -> None:
        """Queue unfinished runs and work in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stopping.clear()
        try:
            with self._database.unit_of_work() as uow:
                for run_id in unfinished(uow.session):
                    self.submit(run_id)
        except Exception:
            self._log.exception("unfinished clearing runs could not be read")
        self._thread = threading.Thread(target=self._run, name="clearing-runs", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the run in progress (a run cut short stays unfinished and runs again on start)."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
