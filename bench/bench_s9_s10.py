"""Benchmarks S9 (rate limiter) and S10 (audited writes, audit chain verification).

S9 — rate limiter on 10k hot keys, 50 concurrent clients:

* ``s9_redis``: checks/s of :class:`RedisRateLimiter` (one ``EVALSHA`` per check) from 50
  concurrent tasks over 10k keys; ceiling: ``SET`` through the same client, same concurrency;
  target ratio >= 0.65 (needs ``DASHTAM_TEST_REDIS_URL`` or ``--redis``);
* ``s9_accuracy_redis`` / ``s9_accuracy_memory``: at 3x offered load (300 hits on each of 200 keys
  for a 100-hit quota) the allowed count, as a fraction of the exact quota (target 1 +- 1%);
* ``s9_memory``: in-process limiter hot-path checks/s (target >= 1M/s, no ceiling).

S10 — audit trail:

* ``s10_audited_write``: renames of a connection per second with the audit record written in the
  same transaction; ceiling: the same rename with audit off; target >= 0.85;
* ``s10_verify``: MB/s of ``verify_audit_trail`` (canonical bytes of every record); ceiling: raw
  HMAC-SHA256 over the same bytes in memory; target >= 0.50.

Database: SQLite in a temporary directory, or PostgreSQL with ``--postgres URL`` (or
``DASHTAM_TEST_POSTGRES_URL``; a throwaway database is created and dropped). One JSON line per
case. ``--quick`` shrinks every workload so CI proves the benchmark works in seconds.

Usage: ``.venv/bin/python bench/bench_s9_s10.py [--quick] [--redis URL] [--postgres URL]``
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import platform
import secrets
import tempfile
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, update

from dashtam_core.adapters.memory.rate_limiter import InMemoryRateLimiter
from dashtam_core.adapters.security.audit_chain import canonical_bytes, iter_audit_table
from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.adapters.sqlalchemy.migrate import upgrade
from dashtam_core.adapters.sqlalchemy.tables import provider_connections, users
from dashtam_core.application.audit import Origin, audit, verify_audit_trail
from dashtam_core.domain.ids import uuid7
from dashtam_core.ports.rate_limit import RateLimitKind, RateLimitRule, RateLimitScope

PYTHON = platform.python_version()


def emit(
    scenario: str, value: float, unit: str, ceiling: float | None, target: str, db: str
) -> None:
    """Print one result line."""
    ratio = round(value / ceiling, 3) if ceiling else None
    row = {
        "scenario": scenario,
        "value": round(value, 3),
        "unit": unit,
        "ceiling": round(ceiling, 3) if ceiling else None,
        "ratio": ratio,
        "target": target,
        "python": PYTHON,
        "db": db,
    }
    print(json.dumps(row), flush=True)


async def _concurrently(clients: int, per_client: int, work: Any) -> float:
    async def client(n: int) -> None:
        for i in range(per_client):
            await work(n, i)

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    return clients * per_client / (time.perf_counter() - started)


async def bench_s9(redis_url: str | None, quick: bool) -> None:
    keys = 10_000
    clients = 50
    per_client = 200 if quick else 2_000
    hot = RateLimitRule("bench_hot", 1_000_000, 60.0, RateLimitScope.USER, RateLimitKind.CAPACITY)
    quota = RateLimitRule("bench_quota", 100, 3600.0, RateLimitScope.USER, RateLimitKind.SECURITY)
    memory = InMemoryRateLimiter()
    n = 200_000 if quick else 2_000_000
    names = [f"user:{i}" for i in range(keys)]
    started = time.perf_counter()
    allow = memory.allow
    for i in range(n):
        allow(names[i % keys], hot)
    emit("s9_memory", n / (time.perf_counter() - started), "checks/s", None, ">= 1000000", "-")
    emit(
        "s9_accuracy_memory",
        await _accuracy(memory, quota),
        "allowed/quota",
        None,
        "1 +- 0.01",
        "-",
    )
    if not redis_url:
        return
    from redis.asyncio import Redis

    from dashtam_core.adapters.redis.rate_limiter import RedisRateLimiter

    client = Redis.from_url(redis_url)
    prefix = f"bench:{secrets.token_hex(4)}:"
    limiter = RedisRateLimiter(client, prefix=prefix)
    try:

        async def check(c: int, i: int) -> None:
            await limiter.hit(names[(c * per_client + i) % keys], hot)

        async def set_only(c: int, i: int) -> None:
            await client.set(
                f"{prefix}ceiling:{names[(c * per_client + i) % keys]}", "1", px=60_000
            )

        await limiter.hit("warmup", hot)
        value = await _concurrently(clients, per_client, check)
        ceiling = await _concurrently(clients, per_client, set_only)
        emit("s9_redis", value, "checks/s", ceiling, ">= 0.65", "redis")
        emit(
            "s9_accuracy_redis",
            await _accuracy(limiter, quota),
            "allowed/quota",
            None,
            "1 +- 0.01",
            "redis",
        )
    finally:
        await client.aclose()


async def _accuracy(limiter: Any, rule: RateLimitRule) -> float:
    keys = [f"acc:{secrets.token_hex(4)}:{i}" for i in range(200)]
    allowed = 0

    async def offer(key: str) -> int:
        count = 0
        for _ in range(3 * rule.limit):
            if (await limiter.hit(key, rule)).allowed:
                count += 1
        return count

    for start in range(0, len(keys), 50):
        allowed += sum(await asyncio.gather(*(offer(k) for k in keys[start : start + 50])))
    return allowed / (rule.limit * len(keys))


async def bench_s10(url: str, db: str, quick: bool) -> None:
    await upgrade(url)
    engine = create_engine(url)
    key = secrets.token_bytes(32)
    user_id, connection_id = uuid7(), uuid7()
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            insert(users).values(
                id=user_id,
                email="bench@example.com",
                password_hash="x",
                created_at=now,
                email_verified=True,
                roles=["user"],
                is_locked=False,
                failed_login_count=0,
                mfa_enabled=False,
            )
        )
        await conn.execute(
            insert(provider_connections).values(
                id=connection_id,
                user_id=user_id,
                provider="bench",
                status="active",
                created_at=now,
            )
        )
    origin = Origin(user_id, "127.0.0.1", "bench/1.0")
    writes = 300 if quick else 3_000
    pc = provider_connections.c

    async def rename(i: int, audited: bool) -> None:
        async with engine.begin() as conn:
            await conn.execute(
                update(provider_connections).where(pc.id == connection_id).values(alias=f"a{i}")
            )
            if audited:
                await audit(
                    conn,
                    key,
                    origin,
                    "connection.rename",
                    object_type="connection",
                    object_id=connection_id,
                    details={"alias": f"a{i}"},
                )

    async def run(audited: bool) -> float:
        started = time.perf_counter()
        for i in range(writes):
            await rename(i, audited)
        return writes / (time.perf_counter() - started)

    await run(False)  # warm up
    plain = await run(False)
    audited = await run(True)
    emit("s10_audited_write", audited, "writes/s", plain, ">= 0.85", db)
    extra = (2_000 if quick else 50_000) - writes
    async with engine.begin() as conn:
        for i in range(extra):
            await audit(conn, key, origin, "bench.fill", object_type="x", object_id=i)
    started = time.perf_counter()
    result = await verify_audit_trail(engine, key)
    elapsed = time.perf_counter() - started
    assert result.valid, result
    records = []
    async with engine.connect() as conn:
        async for item in iter_audit_table(conn):
            records.append(canonical_bytes(item.record))
    total = sum(len(r) for r in records)
    started = time.perf_counter()
    for data in records:
        hmac.new(key, data, hashlib.sha256).hexdigest()
    raw = time.perf_counter() - started
    emit("s10_verify", total / elapsed / 1e6, "MB/s", total / raw / 1e6, ">= 0.50", db)
    await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small workloads (CI)")
    parser.add_argument("--redis", default=os.environ.get("DASHTAM_TEST_REDIS_URL"))
    parser.add_argument("--postgres", default=os.environ.get("DASHTAM_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    await bench_s9(args.redis, args.quick)
    async with AsyncExitStack() as stack:
        if args.postgres:
            from dashtam_core.testing.databases import make_postgres_database

            url = await stack.enter_async_context(make_postgres_database(args.postgres))
            db = "postgresql"
        else:
            directory = stack.enter_context(tempfile.TemporaryDirectory())
            url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
            db = "sqlite"
        await bench_s10(url, db, args.quick)


if __name__ == "__main__":
    asyncio.run(main())
