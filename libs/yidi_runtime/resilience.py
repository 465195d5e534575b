"""How a node treats a peer that does not answer: bounded retries with jitter, and a circuit breaker.

Pure decisions with an injected clock, so they are tested without sockets; the I/O that
follows them lives in :class:`yidi_runtime.peers.PeerClient`.

Only a *transport* failure counts against a peer: the call ended UNAVAILABLE or
DEADLINE_EXCEEDED without a yidi reason. A peer that answered with a refusal (even a
relayed ``NODE_UNREACHABLE`` about a node further away) is up, so its answer is neither
retried nor held against it; retrying at every hop would multiply attempts along the tree.
Only UNAVAILABLE is retried: the request did not get through, and even when it did, every
mutating receiver answers a repeated ``request_id`` with its original answer.
A DEADLINE_EXCEEDED call may still be running at the peer, so it is left to the caller
(or the outbox) to repeat later. The one refusal retried is the peer's own ``RATE_LIMITED``
of this node (:mod:`yidi_runtime.quotas`): nothing was done, and the peer said when to come
back. Like every refusal it says the peer is up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import grpc

from yidi_core.errors import DomainError

Monotonic = Callable[[], float]
"""Seconds from an arbitrary origin that never goes backwards (``time.monotonic``)."""

TRANSPORT_FAILURES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def is_transport_failure(code: grpc.StatusCode, has_yidi_reason: bool) -> bool:
    """Whether a failed call says the peer is unreachable (rather than that it refused)."""
    return code in TRANSPORT_FAILURES and not has_yidi_reason


def is_retryable(code: grpc.StatusCode, has_yidi_reason: bool) -> bool:
    """Whether to send the same request again at once: the peer was unavailable, nothing more."""
    return code is grpc.StatusCode.UNAVAILABLE and not has_yidi_reason


def rate_limit_delay_s(refusal: DomainError | None, peer_region: str) -> float | None:
    """The wait the peer asked for when it refused this node for its rate, else None.

    Only a limit the peer itself applied (``node_region`` is the peer's) is waited out here:
    a relayed ``RATE_LIMITED`` was met further along the tree, where the node that met it
    already waited; retrying it at every hop would multiply the calls toward a node that is
    refusing them.
    """
    if refusal is None or refusal.reason_code != "RATE_LIMITED":
        return None
    if refusal.metadata.get("node_region") != peer_region:
        return None
    return refusal.retry_delay_s or 0.0


@dataclass(frozen=True)
class Backoff:
    """Exponential pauses with "equal jitter": after *n* failures, between ½ and 1 × min(max, base·2ⁿ⁻¹).

    The jitter spreads out the retries of many senders that failed together; the floor
    keeps one sender from retrying at once by bad luck.
    """

    base_s: float
    max_s: float

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.max_s < self.base_s:
            raise ValueError(f"invalid backoff {self}")

    def delay_s(self, failures: int, jitter: float) -> float:
        """The pause after ``failures`` consecutive failures (≥ 1); ``jitter`` is uniform in [0, 1)."""
        ceiling = min(self.max_s, self.base_s * 2 ** (max(failures, 1) - 1))
        return ceiling * (0.5 + jitter / 2)


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``attempts`` tries of one call, with a :class:`Backoff` pause between them."""

    attempts: int = 3
    backoff: Backoff = Backoff(base_s=0.05, max_s=1.0)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"invalid retry policy {self}")


NO_RETRY = RetryPolicy(attempts=1)


class BreakerState(StrEnum):
    """Closed: calls go through. Open: calls fail fast. Half-open: one trial call decides."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive transport failures; tries again after ``cool_down_s``.

    While open every call is refused without touching the network, so a dead peer costs
    its callers nothing but the refusal. After the cool-down one caller at a time is let
    through as a trial: its success closes the breaker, its failure opens it again.
    Thread-safe.
    """

    def __init__(
        self, failure_threshold: int = 5, cool_down_s: float = 10.0, clock: Monotonic = time.monotonic
    ) -> None:
        if failure_threshold < 1 or cool_down_s <= 0:
            raise ValueError("failure_threshold must be ≥ 1 and cool_down_s positive")
        self.failure_threshold = failure_threshold
        self.cool_down_s = cool_down_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._last_failure_at: float | None = None
        self._opened_at: float | None = None
        self._trial_running = False

    def now(self) -> float:
        """The breaker's clock: when a call starts, for :meth:`record_failure`."""
        return self._clock()

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.cool_down_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker turns half-open once its cool-down has passed)."""
        with self._lock:
            return self._state()

    def retry_after_s(self) -> float:
        """Seconds until an open breaker lets a trial call through (0 when not open)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.cool_down_s - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """Whether a call may go out now; a True in half-open makes the caller the trial."""
        with self._lock:
            state = self._state()
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.HALF_OPEN and not self._trial_running:
                self._trial_running = True
                return True
            return False

    def record_success(self) -> None:
        """The peer answered: close the breaker."""
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_running = False

    def abandon(self) -> None:
        """A call let through ended without a verdict on the peer (a local error): free the trial."""
        with self._lock:
            self._trial_running = False

    def record_failure(self, started_at: float | None = None) -> None:
        """The peer did not answer: count it, and open (again) at the threshold or after a failed trial.

        A call that started before the last counted failure (``started_at``) was in flight when
        the link broke and says nothing new: one dropped connection fails every call on it at
        once, and must count as one failure, not open the breaker by itself.
        """
        with self._lock:
            overlapping = (
                started_at is not None
                and self._last_failure_at is not None
                and started_at < self._last_failure_at
            )
            if not overlapping:
                self._failures += 1
                self._last_failure_at = self._clock()
            if self._trial_running or self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
            self._trial_running = False
