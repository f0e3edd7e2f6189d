"""Benchmark S10 (audited writes, audit chain verification); S9 is ``bench_s9_ratelimit.py``.

S10 — audit trail:

* ``s10_audited_write``: renames of a connection per second with the audit record written in the
  same transaction; ceiling: the same rename with audit off; target >= 0.85;
* ``s10_verify``: MB/s of ``verify_audit_trail`` (canonical bytes of every record); ceiling: raw
  HMAC-SHA256 over the same bytes in memory; target >= 0.50.

Database: SQLite in a temporary directory, or PostgreSQL with ``--postgres URL`` (or
``DASHTAM_TEST_POSTGRES_URL``; a throwaway database is created and dropped). One JSON line per
case. ``--quick`` shrinks every workload so CI proves the benchmark works in seconds.

Usage: ``.venv/bin/python bench/bench_s9_s10.py [--quick] [--postgres URL]``
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

from sqlalchemy import insert, update

from dashtam_core.adapters.security.audit_chain import canonical_bytes, iter_audit_table
from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.adapters.sqlalchemy.migrate import upgrade
from dashtam_core.adapters.sqlalchemy.tables import provider_connections, users
from dashtam_core.application.audit import Origin, audit, verify_audit_trail
from dashtam_core.domain.ids import uuid7

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
    parser.add_argument("--postgres", default=os.environ.get("DASHTAM_TEST_POSTGRES_URL"))
    args = parser.parse_args()
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
