"""Benchmark S9: the rate limiter on 10k hot keys with 50 concurrent clients (performance.md).

Result lines:

* ``s9_redis_checks``: checks/s of :class:`RedisRateLimiter` (one ``EVALSHA`` of the GCRA script
  per check) from 50 concurrent tasks cycling over 10k keys; ceiling: a plain ``SET ... PX``
  of the same keys through the same client at the same concurrency. Target ratio >= 0.65.
* ``s9_redis_accuracy``: at 3x offered load (300 hits per key for a 100-per-hour quota, the
  hits of one key spread over the 50 concurrent clients) the allowed count over the exact quota.
  Target 1.00 +- 0.01 (the refill one key earns during the run is reported as ``refill_per_key``).
* ``s9_memory_checks``: checks/s of the in-process limiter's hot path (``allow``) over 10k keys;
  ceiling: a bare ``dict`` read-modify-write of the same keys. Target >= 1M checks/s (value).
* ``s9_memory_accuracy``: the accuracy case on the in-process limiter.

The Redis lines need ``--redis-url`` or ``DASHTAM_TEST_REDIS_URL``; without it only the
in-process lines are printed (``skipped: ...`` on stderr). Keys live under a random prefix and
are deleted at the end.

Usage: ``.venv/bin/python bench/bench_s9_ratelimit.py [--quick] [--seconds S] [--redis-url URL]``
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from _common import closed_loop, emit, parser, skip

from dashtam_core.adapters.memory.rate_limiter import InMemoryRateLimiter
from dashtam_core.ports.rate_limit import RateLimiter, RateLimitKind, RateLimitRule, RateLimitScope

KEYS = 10_000
CLIENTS = 50
HOT = RateLimitRule("bench_hot", 1_000_000_000, 60.0, RateLimitScope.USER, RateLimitKind.CAPACITY)
QUOTA = RateLimitRule("bench_quota", 100, 3600.0, RateLimitScope.USER, RateLimitKind.SECURITY)
OFFERED = 3


def memory_checks(quick: bool) -> None:
    """In-process hot path vs a bare dict update over the same 10k keys."""
    names = [f"user:{i}" for i in range(KEYS)]
    n = 300_000 if quick else 3_000_000
    limiter = InMemoryRateLimiter()
    allow = limiter.allow
    for name in names:  # warm: every key present, as in a steady state
        allow(name, HOT)
    best = 0.0
    ceiling = 0.0
    for _ in range(1 if quick else 3):
        table: dict[str, float] = {}
        get = table.get
        started = time.perf_counter()
        for i in range(n):
            key = names[i % KEYS]
            table[key] = get(key, 0.0) + 1.0
        ceiling = max(ceiling, n / (time.perf_counter() - started))
        started = time.perf_counter()
        for i in range(n):
            allow(names[i % KEYS], HOT)
        best = max(best, n / (time.perf_counter() - started))
    emit(
        "s9_memory_checks",
        best,
        "checks/s",
        ceiling,
        ">= 1000000 checks/s (value)",
        "-",
        keys=KEYS,
        checks=n,
        ceiling_kind="dict read-modify-write of the same keys",
    )


async def accuracy(limiter: RateLimiter, keys: int, prefix: str) -> tuple[int, float]:
    """Offer ``OFFERED`` x the quota on each of ``keys`` keys from ``CLIENTS`` tasks.

    Hit ``j`` of key ``k`` goes to client ``(k + j) % CLIENTS``, so every key is hit by many
    clients at once. Returns ``(allowed hits, seconds taken)``.
    """
    names = [f"{prefix}acc:{k}" for k in range(keys)]
    plan: list[list[str]] = [[] for _ in range(CLIENTS)]
    for j in range(OFFERED * QUOTA.limit):
        for k, name in enumerate(names):
            plan[(k + j) % CLIENTS].append(name)

    async def client(hits: list[str]) -> int:
        allowed = 0
        for name in hits:
            if (await limiter.hit(name, QUOTA)).allowed:
                allowed += 1
        return allowed

    started = time.perf_counter()
    allowed = sum(await asyncio.gather(*(client(hits) for hits in plan)))
    return allowed, time.perf_counter() - started


def emit_accuracy(scenario: str, allowed: int, keys: int, elapsed: float, db: str) -> None:
    """Print an accuracy line: allowed hits over the exact quota."""
    exact = QUOTA.limit * keys
    emit(
        scenario,
        float(allowed),
        "allowed hits",
        float(exact),
        "1.00 +- 0.01",
        db,
        keys=keys,
        offered=OFFERED * exact,
        seconds=round(elapsed, 3),
        refill_per_key=round(elapsed * QUOTA.limit / QUOTA.period_seconds, 4),
    )


async def redis_part(url: str, seconds: float, quick: bool) -> None:
    """Redis limiter checks/s vs ``SET`` through the same client, and its accuracy."""
    from redis.asyncio import Redis

    from dashtam_core.adapters.redis.rate_limiter import RedisRateLimiter

    client: Redis[Any] = Redis.from_url(url, max_connections=CLIENTS + 10)
    prefix = f"dashtam:bench:{secrets.token_hex(4)}:"
    limiter = RedisRateLimiter(client, prefix=prefix)
    names = [f"user:{i}" for i in range(KEYS)]
    try:

        async def check(n: int, i: int) -> None:
            if not (await limiter.hit(names[(n * 211 + i) % KEYS], HOT)).allowed:
                raise RuntimeError("the hot rule must allow every check")

        async def set_only(n: int, i: int) -> None:
            await client.set(f"{prefix}set|{names[(n * 211 + i) % KEYS]}", "1", px=60_000)

        await closed_loop(CLIENTS, 0.2, check)  # warm the pool and the script cache
        await closed_loop(CLIENTS, 0.2, set_only)
        value = ceiling = 0.0
        checks = sets = 0
        for _ in range(1 if quick else 3):
            rate, count = await closed_loop(CLIENTS, seconds, set_only)
            if rate > ceiling:
                ceiling, sets = rate, count
            rate, count = await closed_loop(CLIENTS, seconds, check)
            if rate > value:
                value, checks = rate, count
        if limiter.degraded_hits:
            raise RuntimeError(f"Redis failed during the run ({limiter.degraded_hits} hits)")
        emit(
            "s9_redis_checks",
            value,
            "checks/s",
            ceiling,
            ">= 0.65",
            "redis",
            keys=KEYS,
            clients=CLIENTS,
            checks=checks,
            sets=sets,
        )
        keys = 50 if quick else 200
        allowed, elapsed = await accuracy(limiter, keys, "redis:")
        emit_accuracy("s9_redis_accuracy", allowed, keys, elapsed, "redis")
    finally:
        async for batch in _batches(client, prefix):
            await client.delete(*batch)
        await client.aclose()  # type: ignore[attr-defined]


async def _batches(client: Any, prefix: str) -> Any:
    batch: list[bytes] = []
    async for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            yield batch
            batch = []
    if batch:
        yield batch


async def main() -> None:
    """Run S9."""
    args = parser(__doc__, seconds=3.0).parse_args()
    seconds = 0.5 if args.quick else args.seconds
    memory_checks(args.quick)
    keys = 50 if args.quick else 200
    allowed, elapsed = await accuracy(InMemoryRateLimiter(), keys, "memory:")
    emit_accuracy("s9_memory_accuracy", allowed, keys, elapsed, "-")
    if not args.redis_url:
        skip("Redis lines of S9: set DASHTAM_TEST_REDIS_URL or --redis-url")
    await redis_part(args.redis_url, seconds, args.quick)


if __name__ == "__main__":
    asyncio.run(main())
