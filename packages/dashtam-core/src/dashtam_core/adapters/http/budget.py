"""Per-provider request budgets: how many requests a provider may receive per unit of time.

A :class:`RequestBudget` is asked for one token before every attempt the HTTP client makes.
It either grants it (possibly after a short wait) or refuses, saying how long until a token
frees up; the client then answers with a synthetic ``429`` so the provider's ordinary error
mapping turns it into ``RateLimited(retry_after=...)``.

Two implementations: :class:`TokenBucketBudget` (in-process, exact, no I/O) and
:class:`RateLimiterBudget`, which spends budget through any
:class:`~dashtam_core.ports.rate_limit.RateLimiter` (the Redis limiter shares one budget
between every worker process).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from dashtam_core.ports.rate_limit import RateLimiter, RateLimitRule

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


@runtime_checkable
class RequestBudget(Protocol):
    """Grants request tokens per provider slug."""

    async def acquire(self, key: str) -> float:
        """Take one token for ``key``.

        Returns:
            ``0.0`` when the request may go ahead (after any wait the budget chose to do);
            otherwise the seconds until a token is available, and nothing was taken.
        """
        ...


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBucketBudget:
    """An in-process token bucket per key.

    Args:
        rate: tokens added per second.
        burst: bucket capacity (requests allowed back to back).
        max_wait: the longest wait (seconds) ``acquire`` accepts before refusing.
        clock: monotonic clock (injectable for tests).
        sleep: async sleep (injectable for tests).
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_wait: float = 0.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        if burst < 1:
            raise ValueError("burst must be >= 1")
        self.rate = rate
        self.burst = burst
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, _Bucket] = {}

    def __repr__(self) -> str:
        return f"TokenBucketBudget(rate={self.rate}, burst={self.burst}, max_wait={self.max_wait})"

    def available(self, key: str) -> float:
        """Tokens currently in ``key``'s bucket (negative while waiters hold reservations)."""
        return self._refill(key).tokens

    def _refill(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            return bucket
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
        bucket.updated = now
        return bucket

    async def acquire(self, key: str) -> float:
        """Take a token, waiting up to ``max_wait`` for one; see :class:`RequestBudget`."""
        bucket = self._refill(key)
        # Reserve first (no await between the check and the update), then wait out the debt.
        bucket.tokens -= 1.0
        if bucket.tokens >= 0:
            return 0.0
        wait = -bucket.tokens / self.rate
        if wait > self.max_wait:
            bucket.tokens += 1.0
            return wait
        await self._sleep(wait)
        return 0.0


class RateLimiterBudget:
    """A budget spent through a :class:`~dashtam_core.ports.rate_limit.RateLimiter`.

    Args:
        limiter: the limiter (in-memory or Redis-backed).
        rule: the provider's quota, e.g. ``RateLimitRule("alpaca", 200, 60, NONE)``.
        prefix: prepended to the key so provider budgets do not collide with other rules.
    """

    def __init__(
        self, limiter: RateLimiter, rule: RateLimitRule, *, prefix: str = "provider-budget:"
    ) -> None:
        self.limiter = limiter
        self.rule = rule
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"RateLimiterBudget(rule={self.rule.name!r})"

    async def acquire(self, key: str) -> float:
        """One hit on the limiter; refused hits return the limiter's ``retry_after``."""
        decision = await self.limiter.hit(self.prefix + key, self.rule)
        if decision.allowed:
            return 0.0
        return max(decision.retry_after, 0.001)


__all__ = ["RateLimiterBudget", "RequestBudget", "TokenBucketBudget"]
