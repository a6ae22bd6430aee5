"""Retries (tenacity, bounded) and the per-action token bucket, with a fake clock."""

from __future__ import annotations

import pytest

from terwayctl.cloud.errors import CloudInvalidState, CloudThrottled
from terwayctl.cloud.ratelimit import RateLimiter, RateLimits
from terwayctl.cloud.retry import RetryPolicy, call_with_retries


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def throttled() -> CloudThrottled:
    return CloudThrottled("throttled", code="Throttling")


def test_retryable_error_then_success() -> None:
    fake, calls = FakeTime(), []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise throttled()
        return "ok"

    policy = RetryPolicy(max_attempts=5, initial_backoff=0.1, max_backoff=1.0)
    assert call_with_retries(flaky, policy, action="X", sleep=fake.sleep, clock=fake.clock) == "ok"
    assert len(calls) == 3 and len(fake.sleeps) == 2
    assert all(0 <= s <= 1.0 for s in fake.sleeps)


def test_attempts_are_bounded() -> None:
    fake, calls = FakeTime(), []

    def always() -> None:
        calls.append(1)
        raise throttled()

    with pytest.raises(CloudThrottled, match="gave up after 4 attempts"):
        call_with_retries(always, RetryPolicy(max_attempts=4, max_elapsed=1e9), action="X", sleep=fake.sleep, clock=fake.clock)
    assert len(calls) == 4


def test_total_time_is_bounded() -> None:
    fake, calls = FakeTime(), []

    def slow_fail() -> None:
        calls.append(1)
        fake.now += 2.0  # each attempt takes 2 s
        raise throttled()

    policy = RetryPolicy(max_attempts=100, max_elapsed=7.0, initial_backoff=0.5, max_backoff=0.5)
    with pytest.raises(CloudThrottled):
        call_with_retries(slow_fail, policy, action="X", sleep=fake.sleep, clock=fake.clock)
    assert fake.now <= 7.0 + 2.0
    assert 2 <= len(calls) <= 4


def test_backoff_grows_and_is_capped() -> None:
    fake = FakeTime()

    def always() -> None:
        raise throttled()

    policy = RetryPolicy(max_attempts=30, max_elapsed=1e9, initial_backoff=0.01, max_backoff=0.2)
    with pytest.raises(CloudThrottled):
        call_with_retries(always, policy, action="X", sleep=fake.sleep, clock=fake.clock)
    assert max(fake.sleeps) <= 0.2
    assert max(fake.sleeps[:2]) <= 0.02  # early sleeps are small: 0.01 * 2**(n-1) at most


def test_non_retryable_is_raised_at_once() -> None:
    calls = []

    def bad() -> None:
        calls.append(1)
        raise CloudInvalidState("no", code="InvalidOperation.InvalidEniState")

    with pytest.raises(CloudInvalidState):
        call_with_retries(bad, RetryPolicy(), action="X", sleep=lambda s: None)
    assert calls == [1]


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_token_bucket_spaces_calls_per_action() -> None:
    fake = FakeTime()
    limiter = RateLimiter(RateLimits(read_qps=10, write_qps=2), clock=fake.clock, sleep=fake.sleep)
    waits = [limiter.acquire("DescribeVpcs") for _ in range(5)]
    assert waits[0] == 0
    assert waits[1:] == pytest.approx([0.1] * 4)
    assert fake.now == pytest.approx(0.4)
    # another action has its own bucket
    assert limiter.acquire("CreateNetworkInterface") == 0
    assert limiter.acquire("CreateNetworkInterface") == pytest.approx(0.5)


def test_token_bucket_refills_and_bursts() -> None:
    fake = FakeTime()
    limiter = RateLimiter(RateLimits(read_qps=5, burst=3), clock=fake.clock, sleep=fake.sleep)
    assert [limiter.acquire("DescribeX") for _ in range(3)] == [0, 0, 0]
    assert limiter.acquire("DescribeX") == pytest.approx(0.2)
    fake.now += 10
    assert [limiter.acquire("DescribeX") for _ in range(3)] == [0, 0, 0]


def test_per_action_override_and_disable() -> None:
    fake = FakeTime()
    limits = RateLimits(read_qps=1, per_action={"DescribeInstanceTypes": 0, "AssignPrivateIpAddresses": 4})
    limiter = RateLimiter(limits, clock=fake.clock, sleep=fake.sleep)
    assert [limiter.acquire("DescribeInstanceTypes") for _ in range(10)] == [0] * 10
    limiter.acquire("AssignPrivateIpAddresses")
    assert limiter.acquire("AssignPrivateIpAddresses") == pytest.approx(0.25)
