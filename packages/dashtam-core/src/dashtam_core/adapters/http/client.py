"""``build_provider_client``: the httpx client API providers are given.

Timeouts (connect/read), retries with backoff and jitter, an optional request budget and
log lines that carry ``METHOD /path -> status`` only, all in one place::

    client = build_provider_client("alpaca", budget=TokenBucketBudget(rate=3, burst=10))
    provider = spec.factory(settings, client)
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping

import httpx

from dashtam_core.adapters.http.budget import RequestBudget
from dashtam_core.adapters.http.redaction import logging_event_hooks
from dashtam_core.adapters.http.retry import RetryPolicy, RetryTransport, Sleep

logger = logging.getLogger("dashtam_core.http")

DEFAULT_USER_AGENT = "dashtam/0.1 (+https://github.com/dashtam)"


def build_provider_client(
    slug: str,
    *,
    connect_timeout: float = 10.0,
    read_timeout: float = 30.0,
    retries: int | RetryPolicy = 3,
    budget: RequestBudget | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    headers: Mapping[str, str] | None = None,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
    log: logging.Logger | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for provider ``slug``.

    Args:
        slug: the provider slug (budget key and log prefix).
        connect_timeout: seconds to establish a connection.
        read_timeout: seconds to wait for data (also used for write and pool).
        retries: attempts in all (an ``int``) or a full :class:`RetryPolicy`.
        budget: optional per-provider request budget.
        transport: the inner transport (default: real HTTP); tests pass ``httpx.MockTransport``.
        headers: default headers (a ``User-Agent`` is added when missing).
        sleep: async sleep used between retries (tests pass a recorder).
        rng: jitter source.
        log: logger for the request/response lines (default ``dashtam_core.http``).

    Returns:
        A client the caller owns and must close (``async with`` or ``aclose()``).
    """
    policy = retries if isinstance(retries, RetryPolicy) else RetryPolicy(attempts=max(1, retries))
    wrapped = RetryTransport(
        transport, policy=policy, budget=budget, budget_key=slug, sleep=sleep, rng=rng
    )
    timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
    merged = {"User-Agent": DEFAULT_USER_AGENT, **dict(headers or {})}
    return httpx.AsyncClient(
        transport=wrapped,
        timeout=timeout,
        headers=merged,
        event_hooks=logging_event_hooks(log or logger, slug=slug),
        follow_redirects=False,
    )


__all__ = ["DEFAULT_USER_AGENT", "build_provider_client"]
