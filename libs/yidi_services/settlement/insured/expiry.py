"""Holds that time out: the insured node asks the treatment node, then confirms or voids; and the hold metrics.

A hold is never voided blindly (DESIGN.md principle 9). When one times out unconfirmed, the
insured node asks the node that applied it what became of the settlement
(``FenceSettlement``, sealed, routed to the treatment node, answered with a receipt):

- RECORDED: the settlement committed there and its confirmation is on its way; the hold is
  confirmed now;
- NOT_RECORDED: it did not and, fenced, never will; the hold is voided, restoring the
  accumulators and account exactly;
- no answer (the treatment node or a node between is down): the hold stays, and is asked
  about again after a growing pause. Reconciliation reports holds that stay unresolved
  longer than its configured age as a class of their own.

Each hold is resolved in its own transaction, so one that fails leaves the others
unaffected. Each void is logged as a warning: it means a treatment node applied a
settlement here and never recorded it, which an operator should look into.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge

from yidi.settlement.v1 import insured_settlement_service_pb2 as api
from yidi.settlement.v1 import settlement_pb2
from yidi.settlement.v1.insured_settlement_service_pb2_grpc import InsuredSettlementServiceStub
from yidi_core.errors import DomainError
from yidi_runtime.db import Database
from yidi_runtime.integrity import NodeIntegrity, Origin
from yidi_runtime.logs import get_logger
from yidi_runtime.resilience import Backoff
from yidi_runtime.routing import Router
from yidi_runtime.settlement_keys import derived_id, origin_id
from yidi_runtime.wire import Clock, as_utc
from yidi_services.settlement.insured import holds
from yidi_services.settlement.insured.forwarding import ROUTED
from yidi_services.settlement.insured.models import ApplicationRow, ApplicationState

_BATCH = 100
RESOLVE_BACKOFF = Backoff(base_s=5.0, max_s=600.0)
"""Between questions about one hold whose treatment node does not answer: 2.5–5 s, then 5–10 s, … up to 5–10 min."""


class HoldMetrics:
    """``yidi_settlement_holds_pending``, ``..._voided_total{cause}`` and ``..._unresolved_total``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.pending = Gauge(
            "yidi_settlement_holds_pending",
            "Applied settlements awaiting the treatment node's confirmation (holds).",
            registry=registry,
        )
        self.voided = Counter(
            "yidi_settlement_holds_voided",
            "Applied settlements voided, by cause: timed out and not recorded by the treatment node, or reverted.",
            ("cause",),
            registry=registry,
        )
        self.unresolved = Counter(
            "yidi_settlement_holds_unresolved",
            "Questions about a timed-out hold the treatment node did not answer (the hold stays).",
            registry=registry,
        )
        for cause in ("expired", "reverted"):
            self.voided.labels(cause)


class HoldExpiry:
    """Resolves timed-out holds every ``poll_s`` (a quarter of the hold timeout, at most one second)."""

    def __init__(
        self,
        database: Database,
        router: Router,
        integrity: NodeIntegrity,
        clock: Clock,
        timeout_s: float,
        metrics: HoldMetrics,
    ) -> None:
        self._database = database
        self._router = router
        self._integrity = integrity
        self._clock = clock
        self._region = router.settings.region
        self._poll_s = min(timeout_s / 4, 1.0)
        self._metrics = metrics
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._log = get_logger(service="settlement", node=router.settings.label)

    def void_expired(self) -> int:
        """One pass: resolve every hold timed out by now, refresh the pending gauge; how many were voided."""
        now = as_utc(self._clock())
        voided = 0
        asked: set[str] = set()
        while not self._stopping.is_set():
            with self._database.unit_of_work() as uow:
                due = [
                    hold
                    for hold in holds.expired_holds(uow.session, now, _BATCH)
                    if hold.request_id not in asked
                ]
            for hold in due:
                asked.add(hold.request_id)
                voided += self._resolve(hold, now)
            if len(due) < _BATCH:
                break
        self.refresh_gauge()
        return voided

    def resolve_now(self, request_id: str) -> ApplicationState:
        """Resolve one hold now, whether or not it timed out (ResolveHold); its state after.

        NOT_FOUND for an id never applied here; a treatment node that does not answer is
        raised (NODE_UNREACHABLE), the hold left as it was.
        """
        with self._database.unit_of_work() as uow:
            row = uow.session.get(ApplicationRow, request_id)
            state = None if row is None else ApplicationState(row.state)
            hold = None if row is None else holds.TimedOut(row.request_id, row.origin_admdvs, 0)
        if hold is None or state is None:
            raise DomainError(
                "NOT_FOUND",
                f"no settlement was applied here with request id {request_id}",
                metadata={"request_id": request_id},
            )
        if state is not ApplicationState.HELD:
            return state
        self._act(hold, self._ask(hold), as_utc(self._clock()))
        with self._database.unit_of_work() as uow:
            row = uow.session.get(ApplicationRow, request_id)
            assert row is not None
            return ApplicationState(row.state)

    def _resolve(self, hold: holds.TimedOut, now: datetime) -> int:
        """Ask about one hold and act on the answer; 1 when it was voided."""
        try:
            answer = self._ask(hold)
        except DomainError as refusal:
            self._metrics.unresolved.inc()
            pause = timedelta(seconds=RESOLVE_BACKOFF.delay_s(hold.attempts + 1, 1.0))
            self._log.warning(
                "a timed-out hold could not be resolved: it stays until the treatment node answers",
                request_id=hold.request_id,
                treatment_node=hold.origin_admdvs,
                reason=refusal.reason_code,
                retry_in_s=pause.total_seconds(),
            )
            with self._database.unit_of_work(write=True) as uow:
                holds.postpone(uow.session, hold.request_id, now + pause)
                uow.commit()
            return 0
        return self._act(hold, answer, now)

    def _act(self, hold: holds.TimedOut, answer: api.FenceSettlementResponse, now: datetime) -> int:
        """Confirm or void a hold by its treatment node's answer; 1 when it was voided."""
        with self._database.unit_of_work(write=True) as uow:
            if answer.outcome == api.SETTLEMENT_OUTCOME_RECORDED:
                holds.confirm(uow.session, hold.request_id, answer.setl_id, now, hold.origin_admdvs)
                done = False
            else:
                done = holds.void(uow.session, hold.request_id, now)
            uow.commit()
        if done:
            self._metrics.voided.labels("expired").inc()
            self._log.warning(
                "settlement hold timed out and the treatment node never recorded it: voided, "
                "accumulators and account restored",
                request_id=hold.request_id,
                treatment_node=hold.origin_admdvs,
            )
        return int(done)

    def _ask(self, hold: holds.TimedOut) -> api.FenceSettlementResponse:
        """FenceSettlement at the node that applied the hold, sealed, its receipt checked."""
        key = origin_id(hold.request_id, "apply") or hold.request_id
        request = api.FenceSettlementRequest(
            request_id=derived_id(key, "fence"),
            route=settlement_pb2.Route(
                origin_admdvs=self._region, destination_admdvs=hold.origin_admdvs, hops=[self._region]
            ),
            application_request_id=hold.request_id,
        )
        self._integrity.seal(request, ROUTED)
        client = self._router.toward(hold.origin_admdvs, "origin_admdvs")
        answer: api.FenceSettlementResponse = client.call(
            client.stub(InsuredSettlementServiceStub).FenceSettlement, request
        )
        self._integrity.check_receipt(
            "FenceSettlement",
            answer,
            request.payload_signature,
            Origin(node={"origin_admdvs": hold.origin_admdvs}),
        )
        return answer

    def refresh_gauge(self) -> None:
        """Set the pending gauge from the table."""
        with self._database.unit_of_work() as uow:
            self._metrics.pending.set(holds.pending_count(uow.session))

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.void_expired()
            except Exception:  # the database may be down for a while; the next pass tries again
                self._log.exception("resolving timed-out holds failed")
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
