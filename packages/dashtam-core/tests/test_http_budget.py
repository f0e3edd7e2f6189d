"""Request budgets: the in-process token bucket and the RateLimiter-backed budget."""

from __future__ import annotations

import pytest

from dashtam_core.adapters.http import RateLimiterBudget, RequestBudget, TokenBucketBudget
from dashtam_core.adapters.memory.rate_limiter import InMemoryRateLimiter
from dashtam_core.ports.rate_limit import RateLimitRule, RateLimitScope


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_bucket_allows_burst_then_refuses_with_wait() -> None:
    clock = FakeClock()
    budget = TokenBucketBudget(rate=2.0, burst=3, clock=clock, sleep=clock.sleep)
    assert isinstance(budget, RequestBudget)
    assert [await budget.acquire("acme") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await budget.acquire("acme") == pytest.approx(0.5)
    assert budget.available("acme") == pytest.approx(0.0)  # the refusal took nothing
    clock.now += 0.5
    assert await budget.acquire("acme") == 0.0


async def test_bucket_keys_are_independent() -> None:
    clock = FakeClock()
    budget = TokenBucketBudget(rate=1.0, burst=1, clock=clock, sleep=clock.sleep)
    assert await budget.acquire("a") == 0.0
    assert await budget.acquire("b") == 0.0
    assert await budget.acquire("a") > 0


async def test_bucket_waits_up_to_max_wait() -> None:
    clock = FakeClock()
    budget = TokenBucketBudget(rate=4.0, burst=1, max_wait=1.0, clock=clock, sleep=clock.sleep)
    assert await budget.acquire("acme") == 0.0
    assert await budget.acquire("acme") == 0.0
    assert clock.slept == [pytest.approx(0.25)]


async def test_bucket_refill_is_capped_at_burst() -> None:
    clock = FakeClock()
    budget = TokenBucketBudget(rate=10.0, burst=2, clock=clock, sleep=clock.sleep)
    await budget.acquire("acme")
    clock.now += 1000
    assert budget.available("acme") == pytest.approx(2.0)


def test_bucket_validates_arguments() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucketBudget(rate=0, burst=1)
    with pytest.raises(ValueError, match="burst"):
        TokenBucketBudget(rate=1, burst=0)


async def test_rate_limiter_budget_spends_through_the_limiter() -> None:
    rule = RateLimitRule("acme-budget", limit=2, period_seconds=60, scope=RateLimitScope.NONE)
    budget = RateLimiterBudget(InMemoryRateLimiter(), rule)
    assert isinstance(budget, RequestBudget)
    assert await budget.acquire("acme") == 0.0
    assert await budget.acquire("acme") == 0.0
    assert await budget.acquire("acme") > 0
    assert await budget.acquire("other") == 0.0
