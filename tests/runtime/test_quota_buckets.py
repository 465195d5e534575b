"""Per-caller token buckets: refill, caps, exemptions, forgetting idle callers, many threads at once (fake clock)."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry

from yidi_core.errors import DomainError
from yidi_runtime.config import RateLimit, load_settings
from yidi_runtime.identity import DEVELOPER, CallerRole, Principal, parse_subject
from yidi_runtime.quotas import Quotas
from yidi_testing import FakeClock

SETTLEMENT = "yidi.settlement.v1.SettlementService"
HEALTH = "grpc.health.v1.Health"


def principal(subject: str) -> Principal:
    found = parse_subject(subject)
    assert found is not None
    return found


HOSPITAL = principal("institution/H11010500001")
OTHER_HOSPITAL = principal("institution/H11010500002")


def quotas_for(clock: FakeClock, registry: CollectorRegistry | None = None, **callers: RateLimit) -> Quotas:
    limits = {
        CallerRole.INSTITUTION: RateLimit(rate_per_s=2.0, burst=3),
        CallerRole.NODE: RateLimit(rate_per_s=100.0, burst=10),
        CallerRole.OPERATOR: RateLimit(rate_per_s=1.0, burst=1),
    }
    return Quotas("110000", limits, callers, registry=registry, clock=clock)


def admitted(quotas: Quotas, caller: Principal, calls: int, service: str = SETTLEMENT) -> int:
    """How many of ``calls`` made at one instant are let through."""
    let_through = 0
    for _ in range(calls):
        try:
            quotas.admit(caller, service)
        except DomainError as refusal:
            assert refusal.reason_code == "RATE_LIMITED"
        else:
            let_through += 1
    return let_through


def refusal_of(quotas: Quotas, caller: Principal) -> DomainError:
    with pytest.raises(DomainError) as refused:
        quotas.admit(caller, SETTLEMENT)
    return refused.value


def test_a_caller_gets_its_burst_at_once_then_one_call_per_refill_and_never_more_than_the_burst() -> None:
    clock = FakeClock()
    quotas = quotas_for(clock)
    assert admitted(quotas, HOSPITAL, 5) == 3
    refusal = refusal_of(quotas, HOSPITAL)
    assert refusal.retry_delay_s == 0.5  # 2 calls a second: the next one is half a second away
    assert refusal.metadata == {
        "caller": "institution/H11010500001",
        "node_region": "110000",
        "rate_per_s": "2",
        "burst": "3",
    }
    clock.now += 0.25
    assert refusal_of(quotas, HOSPITAL).retry_delay_s == 0.25  # refused calls took nothing
    clock.now += 0.25
    assert admitted(quotas, HOSPITAL, 2) == 1
    clock.now += 3600
    assert admitted(quotas, HOSPITAL, 5) == 3  # an hour idle refills the burst, not 7,200 calls


def test_callers_have_buckets_of_their_own_and_limits_by_role_or_by_name() -> None:
    clock = FakeClock()
    quotas = quotas_for(clock, **{"institution/H11010500002": RateLimit(rate_per_s=5.0, burst=6)})
    assert admitted(quotas, HOSPITAL, 10) == 3
    assert admitted(quotas, OTHER_HOSPITAL, 10) == 6
    assert admitted(quotas, principal("operator/110000/ops"), 10) == 1
    assert admitted(quotas, principal("node/000000"), 20) == 10
    assert refusal_of(quotas, OTHER_HOSPITAL).retry_delay_s == 0.2


def test_the_developer_and_the_public_services_are_never_limited() -> None:
    quotas = quotas_for(FakeClock())
    assert admitted(quotas, DEVELOPER, 50) == 50
    assert admitted(quotas, HOSPITAL, 50, service=HEALTH) == 50
    assert admitted(quotas, HOSPITAL, 50, service="grpc.reflection.v1alpha.ServerReflection") == 50
    assert admitted(quotas, HOSPITAL, 5) == 3


def test_the_retry_delay_is_rounded_up_to_the_millisecond() -> None:
    quotas = Quotas("110000", {CallerRole.INSTITUTION: RateLimit(rate_per_s=3.0, burst=1)}, clock=FakeClock())
    quotas.admit(HOSPITAL, SETTLEMENT)
    assert refusal_of(quotas, HOSPITAL).retry_delay_s == 0.334


def test_refusals_are_counted_by_role_and_the_callers_tracked_are_shown() -> None:
    clock, registry = FakeClock(), CollectorRegistry()
    quotas = quotas_for(clock, registry)

    def refused(role: str) -> float | None:
        return registry.get_sample_value("yidi_rate_limited_total", {"caller_role": role})

    def tracked() -> float | None:
        return registry.get_sample_value("yidi_rate_limit_callers")

    assert (refused("institution"), refused("node"), refused("operator"), tracked()) == (0, 0, 0, 0)
    admitted(quotas, HOSPITAL, 5)
    admitted(quotas, principal("operator/110000/ops"), 3)
    assert (refused("institution"), refused("operator"), tracked()) == (2, 2, 2)


def test_idle_callers_are_forgotten_once_their_buckets_are_full_again() -> None:
    clock, registry = FakeClock(), CollectorRegistry()
    batch = principal("operator/110000/batch")
    quotas = quotas_for(clock, registry, **{batch.subject: RateLimit(rate_per_s=0.01, burst=2)})
    for code in range(20):
        admitted(quotas, principal(f"institution/H110105{code:05d}"), 1)
    admitted(quotas, batch, 1)
    assert registry.get_sample_value("yidi_rate_limit_callers") == 21
    clock.now += 61
    admitted(quotas, HOSPITAL, 1)  # the call that finds the sweep due
    assert registry.get_sample_value("yidi_rate_limit_callers") == 2  # the batch operator and this one
    assert admitted(quotas, batch, 2) == 1  # still 1.61 calls in hand: forgetting it would have refilled it


def test_concurrent_calls_of_one_caller_share_its_burst_exactly() -> None:
    clock = FakeClock()  # time stands still: only the burst is there to take
    quotas = quotas_for(clock, **{HOSPITAL.subject: RateLimit(rate_per_s=1.0, burst=100)})
    counts: list[int] = []
    start = threading.Barrier(8)

    def caller() -> None:
        start.wait()
        counts.append(admitted(quotas, HOSPITAL, 50))

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(counts) == 8 and sum(counts) == 100


def test_switched_off_quotas_are_none() -> None:
    registry = CollectorRegistry()
    assert Quotas.from_settings(load_settings(environ={"YIDI_QUOTA_ENABLED": "off"}), registry) is None
    configured = Quotas.from_settings(
        load_settings(environ={"YIDI_QUOTA_OPERATOR_RATE": "0.5", "YIDI_QUOTA_OPERATOR_BURST": "2"}),
        registry,
        FakeClock(),
    )
    assert configured is not None
    assert admitted(configured, principal("operator/110000/ops"), 5) == 2
    assert refusal_of(configured, principal("operator/110000/ops")).retry_delay_s == 2.0
