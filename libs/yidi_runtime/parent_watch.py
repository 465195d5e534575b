"""Whether a node's parent answers: the health its cross-node services report depends on it.

Every node serves ``grpc.health.v1`` per service (DESIGN.md principle 6). A service whose
work goes through the parent (a settlement toward another place, a lookup relayed to the
province, a journal sent to the national node) cannot do it while the parent is gone, so a
node with a parent asks the parent's health every ``[node] parent_probe_interval_s``
(default 5 s), over the router's own channel to it (the node's mutual TLS), with a deadline
no longer than the interval or the router's 5 s: one small call per interval in one thread,
never more, and outside the peer's retries and circuit breaker so it always asks for real. When
the parent has not answered SERVING for ``[node] parent_unreachable_after_s`` (default
30 s), the services that declared they need it (:meth:`ServiceContext.needs_parent
<yidi_runtime.service.ServiceContext.needs_parent>`) report NOT_SERVING, and SERVING again
at the first answer. Node-local services, and the node's overall status (what container
probes ask), stay as their databases say: restarting a child cannot bring its parent back.

Each change is one log line (parent region and address, since when, the last error) and
the gauges ``yidi_parent_reachable`` and ``yidi_parent_unreachable_seconds`` (labelled by
the parent's region; no sample at a node without parent) say where things stand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry, Gauge

from yidi_runtime.config import NodeSettings
from yidi_runtime.logs import get_logger
from yidi_runtime.peers import DEFAULT_DEADLINE_S, PeerClient
from yidi_runtime.resilience import Monotonic

_SERVING = health_pb2.HealthCheckResponse.SERVING


class ParentGauges:
    """The parent's reachability as metrics, declared on every node (so rules can read them anywhere)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.reachable = Gauge(
            "yidi_parent_reachable",
            "1 while the parent answered its last health probe SERVING, else 0.",
            ("parent_region",),
            registry=registry,
        )
        self.unreachable_seconds = Gauge(
            "yidi_parent_unreachable_seconds",
            "Seconds since the first failed health probe of the parent's current outage (0 while it answers).",
            ("parent_region",),
            registry=registry,
        )


class ParentWatch:
    """Probes the parent's health in a thread of its own; :meth:`ok` says whether its dependants may serve.

    ``on_change`` is called (from the probe's thread) whenever :meth:`ok` changes, so the node
    sets its services' health at once rather than at its next periodic check.
    """

    def __init__(
        self,
        settings: NodeSettings,
        parent: PeerClient,
        gauges: ParentGauges,
        on_change: Callable[[], None],
        *,
        clock: Monotonic = time.monotonic,
    ) -> None:
        self._parent = parent
        self._region = parent.peer.region
        self._interval_s = settings.parent_probe_interval_s
        self._deadline_s = min(self._interval_s, DEFAULT_DEADLINE_S)
        self._after_s = settings.parent_unreachable_after_s
        self._on_change = on_change
        self._clock = clock
        self._reachable = gauges.reachable.labels(self._region)
        self._unreachable_seconds = gauges.unreachable_seconds.labels(self._region)
        self._reachable.set(1)
        self._unreachable_seconds.set(0)
        self._log = get_logger(node=settings.label)
        self._failing_since: float | None = None
        self._failing_since_utc: datetime | None = None
        self._last_error = ""
        self._down = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def ok(self) -> bool:
        """False once the parent has not answered for longer than ``parent_unreachable_after_s``."""
        return not self._down

    def probe(self) -> None:
        """Ask the parent's health once and record what it said (or why it said nothing)."""
        stub = self._parent.stub(health_pb2_grpc.HealthStub)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=self._deadline_s)
        except grpc.RpcError as error:
            self._failed(f"{error.code().name}: {error.details()}")
            return
        if answer.status == _SERVING:
            self._answered()
        else:
            self._failed(
                f"the parent reports {health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)}"
            )

    def _answered(self) -> None:
        was_down, since = self._down, self._failing_since_utc
        self._failing_since, self._failing_since_utc, self._down = None, None, False
        self._reachable.set(1)
        self._unreachable_seconds.set(0)
        if was_down:
            self._log.info(
                "parent reachable again: cross-node services SERVING",
                parent_region=self._region,
                parent_address=self._parent.peer.address,
                unreachable_since=since.isoformat() if since else None,
            )
            self._on_change()

    def _failed(self, error: str) -> None:
        now = self._clock()
        if self._failing_since is None:
            self._failing_since, self._failing_since_utc = now, datetime.now(UTC)
        self._last_error = error
        elapsed = now - self._failing_since
        self._reachable.set(0)
        self._unreachable_seconds.set(elapsed)
        if not self._down and elapsed >= self._after_s:
            self._down = True
            assert self._failing_since_utc is not None
            self._log.warning(
                "parent unreachable: cross-node services NOT_SERVING",
                parent_region=self._region,
                parent_address=self._parent.peer.address,
                unreachable_since=self._failing_since_utc.isoformat(),
                unreachable_after_s=self._after_s,
                last_error=self._last_error,
            )
            self._on_change()

    def _run(self) -> None:
        self.probe()
        while not self._stopping.wait(self._interval_s):
            self.probe()

    def start(self) -> None:
        """Probe now and then every interval, in a daemon thread, until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name=f"parent-watch-{self._region}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """End the probes (at node shutdown); a probe under way ends within its deadline."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
