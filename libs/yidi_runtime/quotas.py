"""Per-caller rate limits (quotas): one institution or one child node cannot starve a node.

Each authenticated caller — a principal's subject (``institution/H11010500001``,
``node/330000``, ``operator/110000/ops``) — has a token bucket: it holds at most ``burst``
calls and refills at ``rate_per_s``, by role or by a per-caller override (``[quotas]`` in
the node configuration). A call that finds its bucket empty is refused before
authorization and before its handler does any work: ``RESOURCE_EXHAUSTED`` with reason
``RATE_LIMITED``, a ``google.rpc.RetryInfo`` saying when the bucket next holds a call, and
metadata naming the caller and this node. A refused call takes no token, so a caller that
keeps sending is served at exactly its rate.

Never limited: the public services (health probes, reflection), the developer of an
insecure node, and calls between a node's own services (the in-process listener's guard
has no quotas). Buckets live in the process, so each replica of a node counts its own calls.

Cheap and bounded: the buckets are spread over :data:`_SHARDS` shards, each with its own
lock, so concurrent callers rarely wait on one another. A bucket that has refilled to its
``burst`` is indistinguishable from a new one, so every :data:`_SWEEP_INTERVAL_S` the call
that finds the sweep due forgets those: memory follows the callers of about the last
minute, not every caller ever seen.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from yidi_core.errors import DomainError
from yidi_runtime.authz import PUBLIC_SERVICES
from yidi_runtime.config import NodeSettings, RateLimit
from yidi_runtime.identity import CallerRole, Principal
from yidi_runtime.resilience import Monotonic

_SHARDS = 16
_SWEEP_INTERVAL_S = 60.0


@dataclass
class _Bucket:
    """One caller's calls in hand (``tokens``) as of ``updated``, refilling per ``limit``."""

    limit: RateLimit
    tokens: float
    updated: float

    def tokens_at(self, now: float) -> float:
        return min(float(self.limit.burst), self.tokens + (now - self.updated) * self.limit.rate_per_s)


class _Shard:
    """Some callers' buckets, under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[str, _Bucket] = {}

    def take(self, subject: str, limit: RateLimit, now: float) -> float:
        """Take one call from ``subject``'s bucket: 0 when taken, else the seconds until one is there."""
        with self.lock:
            bucket = self.buckets.get(subject)
            if bucket is None:
                bucket = self.buckets[subject] = _Bucket(limit, float(limit.burst), now)
            tokens = bucket.tokens_at(now)
            bucket.updated = now
            if tokens >= 1.0:
                bucket.tokens = tokens - 1.0
                return 0.0
            bucket.tokens = tokens
            return (1.0 - tokens) / bucket.limit.rate_per_s

    def sweep(self, now: float) -> None:
        """Forget the full buckets: their callers would start afresh with exactly as much."""
        with self.lock:
            self.buckets = {
                subject: bucket
                for subject, bucket in self.buckets.items()
                if bucket.tokens_at(now) < bucket.limit.burst
            }


class Quotas:
    """One node's rate limits: a token bucket per caller subject, limits by role or by caller.

    ``clock`` is injectable so tests never wait on real time.
    """

    def __init__(
        self,
        region: str,
        limits: Mapping[CallerRole, RateLimit],
        callers: Mapping[str, RateLimit] | None = None,
        *,
        registry: CollectorRegistry | None = None,
        clock: Monotonic = time.monotonic,
    ) -> None:
        self._region = region
        self._limits = dict(limits)
        self._callers = dict(callers or {})
        self._clock = clock
        self._shards = tuple(_Shard() for _ in range(_SHARDS))
        self._sweeping = threading.Lock()
        self._next_sweep = clock() + _SWEEP_INTERVAL_S
        registry = registry or CollectorRegistry()
        self._refused = Counter(
            "yidi_rate_limited_total",
            "Calls refused RATE_LIMITED because their caller exceeded its quota, by the caller's role "
            "(the caller itself is in the rpc log line).",
            ("caller_role",),
            registry=registry,
        )
        for role in self._limits:
            self._refused.labels(role.value)
        Gauge(
            "yidi_rate_limit_callers",
            "Callers with a rate-limit bucket on this replica (those seen in about the last minute).",
            registry=registry,
        ).set_function(lambda: sum(len(shard.buckets) for shard in self._shards))

    @classmethod
    def from_settings(
        cls, settings: NodeSettings, registry: CollectorRegistry, clock: Monotonic = time.monotonic
    ) -> Quotas | None:
        """The node's quotas as configured, or None when ``[quotas] enabled = false``."""
        if not settings.quota_enabled:
            return None
        limits = {
            CallerRole.INSTITUTION: RateLimit(
                settings.quota_institution_rate, settings.quota_institution_burst
            ),
            CallerRole.NODE: RateLimit(settings.quota_node_rate, settings.quota_node_burst),
            CallerRole.OPERATOR: RateLimit(settings.quota_operator_rate, settings.quota_operator_burst),
        }
        return cls(settings.region, limits, settings.quota_callers, registry=registry, clock=clock)

    def admit(self, principal: Principal, service: str) -> None:
        """Take one call from the caller's quota, or raise RATE_LIMITED saying when to retry.

        The caller's own limit applies, else its role's; the developer has neither.
        """
        subject = principal.subject
        limit = self._callers.get(subject) or self._limits.get(principal.role)
        if limit is None or service in PUBLIC_SERVICES:
            return
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        wait_s = self._shards[hash(subject) % _SHARDS].take(subject, limit, now)
        if wait_s == 0.0:
            return
        self._refused.labels(principal.role.value).inc()
        retry_s = math.ceil(wait_s * 1000) / 1000
        raise DomainError(
            "RATE_LIMITED",
            f"{subject} exceeded its quota at node {self._region} ({limit.rate_per_s:g} calls a second, "
            f"{limit.burst} at once); resend after {retry_s:g} s",
            metadata={
                "caller": subject,
                "node_region": self._region,
                "rate_per_s": f"{limit.rate_per_s:g}",
                "burst": str(limit.burst),
            },
            retry_delay_s=retry_s,
        )

    def _sweep(self, now: float) -> None:
        """Forget every full bucket, once a sweep interval, in the one call that finds it due."""
        if not self._sweeping.acquire(blocking=False):
            return
        try:
            if now >= self._next_sweep:
                self._next_sweep = now + _SWEEP_INTERVAL_S
                for shard in self._shards:
                    shard.sweep(now)
        finally:
            self._sweeping.release()
