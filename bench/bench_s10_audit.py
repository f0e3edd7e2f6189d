"""Benchmark S10: audited writes and audit chain verification (performance.md).

Result lines:

* ``s10_audited_write``: renames of a provider connection per second through the unit of work
  (load, change ``alias``, update, commit) with its ``connection.rename`` audit record appended
  in the same transaction (head lookup, advisory lock on PostgreSQL, HMAC seal, insert);
  ceiling: the same rename with audit off. Sequential writer, rounds alternate (best of each).
  Target ratio >= 0.85.
* ``s10_verify``: MB/s of ``verify_audit_trail`` (stream ``audit_events`` in ``seq`` order,
  recompute every record's HMAC, check the links) over the canonical bytes of every record;
  ceiling: raw HMAC-SHA256 over the same bytes in memory. Target ratio >= 0.50. The in-memory
  part alone (records already loaded) is reported as ``in_memory_mb_s``.

Database: PostgreSQL (a throwaway database created through ``--postgres-url`` or
``DASHTAM_TEST_POSTGRES_URL`` and dropped at the end), otherwise a temporary SQLite file.

Usage: ``.venv/bin/python bench/bench_s10_audit.py [--quick] [--postgres-url URL]``
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime
from uuid import UUID

from _common import database, emit, parser
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.security.audit_chain import canonical_bytes, chain, verify
from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.adapters.sqlalchemy.migrate import upgrade
from dashtam_core.adapters.sqlalchemy.tables import audit_events
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWorkFactory
from dashtam_core.application.audit import Origin, audit, verify_audit_trail
from dashtam_core.domain.audit import AuditOutcome, AuditRecord
from dashtam_core.domain.connection import ConnectionStatus, ProviderConnection
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import Role, User
from dashtam_core.ports.audit import SequencedAuditRecord


async def seed(factory: SqlAlchemyUnitOfWorkFactory) -> tuple[UUID, UUID]:
    """One user with one active connection; returns ``(user_id, connection_id)``."""
    now = datetime.now(UTC)
    async with factory() as uow:
        user = User(
            id=uuid7(),
            email="s10@bench.example.com",
            password_hash="$argon2id$unused",
            created_at=now,
            email_verified=True,
            roles=[Role.USER],
        )
        (await uow.users.add(user)).unwrap()
        connection = ProviderConnection(uuid7(), user.id, "chase", ConnectionStatus.ACTIVE, now)
        await uow.connections.add(connection)
        await uow.commit()
    return user.id, connection.id


async def writes(
    factory: SqlAlchemyUnitOfWorkFactory, user_id: UUID, connection_id: UUID, key: bytes, n: int
) -> tuple[float, float]:
    """Best renames/s with audit off and on (alternating rounds); returns ``(off, on)``."""
    origin = Origin(user_id, "127.0.0.1", "dashtam-bench/1.0")
    counter = 0

    async def rename(audited: bool) -> None:
        nonlocal counter
        counter += 1
        alias = f"Checking {counter}"
        async with factory() as uow:
            found = await uow.connections.get_for_user(connection_id, user_id)
            if found is None:
                raise RuntimeError("the benchmark connection vanished")
            found.alias = alias
            await uow.connections.update(found)
            if audited:
                await audit(
                    uow.connection,
                    key,
                    origin,
                    "connection.rename",
                    object_type="connection",
                    object_id=connection_id,
                    details={"alias": alias},
                )
            await uow.commit()

    async def rate(audited: bool, count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            await rename(audited)
        return count / (time.perf_counter() - started)

    await rate(False, max(20, n // 10))  # warm the pool and the statement caches
    await rate(True, max(20, n // 10))
    off = on = 0.0
    for _ in range(3):
        off = max(off, await rate(False, n))
        on = max(on, await rate(True, n))
    return off, on


async def fill(engine: AsyncEngine, key: bytes, total: int) -> None:
    """Append sealed records after the current head until the chain holds ``total``."""
    c = audit_events.c
    async with engine.begin() as conn:
        head = (await conn.execute(select(c.seq, c.mac).order_by(c.seq.desc()).limit(1))).first()
        seq, mac = (int(head.seq), str(head.mac)) if head is not None else (0, "")
        if seq >= total:
            return
        now = datetime.now(UTC)
        records = [
            AuditRecord(
                id=uuid7(),
                occurred_at=now,
                actor_id=None,
                action="session.login",
                outcome=AuditOutcome.SUCCESS if i % 4 else AuditOutcome.FAILURE,
                object_type="session",
                object_id=str(uuid7()),
                ip="203.0.113.7",
                user_agent="Mozilla/5.0 (X11; Linux x86_64) dashtam-bench",
                details={"mfa": "false", "n": str(i)},
            )
            for i in range(total - seq)
        ]
        sealed = chain(records, key, prev_mac=mac)
        rows = [
            {
                "id": r.id,
                "seq": seq + 1 + i,
                "occurred_at": r.occurred_at,
                "actor_id": r.actor_id,
                "action": r.action,
                "outcome": str(r.outcome),
                "object_type": r.object_type,
                "object_id": r.object_id,
                "ip": r.ip,
                "user_agent": r.user_agent,
                "details": r.details,
                "prev_mac": r.prev_mac,
                "mac": r.mac,
            }
            for i, r in enumerate(sealed)
        ]
        for start in range(0, len(rows), 5000):
            await conn.execute(insert(audit_events), rows[start : start + 5000])


async def verification(engine: AsyncEngine, key: bytes) -> tuple[float, float, float, int, int]:
    """``(verify_audit_trail MB/s, in-memory verify MB/s, raw HMAC MB/s, records, bytes)``."""
    from dashtam_core.adapters.security.audit_chain import iter_audit_table

    loaded: list[SequencedAuditRecord] = []
    async with engine.connect() as conn:
        async for item in iter_audit_table(conn):
            loaded.append(item)
    payloads = [canonical_bytes(item.record) for item in loaded]
    size = sum(len(p) for p in payloads)
    trail = memory = raw = 0.0
    for _ in range(3):
        started = time.perf_counter()
        result = await verify_audit_trail(engine, key)
        trail = max(trail, size / (time.perf_counter() - started) / 1e6)
        if not result.valid or result.checked != len(loaded):
            raise RuntimeError(f"the audit chain does not verify: {result}")
        started = time.perf_counter()
        if not verify(loaded, key).valid:
            raise RuntimeError("the loaded audit chain does not verify")
        memory = max(memory, size / (time.perf_counter() - started) / 1e6)
        started = time.perf_counter()
        for payload in payloads:
            hmac.new(key, payload, hashlib.sha256).digest()
        raw = max(raw, size / (time.perf_counter() - started) / 1e6)
    return trail, memory, raw, len(loaded), size


async def main() -> None:
    """Run S10."""
    args = parser(__doc__).parse_args()
    n = 60 if args.quick else 1000
    records = 2000 if args.quick else 50_000
    key = secrets.token_bytes(32)
    async with database(args.postgres_url) as (url, kind):
        await upgrade(url)
        engine = create_engine(url)
        try:
            factory = SqlAlchemyUnitOfWorkFactory(engine)
            user_id, connection_id = await seed(factory)
            off, on = await writes(factory, user_id, connection_id, key, n)
            emit(
                "s10_audited_write",
                on,
                "writes/s",
                off,
                ">= 0.85",
                kind,
                writes_per_round=n,
                rounds=3,
            )
            await fill(engine, key, records)
            trail, memory, raw, count, size = await verification(engine, key)
            emit(
                "s10_verify",
                trail,
                "MB/s",
                raw,
                ">= 0.50",
                kind,
                records=count,
                bytes=size,
                in_memory_mb_s=round(memory, 3),
            )
        finally:
            await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
