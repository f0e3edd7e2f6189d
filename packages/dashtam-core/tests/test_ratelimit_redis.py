"""The Redis Lua GCRA limiter on a real Redis (DASHTAM_TEST_REDIS_URL), and Redis-down behaviour."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from dashtam_core.adapters.redis.rate_limiter import RedisRateLimiter
from dashtam_core.ports.rate_limit import RateLimitKind, RateLimitRule, RateLimitScope
from dashtam_core.registries.rate_limits import DEFAULT_RULES

REDIS_URL = os.environ.get("DASHTAM_TEST_REDIS_URL")


@pytest.fixture
async def limiter() -> AsyncIterator[RedisRateLimiter]:
    if not REDIS_URL:
        if os.environ.get("DASHTAM_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail("DASHTAM_TEST_REDIS_URL is required (DASHTAM_TEST_REQUIRE_SERVICES=1)")
        pytest.skip("DASHTAM_TEST_REDIS_URL is not set")
    prefix = f"dashtam-test:{uuid.uuid4().hex}:"
    lim = RedisRateLimiter.from_url(REDIS_URL, prefix=prefix)
    yield lim
    client = lim._client
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await lim.aclose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_burst_remaining_and_refusal(limiter: RedisRateLimiter) -> None:
    rule = DEFAULT_RULES["login_ip"]
    decisions = [await limiter.hit("1.2.3.4", rule) for _ in range(12)]
    assert [d.allowed for d in decisions] == [True] * 10 + [False] * 2
    assert [d.remaining for d in decisions[:10]] == list(range(9, -1, -1))
    assert 5.0 < decisions[10].retry_after <= 6.0
    assert 59.0 < decisions[10].reset_after <= 60.0
    assert (await limiter.hit("5.6.7.8", rule)).allowed
    assert limiter.degraded_hits == 0


async def test_refills_over_time(limiter: RedisRateLimiter) -> None:
    rule = RateLimitRule("fast", 5, 1.0, RateLimitScope.IP)  # one token per 200 ms
    assert sum([(await limiter.hit("k", rule)).allowed for _ in range(8)]) == 5
    start = time.monotonic()
    await asyncio.sleep(0.45)
    allowed = sum([(await limiter.hit("k", rule)).allowed for _ in range(5)])
    elapsed = time.monotonic() - start
    assert allowed >= 2
    assert allowed <= int(elapsed / 0.2) + 1


async def test_key_expires_when_bucket_full(limiter: RedisRateLimiter) -> None:
    rule = RateLimitRule("short", 2, 0.3, RateLimitScope.IP)
    await limiter.hit("k", rule)
    ttl = await limiter._client.pttl(f"{limiter._prefix}short|k")
    assert 0 < ttl <= 200


async def test_fifty_concurrent_clients_exact_count(limiter: RedisRateLimiter) -> None:
    assert REDIS_URL
    rule = RateLimitRule("burst", 100, 3600, RateLimitScope.USER)
    clients = [RedisRateLimiter.from_url(REDIS_URL, prefix=limiter._prefix) for _ in range(50)]

    async def worker(lim: RedisRateLimiter) -> int:
        allowed = 0
        for _ in range(6):  # 300 hits offered for a quota of 100
            allowed += (await lim.hit("shared", rule)).allowed
        return allowed

    try:
        counts = await asyncio.gather(*(worker(c) for c in clients))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    assert sum(counts) == 100


async def test_script_reloaded_when_unknown(limiter: RedisRateLimiter) -> None:
    limiter._sha = "0" * 40  # as after SCRIPT FLUSH or a Redis restart
    assert (await limiter.hit("k", DEFAULT_RULES["read_user"])).allowed
    assert limiter._sha != "0" * 40


async def test_unlimited_rule_needs_no_redis(limiter: RedisRateLimiter) -> None:
    assert (await limiter.hit("k", DEFAULT_RULES["none"])).allowed


async def test_redis_down_security_falls_back_capacity_fails_open() -> None:
    lim = RedisRateLimiter.from_url(f"redis://127.0.0.1:{_closed_port()}/0")
    try:
        security = DEFAULT_RULES["login_ip"]
        assert security.kind is RateLimitKind.SECURITY
        results = [(await lim.hit("ip", security)).allowed for _ in range(15)]
        assert results == [True] * 10 + [False] * 5
        capacity = RateLimitRule("cap", 2, 60, RateLimitScope.USER, RateLimitKind.CAPACITY)
        assert all([(await lim.hit("u", capacity)).allowed for _ in range(10)])
        assert not lim.healthy
        assert lim.degraded_hits == 25
    finally:
        await lim.aclose()
