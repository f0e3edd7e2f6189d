"""``RetryTransport``: retries with exponential backoff and full jitter, budget-aware.

The transport wraps another httpx async transport. Before every attempt it asks the
:class:`~dashtam_core.adapters.http.budget.RequestBudget` (when one is set) for a token; a
refusal becomes a synthetic ``429`` with ``Retry-After`` so the provider's ordinary mapping
yields ``RateLimited``. Responses with a retryable status (429, 5xx) and transport timeouts or
connection failures are retried up to ``RetryPolicy.attempts`` attempts in all, waiting

* the server's ``Retry-After`` / ``X-RateLimit-Reset`` when given, unless it exceeds
  ``max_retry_after`` (then the response is returned at once: the scheduler, not this
  request, should wait that long);
* otherwise ``uniform(0, min(max_delay, base_delay * 2**retry))`` (full jitter).

After the last attempt the last response is returned (so ``map_http_error`` still maps it) or
the last transport exception is raised (``map_transport_error`` maps it).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from dashtam_core.adapters.http.budget import RequestBudget
from dashtam_core.adapters.http.errors import _retry_after

logger = logging.getLogger("dashtam_core.http")

Sleep = Callable[[float], Awaitable[None]]

#: Header on the synthetic 429 produced when the request budget is exhausted.
BUDGET_HEADER = "X-Dashtam-Budget"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry.

    Attributes:
        attempts: attempts in all (1 disables retries).
        base_delay: backoff base in seconds.
        max_delay: cap of one backoff delay.
        max_retry_after: the longest server-requested wait honoured inside a request.
        statuses: response statuses worth retrying.
        methods: methods retried (idempotent ones by default: never double-submit a POST).
    """

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 30.0
    statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})
    methods: frozenset[str] = field(default=frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}))

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Full-jitter delay before retry number ``retry`` (0-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2**retry))
        return rng.uniform(0.0, ceiling)


def server_delay(response: httpx.Response) -> float | None:
    """Seconds the server asks us to wait (``Retry-After`` or rate-limit reset headers)."""
    return _retry_after(response)


class RetryTransport(httpx.AsyncBaseTransport):
    """Retrying, budget-enforcing wrapper around another async transport.

    Args:
        inner: the transport doing the I/O (default: a new ``httpx.AsyncHTTPTransport``).
        policy: the retry policy.
        budget: optional request budget, spent once per attempt under ``budget_key``.
        budget_key: the budget key (the provider slug).
        sleep: async sleep (injectable for tests).
        rng: random source for jitter (injectable for tests).
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        policy: RetryPolicy | None = None,
        budget: RequestBudget | None = None,
        budget_key: str = "default",
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = inner if inner is not None else httpx.AsyncHTTPTransport()
        self.policy = policy or RetryPolicy()
        self.budget = budget
        self.budget_key = budget_key
        self._sleep = sleep
        self._rng = rng or random.Random()  # jitter, not cryptography

    async def _spend(self, request: httpx.Request) -> httpx.Response | None:
        if self.budget is None:
            return None
        wait = await self.budget.acquire(self.budget_key)
        if wait <= 0:
            return None
        logger.info("[%s] request budget exhausted; retry in %.1fs", self.budget_key, wait)
        return httpx.Response(
            429,
            headers={"Retry-After": str(math.ceil(wait)), BUDGET_HEADER: "exhausted"},
            request=request,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, retrying as the policy allows."""
        await request.aread()  # a re-sendable body
        retryable_method = request.method.upper() in self.policy.methods
        attempts = self.policy.attempts if retryable_method else 1
        for attempt in range(attempts):
            refused = await self._spend(request)
            if refused is not None:
                return refused
            last = attempt == attempts - 1
            try:
                response = await self.inner.handle_async_request(request)
            except (httpx.TimeoutException, httpx.NetworkError) as exc:
                if last:
                    raise
                delay = self.policy.backoff(attempt, self._rng)
                logger.info(
                    "[%s] %s %s failed (%s); retry %d in %.2fs",
                    self.budget_key,
                    request.method,
                    request.url.path,
                    type(exc).__name__,
                    attempt + 1,
                    delay,
                )
                await self._sleep(delay)
                continue
            if last or response.status_code not in self.policy.statuses:
                return response
            asked = server_delay(response)
            if asked is not None and asked > self.policy.max_retry_after:
                return response
            delay = asked if asked is not None else self.policy.backoff(attempt, self._rng)
            await response.aclose()
            logger.info(
                "[%s] %s %s -> %d; retry %d in %.2fs",
                self.budget_key,
                request.method,
                request.url.path,
                response.status_code,
                attempt + 1,
                delay,
            )
            await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt always returns or raises")

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self.inner.aclose()


__all__ = ["BUDGET_HEADER", "RetryPolicy", "RetryTransport", "server_delay"]
