"""Tree routing, retries and the circuit breaker: the decisions, without sockets (fake clock and calls)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from yidi_core.errors import DomainError
from yidi_runtime.config import NodeSettings, Peer, Role
from yidi_runtime.local_calls import LocalRpcError
from yidi_runtime.peers import PeerClient
from yidi_runtime.resilience import Backoff, BreakerState, CircuitBreaker, RetryPolicy
from yidi_runtime.routing import Hop, Router, route
from yidi_runtime.status import to_status
from yidi_testing import FakeClock

NATIONAL = Peer("000000", "national:50051")
BEIJING = Peer("110000", "beijing:50051")
HEBEI = Peer("130000", "hebei:50051")
LANGFANG = Peer("131000", "langfang:50051")
ZHEJIANG = Peer("330000", "zhejiang:50051")
JIAXING = Peer("330400", "jiaxing:50051")

NATIONAL_NODE = NodeSettings(role=Role.NATIONAL, region="000000", children=(BEIJING, HEBEI, ZHEJIANG))
ZHEJIANG_NODE = NodeSettings(role=Role.PROVINCE, region="330000", parent=NATIONAL, children=(JIAXING,))
HEBEI_NODE = NodeSettings(role=Role.PROVINCE, region="130000", parent=NATIONAL, children=(LANGFANG,))
LONE_BEIJING_NODE = NodeSettings(role=Role.PROVINCE, region="110000")
JIAXING_NODE = NodeSettings(role=Role.CITY, region="330400", parent=ZHEJIANG)
# A national node may also list a city it talks to directly; the most specific child wins.
NATIONAL_WITH_CITY = NodeSettings(role=Role.NATIONAL, region="000000", children=(HEBEI, LANGFANG))


@pytest.mark.parametrize(
    ("node", "target", "hop", "peer"),
    [
        (NATIONAL_NODE, "000000", Hop.HERE, None),
        (NATIONAL_NODE, "110000", Hop.DOWN, BEIJING),
        (NATIONAL_NODE, "110105", Hop.DOWN, BEIJING),
        (NATIONAL_NODE, "131000", Hop.DOWN, HEBEI),
        (NATIONAL_NODE, "330402", Hop.DOWN, ZHEJIANG),
        (NATIONAL_WITH_CITY, "131002", Hop.DOWN, LANGFANG),
        (NATIONAL_WITH_CITY, "130100", Hop.DOWN, HEBEI),
        (ZHEJIANG_NODE, "330000", Hop.HERE, None),
        (ZHEJIANG_NODE, "330100", Hop.HERE, None),
        (ZHEJIANG_NODE, "330402", Hop.DOWN, JIAXING),
        (ZHEJIANG_NODE, "330400", Hop.DOWN, JIAXING),
        (ZHEJIANG_NODE, "110000", Hop.UP, NATIONAL),
        (ZHEJIANG_NODE, "630100", Hop.UP, NATIONAL),
        (ZHEJIANG_NODE, "000000", Hop.UP, NATIONAL),
        (HEBEI_NODE, "131000", Hop.DOWN, LANGFANG),
        (HEBEI_NODE, "130100", Hop.HERE, None),
        (LONE_BEIJING_NODE, "110105", Hop.HERE, None),
        (JIAXING_NODE, "330400", Hop.HERE, None),
        (JIAXING_NODE, "330402", Hop.HERE, None),
        (JIAXING_NODE, "330100", Hop.UP, ZHEJIANG),
        (JIAXING_NODE, "330000", Hop.UP, ZHEJIANG),
        (JIAXING_NODE, "110000", Hop.UP, ZHEJIANG),
        (JIAXING_NODE, "000000", Hop.UP, ZHEJIANG),
    ],
)
def test_route_goes_here_down_to_the_owning_child_or_up(
    node: NodeSettings, target: str, hop: Hop, peer: Peer | None
) -> None:
    decided = route(node, target)
    assert (decided.target, decided.hop, decided.peer) == (target, hop, peer)


@pytest.mark.parametrize(
    ("node", "target"),
    [
        (NATIONAL_NODE, "630000"),  # no Qinghai node configured
        (NATIONAL_NODE, "630102"),
        (LONE_BEIJING_NODE, "130000"),  # another province, no parent
        (LONE_BEIJING_NODE, "000000"),
    ],
)
def test_no_route_is_a_stable_refusal(node: NodeSettings, target: str) -> None:
    with pytest.raises(DomainError) as refused:
        route(node, target)
    assert refused.value.reason_code == "NODE_UNREACHABLE"
    assert refused.value.metadata == {"admdvs": target, "node_region": node.region}
    with pytest.raises(DomainError) as renamed:
        route(node, target, "insuplc_admdvs", "INSURED_REGION_UNREACHABLE")
    assert renamed.value.reason_code == "INSURED_REGION_UNREACHABLE"


def test_a_malformed_region_is_invalid_code_naming_the_field() -> None:
    with pytest.raises(DomainError) as refused:
        route(ZHEJIANG_NODE, "33040", "insuplc_admdvs")
    assert refused.value.reason_code == "INVALID_CODE"
    assert [v.field for v in refused.value.violations] == ["insuplc_admdvs"]


def test_router_keeps_one_client_per_peer_and_reaches_its_own_region_through_its_port() -> None:
    node = NodeSettings(
        role=Role.PROVINCE,
        region="330000",
        host="0.0.0.0",
        grpc_port=7001,
        parent=NATIONAL,
        children=(JIAXING,),
    )
    router = Router(node)
    assert router.next_hop("330100") is None
    up = router.next_hop("110000")
    assert up is not None and up.peer == NATIONAL
    assert router.next_hop("630000") is up
    assert router.client(NATIONAL) is up
    assert router.toward("330100").peer == Peer("330000", "127.0.0.1:7001")
    assert router.toward("330402").peer == JIAXING
    assert up.breaker is not None and router.client(JIAXING).breaker is not up.breaker
    router.close()


def test_breaker_opens_after_consecutive_failures_and_half_opens_after_the_cool_down() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, cool_down_s=10.0, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    breaker.record_success()  # a success resets the count: failures must be consecutive
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    assert breaker.retry_after_s() == 10.0

    clock.now += 9.9
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()  # this caller is the trial …
    assert not breaker.allow()  # … and everyone else waits for its verdict
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()

    clock.now += 10.0
    assert breaker.allow()
    breaker.abandon()  # a trial ending without a verdict frees the slot
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow() and breaker.allow()


def test_backoff_doubles_with_jitter_between_half_and_the_full_ceiling_and_is_capped() -> None:
    backoff = Backoff(base_s=0.5, max_s=4.0)
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0]
    for failures, ceiling in enumerate(ceilings, start=1):
        assert backoff.delay_s(failures, 0.0) == ceiling / 2
        assert ceiling / 2 < backoff.delay_s(failures, 0.999) < ceiling


def rpc_failure(code: grpc.StatusCode, refusal: DomainError | None = None) -> LocalRpcError:
    """What a stub raises: a status code, details and trailing metadata (rich status, if any)."""
    if refusal is None:
        return LocalRpcError(code, f"fake {code.name}")
    status = to_status(refusal)
    return LocalRpcError(status.code, status.details, status.trailing_metadata)


@dataclass
class ScriptedMethod:
    """A stub method answering from a script: an exception to raise or an answer to return."""

    script: list[Exception | str]
    clock: FakeClock
    seconds_per_call: float = 0.0
    timeouts: list[float] = field(default_factory=list)

    def __call__(self, request: Any, timeout: float, metadata: Any = ()) -> str:
        self.timeouts.append(timeout)
        self.clock.now += self.seconds_per_call
        outcome = self.script.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def client_for(clock: FakeClock, sleeps: list[float], **options: Any) -> PeerClient:
    return PeerClient(NATIONAL, None, 5.0, clock=clock, sleep=sleeps.append, jitter=lambda: 0.5, **options)


def test_unavailable_is_retried_with_backoff_within_the_attempt_limit() -> None:
    clock, sleeps = FakeClock(), []
    client = client_for(clock, sleeps, retry=RetryPolicy(3, Backoff(0.1, 1.0)))
    unavailable = rpc_failure(grpc.StatusCode.UNAVAILABLE)
    method = ScriptedMethod([unavailable, unavailable, "answer"], clock)
    assert client.call(method, b"") == "answer"
    assert sleeps == pytest.approx([0.075, 0.15])

    method = ScriptedMethod([unavailable] * 4, clock)
    with pytest.raises(DomainError) as refused:
        client.call(method, b"")
    assert len(method.timeouts) == 3 and method.script == [unavailable]
    assert refused.value.reason_code == "NODE_UNREACHABLE"
    assert refused.value.metadata["grpc_code"] == "UNAVAILABLE"


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (rpc_failure(grpc.StatusCode.DEADLINE_EXCEEDED), "NODE_UNREACHABLE"),  # may still be running there
        (rpc_failure(grpc.StatusCode.INTERNAL), "NODE_UNREACHABLE"),
        (rpc_failure(grpc.StatusCode.UNAVAILABLE, DomainError("NODE_UNREACHABLE")), "NODE_UNREACHABLE"),
        (rpc_failure(grpc.StatusCode.FAILED_PRECONDITION, DomainError("NOT_FILED")), "NOT_FILED"),
        (
            rpc_failure(grpc.StatusCode.UNAVAILABLE, DomainError("INSTITUTION_SUSPENDED")),
            "INSTITUTION_SUSPENDED",
        ),
    ],
)
def test_nothing_but_a_bare_unavailable_is_retried(failure: LocalRpcError, reason: str) -> None:
    clock, sleeps = FakeClock(), []
    client = client_for(clock, sleeps, retry=RetryPolicy(3))
    method = ScriptedMethod([failure, "answer"], clock)
    with pytest.raises(DomainError) as refused:
        client.call(method, b"")
    assert refused.value.reason_code == reason
    assert (len(method.timeouts), sleeps) == (1, [])


def test_retries_stay_within_the_call_deadline() -> None:
    clock, sleeps = FakeClock(), []
    client = client_for(clock, sleeps, retry=RetryPolicy(5, Backoff(1.0, 1.0)))
    unavailable = rpc_failure(grpc.StatusCode.UNAVAILABLE)
    method = ScriptedMethod([unavailable] * 5, clock, seconds_per_call=2.0)
    with pytest.raises(DomainError):
        client.call(method, b"", deadline_s=5.0)
    # Each try takes 2 s of the 5 s budget: the next gets what is left, and after the third
    # (6 s in) no pause fits any more.
    assert method.timeouts == [5.0, 3.0, 1.0]
    assert sleeps == [0.75, 0.75]


def test_calls_in_flight_when_the_link_broke_count_as_one_failure() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, cool_down_s=10.0, clock=clock)
    started = [breaker.now() for _ in range(20)]  # twenty calls on one connection …
    clock.now += 1.0
    for moment in started:  # … all fail when it drops
        breaker.record_failure(moment)
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    for _ in range(2):  # calls made after each failure still count, one by one
        clock.now += 0.5
        breaker.record_failure(breaker.now())
    assert breaker.state is BreakerState.OPEN


def test_the_breaker_fails_calls_fast_while_the_peer_is_down_and_a_trial_closes_it() -> None:
    clock, sleeps = FakeClock(), []
    breaker = CircuitBreaker(failure_threshold=2, cool_down_s=30.0, clock=clock)
    client = client_for(clock, sleeps, breaker=breaker)
    unavailable = rpc_failure(grpc.StatusCode.UNAVAILABLE)
    method = ScriptedMethod([unavailable, unavailable, "answer"], clock)
    for _ in range(2):
        with pytest.raises(DomainError):
            client.call(method, b"")
    with pytest.raises(DomainError) as fast:
        client.call(method, b"", unreachable="INSURED_REGION_UNREACHABLE")
    assert len(method.timeouts) == 2  # the open breaker did not touch the network
    assert fast.value.reason_code == "INSURED_REGION_UNREACHABLE"
    assert fast.value.metadata["circuit"] == "open" and fast.value.metadata["peer_region"] == "000000"

    clock.now += 30.0
    assert client.call(method, b"") == "answer"
    assert breaker.state is BreakerState.CLOSED


def test_a_peer_that_answers_with_a_refusal_is_up_for_the_breaker() -> None:
    clock, sleeps = FakeClock(), []
    breaker = CircuitBreaker(failure_threshold=1, cool_down_s=30.0, clock=clock)
    client = client_for(clock, sleeps, breaker=breaker)
    relayed = rpc_failure(grpc.StatusCode.UNAVAILABLE, DomainError("NODE_UNREACHABLE"))
    with pytest.raises(DomainError):
        client.call(ScriptedMethod([relayed], clock), b"")
    assert breaker.state is BreakerState.CLOSED


def rate_limited(at: str, delay_s: float) -> LocalRpcError:
    """A RATE_LIMITED refusal by the node of region ``at``, of the Beijing node, with its retry delay."""
    refusal = DomainError(
        "RATE_LIMITED", metadata={"caller": "node/110000", "node_region": at}, retry_delay_s=delay_s
    )
    return rpc_failure(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)


def test_the_peers_own_rate_limit_is_waited_out_and_retried_without_opening_the_breaker() -> None:
    clock, sleeps = FakeClock(), []
    breaker = CircuitBreaker(failure_threshold=1, cool_down_s=30.0, clock=clock)
    client = client_for(clock, sleeps, retry=RetryPolicy(3, Backoff(0.05, 1.0)), breaker=breaker)
    method = ScriptedMethod([rate_limited("000000", 0.2), rate_limited("000000", 0.01), "answer"], clock)
    assert client.call(method, b"") == "answer"
    # At least the delay the peer asked for, at least the jittered backoff (0.0375 s, then 0.075 s).
    assert sleeps == pytest.approx([0.2, 0.075])
    assert breaker.state is BreakerState.CLOSED


def test_a_rate_limit_met_further_along_the_tree_is_passed_back_with_its_delay_not_retried() -> None:
    clock, sleeps = FakeClock(), []
    client = client_for(clock, sleeps, retry=RetryPolicy(3))
    method = ScriptedMethod([rate_limited("630000", 0.2), "answer"], clock)
    with pytest.raises(DomainError) as refused:
        client.call(method, b"")
    assert (len(method.timeouts), sleeps) == (1, [])
    assert refused.value.reason_code == "RATE_LIMITED"
    assert refused.value.retry_delay_s == 0.2
    assert refused.value.metadata == {"caller": "node/110000", "node_region": "630000"}


def test_a_rate_limit_longer_than_the_calls_deadline_is_not_waited_for() -> None:
    clock, sleeps = FakeClock(), []
    client = client_for(clock, sleeps, retry=RetryPolicy(3))
    method = ScriptedMethod([rate_limited("000000", 30.0), "answer"], clock)
    with pytest.raises(DomainError) as refused:
        client.call(method, b"", deadline_s=5.0)
    assert refused.value.reason_code == "RATE_LIMITED" and sleeps == []
