"""RetryTransport and build_provider_client, driven through httpx.MockTransport."""

from __future__ import annotations

import random

import httpx
import pytest

from dashtam_core.adapters.http import (
    RetryPolicy,
    TokenBucketBudget,
    build_provider_client,
    map_http_error,
    map_transport_error,
)
from dashtam_core.errors import ProviderUnavailable, RateLimited


class Sleeps:
    """Records the delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def scripted(
    *responses: int | tuple[int, dict[str, str]] | type[Exception],
) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport answering each request with the next scripted status (or exception)."""
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, type):
            raise item("scripted failure", request=request)  # type: ignore[call-arg]
        status, headers = item if isinstance(item, tuple) else (item, {})
        return httpx.Response(status, headers=headers, json={"ok": status})

    return httpx.MockTransport(handler), seen


async def test_retries_5xx_then_succeeds_with_jittered_backoff() -> None:
    transport, seen = scripted(503, 502, 200)
    sleeps = Sleeps()
    policy = RetryPolicy(attempts=4, base_delay=1.0, max_delay=10.0)
    async with build_provider_client(
        "acme", transport=transport, retries=policy, sleep=sleeps, rng=random.Random(7)
    ) as client:
        response = await client.get("https://api.test/v1/accounts")
    assert response.status_code == 200
    assert len(seen) == 3
    assert len(sleeps.delays) == 2
    assert 0 <= sleeps.delays[0] <= 1.0  # full jitter under base * 2**0
    assert 0 <= sleeps.delays[1] <= 2.0  # under base * 2**1


async def test_gives_up_after_attempts_and_returns_last_response() -> None:
    transport, seen = scripted(500)
    sleeps = Sleeps()
    async with build_provider_client(
        "acme", transport=transport, retries=3, sleep=sleeps
    ) as client:
        response = await client.get("https://api.test/v1/accounts")
    assert len(seen) == 3
    assert len(sleeps.delays) == 2
    error = map_http_error(response)
    assert isinstance(error, ProviderUnavailable)
    assert "500" in str(error)


async def test_retry_after_is_honoured() -> None:
    transport, seen = scripted((429, {"Retry-After": "4"}), 200)
    sleeps = Sleeps()
    async with build_provider_client("acme", transport=transport, sleep=sleeps) as client:
        response = await client.get("https://api.test/v1/positions")
    assert response.status_code == 200
    assert sleeps.delays == [4.0]
    assert len(seen) == 2


async def test_rate_limit_reset_header_is_honoured() -> None:
    transport, _ = scripted((429, {"X-RateLimit-Reset": "2"}), 200)
    sleeps = Sleeps()
    async with build_provider_client("acme", transport=transport, sleep=sleeps) as client:
        await client.get("https://api.test/v1/positions")
    assert sleeps.delays == [2.0]


async def test_long_retry_after_is_returned_not_waited() -> None:
    transport, seen = scripted((429, {"Retry-After": "3600"}), 200)
    sleeps = Sleeps()
    async with build_provider_client("acme", transport=transport, sleep=sleeps) as client:
        response = await client.get("https://api.test/v1/positions")
    assert len(seen) == 1
    assert sleeps.delays == []
    error = map_http_error(response)
    assert isinstance(error, RateLimited)
    assert error.retry_after == pytest.approx(3600)


async def test_timeouts_are_retried_then_raised() -> None:
    transport, seen = scripted(httpx.ReadTimeout)
    sleeps = Sleeps()
    async with build_provider_client(
        "acme", transport=transport, retries=2, sleep=sleeps
    ) as client:
        with pytest.raises(httpx.ReadTimeout) as info:
            await client.get("https://api.test/v1/accounts")
    assert len(seen) == 2
    assert isinstance(map_transport_error(info.value), ProviderUnavailable)


async def test_timeout_then_success() -> None:
    transport, seen = scripted(httpx.ConnectTimeout, 200)
    async with build_provider_client("acme", transport=transport, sleep=Sleeps()) as client:
        response = await client.get("https://api.test/v1/accounts")
    assert response.status_code == 200
    assert len(seen) == 2


async def test_post_is_not_retried() -> None:
    transport, seen = scripted(503, 200)
    sleeps = Sleeps()
    async with build_provider_client("acme", transport=transport, sleep=sleeps) as client:
        response = await client.post("https://api.test/oauth/token", data={"grant_type": "x"})
    assert response.status_code == 503
    assert len(seen) == 1


async def test_4xx_other_than_429_is_not_retried() -> None:
    transport, seen = scripted(401, 200)
    async with build_provider_client("acme", transport=transport, sleep=Sleeps()) as client:
        response = await client.get("https://api.test/v1/accounts")
    assert response.status_code == 401
    assert len(seen) == 1


async def test_budget_refusal_becomes_rate_limited_without_a_request() -> None:
    now = [0.0]
    budget = TokenBucketBudget(rate=0.5, burst=2, clock=lambda: now[0])
    transport, seen = scripted(200)
    async with build_provider_client(
        "acme", transport=transport, budget=budget, sleep=Sleeps()
    ) as client:
        assert (await client.get("https://api.test/a")).status_code == 200
        assert (await client.get("https://api.test/b")).status_code == 200
        refused = await client.get("https://api.test/c")
        assert len(seen) == 2
        error = map_http_error(refused)
        assert isinstance(error, RateLimited)
        assert error.retry_after == pytest.approx(2.0)
        now[0] = 2.0
        assert (await client.get("https://api.test/d")).status_code == 200
    assert len(seen) == 3


async def test_client_sets_timeouts_and_user_agent() -> None:
    transport, seen = scripted(200)
    async with build_provider_client(
        "acme", transport=transport, connect_timeout=3, read_timeout=12
    ) as client:
        assert client.timeout.connect == 3
        assert client.timeout.read == 12
        await client.get("https://api.test/x")
    assert seen[0].headers["User-Agent"].startswith("dashtam/")


def test_policy_rejects_zero_attempts() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
