"""Reconciliation runs as long-running jobs: created by Reconcile, worked through by one background thread.

Reconcile only records the run (PENDING, in the request's transaction) and wakes the
worker, which then marks it RUNNING, gathers the three sides, compares them and stores
the discrepancies and report lines with the run's outcome (SUCCEEDED) in one transaction
— or FAILED with the reason, e.g. a node that did not answer. A run is pure reading until
that last transaction, so a run left RUNNING by a stopped node is simply started again
when the node comes back.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from yidi_core.errors import DomainError
from yidi_runtime.db import Database
from yidi_runtime.logs import get_logger
from yidi_runtime.wire import Clock, as_utc
from yidi_services.clearing.jobs import RunState
from yidi_services.clearing.reconciliation import snapshots
from yidi_services.clearing.reconciliation.collect import TreeWalker, Window, journal_records, merged
from yidi_services.clearing.reconciliation.compare import Comparison, Found, Kind, Period, Seen, compare
from yidi_services.clearing.reconciliation.models import DiscrepancyRow, ReconciliationRunRow, ReportLineRow

MARGIN = timedelta(hours=1)
"""Records are read this far beyond the run's days: an application precedes its treatment record,
and a record just across midnight (or a node's clock a little off) must still find its counterparts."""
_POLL_S = 5.0
_REASON_LENGTH = 500


def run_id_of(request_id: str) -> str:
    """The run a Reconcile request creates: derived from its msgid, so a retry names the same run."""
    return "RC" + hashlib.sha256(request_id.encode()).hexdigest()[:24]


def discrepancy_id_of(run_id: str, msgid: str, kind: Kind) -> str:
    """One discrepancy of a run: derived, so repairs derived from it are the same on every retry."""
    return f"{run_id}-{hashlib.sha256(f'{msgid}|{kind.value}'.encode()).hexdigest()[:20]}"


def create_run(
    session: Session, run_id: str, period: Period, admdvs: str, now: datetime
) -> ReconciliationRunRow:
    """Record a new run, PENDING."""
    row = ReconciliationRunRow(
        run_id=run_id,
        start_date=period.start,
        end_date=period.end,
        admdvs=admdvs,
        state=RunState.PENDING.value,
        compared_count=0,
        discrepancy_count=0,
        failure_reason="",
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def _discrepancy_rows(run_id: str, found: Found, now: datetime) -> list[DiscrepancyRow]:
    sides = found.sides

    def snapshot(seen: Seen | None) -> dict[str, Any] | None:
        return None if seen is None else snapshots.document(seen.record)

    return [
        DiscrepancyRow(
            discrepancy_id=discrepancy_id_of(run_id, found.msgid, kind),
            run_id=run_id,
            kind=kind.value,
            msgid=found.msgid,
            setl_id=sides.anchor.record.setl_id,
            day=found.line.day,
            insured_province=found.line.insured_province,
            treatment_province=found.line.treatment_province,
            insutype=found.line.insutype,
            treatment_node=sides.treatment.node if sides.treatment else "",
            insured_node=sides.insured.node if sides.insured else "",
            treatment_snapshot=snapshot(sides.treatment),
            national_snapshot=snapshot(sides.national),
            insured_snapshot=snapshot(sides.insured),
            reverses_msgid=sides.anchor.record.reverses_msgid,
            repaired=False,
            repair_note="",
            created_at=now,
        )
        for kind in found.kinds
    ]


def _line_rows(run_id: str, comparison: Comparison) -> list[ReportLineRow]:
    return [
        ReportLineRow(
            run_id=run_id,
            day=key.day,
            insured_province=key.insured_province,
            treatment_province=key.treatment_province,
            insutype=key.insutype,
            treatment_count=sums.counts[0],
            treatment_medfee_fen=sums.medfee_fen[0],
            treatment_fund_fen=sums.fund_fen[0],
            national_count=sums.counts[1],
            national_medfee_fen=sums.medfee_fen[1],
            national_fund_fen=sums.fund_fen[1],
            insured_count=sums.counts[2],
            insured_medfee_fen=sums.medfee_fen[2],
            insured_fund_fen=sums.fund_fen[2],
            discrepancy_count=sums.discrepancy_count,
        )
        for key, sums in comparison.lines.items()
    ]


class ReconciliationJobs:
    """Works through PENDING runs one at a time in a daemon thread; :meth:`wake` after creating one."""

    def __init__(
        self,
        database: Database,
        walker: TreeWalker,
        clock: Clock,
        in_flight: timedelta,
        node: str,
        stale: timedelta = timedelta(hours=1),
    ) -> None:
        self._database = database
        self._walker = walker
        self._clock = clock
        self._in_flight = in_flight
        self._stale = stale
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._log = get_logger(service="clearing", node=node)

    def wake(self) -> None:
        """A run was created: look now rather than at the next poll."""
        self._wake.set()

    def run_pending(self) -> int:
        """Work through every PENDING run, oldest first; how many were worked."""
        with self._database.unit_of_work() as uow:
            pending = list(
                uow.session.scalars(
                    select(ReconciliationRunRow.run_id)
                    .where(ReconciliationRunRow.state == RunState.PENDING.value)
                    .order_by(ReconciliationRunRow.created_at, ReconciliationRunRow.run_id)
                )
            )
        for run_id in pending:
            if self._stopping.is_set():
                break
            self.work(run_id)
        return len(pending)

    def _claim(self, run_id: str) -> ReconciliationRunRow | None:
        with self._database.unit_of_work(write=True) as uow:
            row = uow.session.get(ReconciliationRunRow, run_id, with_for_update=True)
            if row is None or row.state != RunState.PENDING.value:
                return None
            row.state, row.started_at = RunState.RUNNING.value, as_utc(self._clock())
            uow.commit()
            return row

    def work(self, run_id: str) -> None:
        """Run one PENDING run to its end (SUCCEEDED or FAILED)."""
        row = self._claim(run_id)
        if row is None:
            return
        period = Period(row.start_date, row.end_date)
        try:
            comparison = self._compare(period, row.admdvs)
        except DomainError as refusal:
            self._fail(run_id, str(refusal))
            return
        except Exception as error:  # a bug or a database down: the run says so instead of hanging
            self._log.exception("reconciliation run failed", run_id=run_id)
            self._fail(run_id, f"INTERNAL: {type(error).__name__}")
            return
        self._store(run_id, comparison)

    def _compare(self, period: Period, admdvs: str) -> Comparison:
        now = as_utc(self._clock())
        window = Window(*period.widened(MARGIN))
        treatment, insured = self._walker.collect(window)
        with self._database.unit_of_work() as uow:
            national = journal_records(uow.session, window)
        return compare(
            merged(treatment, national, insured), period, admdvs, now - self._in_flight, now - self._stale
        )

    def _store(self, run_id: str, comparison: Comparison) -> None:
        now = as_utc(self._clock())
        discrepancies = [row for found in comparison.found for row in _discrepancy_rows(run_id, found, now)]
        with self._database.unit_of_work(write=True) as uow:
            session = uow.session
            session.execute(delete(DiscrepancyRow).where(DiscrepancyRow.run_id == run_id))
            session.execute(delete(ReportLineRow).where(ReportLineRow.run_id == run_id))
            session.add_all([*discrepancies, *_line_rows(run_id, comparison)])
            session.execute(
                update(ReconciliationRunRow)
                .where(ReconciliationRunRow.run_id == run_id)
                .values(
                    state=RunState.SUCCEEDED.value,
                    compared_count=comparison.compared,
                    discrepancy_count=len(discrepancies),
                    finished_at=now,
                )
            )
            uow.commit()
        self._log.info(
            "reconciliation run finished",
            run_id=run_id,
            compared=comparison.compared,
            discrepancies=len(discrepancies),
            by_kind={kind.value: sum(row.kind == kind.value for row in discrepancies) for kind in Kind},
        )

    def _fail(self, run_id: str, reason: str) -> None:
        with self._database.unit_of_work(write=True) as uow:
            uow.session.execute(
                update(ReconciliationRunRow)
                .where(ReconciliationRunRow.run_id == run_id)
                .values(
                    state=RunState.FAILED.value,
                    failure_reason=reason[:_REASON_LENGTH],
                    finished_at=as_utc(self._clock()),
                )
            )
            uow.commit()
        self._log.warning("reconciliation run failed", run_id=run_id, reason=reason[:_REASON_LENGTH])

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_pending()
            except Exception:  # the database may be down for a while; the next pass tries again
                self._log.exception("reconciliation pass failed")
            self._wake.wait(_POLL_S)
            self._wake.clear()

    def start(self) -> None:
        """Take back runs a stopped node left RUNNING, then work in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        with self._database.unit_of_work(write=True) as uow:
            uow.session.execute(
                update(ReconciliationRunRow)
                .where(ReconciliationRunRow.state == RunState.RUNNING.value)
                .values(state=RunState.PENDING.value)
            )
            uow.commit()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="clearing-reconciliation", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Stop after the run in hand (its result is stored, or it is taken back at the next start)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
