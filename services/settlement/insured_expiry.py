"""The background worker that voids expired holds, and the hold metrics operators watch.

A hold is voided in its own transaction (person lock, restore, mark EXPIRED), so one that
fails leaves the others unaffected and is tried again on the next pass. Each void is logged
as a warning: an expiry means a treatment node applied a settlement here and never
confirmed it, which an operator should look into.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge

from yidi_runtime.db import Database
from yidi_runtime.logs import get_logger
from yidi_runtime.wire import Clock, as_utc
from yidi_services.settlement import insured_holds

_BATCH = 100


class HoldMetrics:
    """``yidi_settlement_holds_pending`` and ``yidi_settlement_holds_voided_total{cause}``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.pending = Gauge(
            "yidi_settlement_holds_pending",
            "Applied settlements awaiting the treatment node's confirmation (holds).",
            registry=registry,
        )
        self.voided = Counter(
            "yidi_settlement_holds_voided",
            "Applied settlements voided, by cause: expired unconfirmed, or reverted.",
            ("cause",),
            registry=registry,
        )
        for cause in ("expired", "reverted"):
            self.voided.labels(cause)


class HoldExpiry:
    """Voids expired holds every ``poll_s`` (a quarter of the hold timeout, at most one second)."""

    def __init__(
        self, database: Database, clock: Clock, timeout_s: float, metrics: HoldMetrics, node: str
    ) -> None:
        self._database = database
        self._clock = clock
        self._poll_s = min(timeout_s / 4, 1.0)
        self._metrics = metrics
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._log = get_logger(service="settlement", node=node)

    def void_expired(self) -> int:
        """One pass: void every hold expired by now, refresh the pending gauge; how many were voided."""
        now = as_utc(self._clock())
        voided = 0
        while not self._stopping.is_set():
            with self._database.unit_of_work() as uow:
                due = insured_holds.expired_holds(uow.session, now, _BATCH)
            for request_id in due:
                with self._database.unit_of_work(write=True) as uow:
                    done = insured_holds.expire(uow.session, request_id, now)
                    uow.commit()
                if done:
                    voided += 1
                    self._metrics.voided.labels("expired").inc()
                    self._log.warning(
                        "settlement hold expired unconfirmed: voided, accumulators and account restored",
                        request_id=request_id,
                    )
            if len(due) < _BATCH:
                break
        self.refresh_gauge()
        return voided

    def refresh_gauge(self) -> None:
        """Set the pending gauge from the table."""
        with self._database.unit_of_work() as uow:
            self._metrics.pending.set(insured_holds.pending_count(uow.session))

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.void_expired()
            except Exception:  # the database may be down for a while; the next pass tries again
                self._log.exception("voiding expired holds failed")
            self._stopping.wait(self._poll_s)

    def start(self) -> None:
        """Run passes in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="settlement-hold-expiry", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Finish the hold in hand and stop."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
