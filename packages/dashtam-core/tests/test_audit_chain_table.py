"""Audit chain verification over the audit_events table (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dashtam_core.adapters.security.audit_chain import AuditChainer, verify_audit_table
from dashtam_core.adapters.sqlalchemy.tables import audit_events
from dashtam_core.domain.audit import AuditOutcome, AuditRecord

KEY = b"a" * 32
T0 = datetime(2026, 2, 1, 9, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
async def audit_db(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An empty SQLite or PostgreSQL database (``database_url``) with only the audit table."""
    eng = create_async_engine(database_url)
    async with eng.begin() as conn:
        await conn.run_sync(lambda c: audit_events.create(c))
    try:
        yield eng
    finally:
        await eng.dispose()


async def _write(engine: AsyncEngine, n: int) -> list[AuditRecord]:
    chainer = AuditChainer(KEY)
    sealed = []
    async with engine.begin() as conn:
        for i in range(n):
            record = chainer.seal(
                AuditRecord(
                    id=uuid.uuid4(),
                    occurred_at=T0 + timedelta(seconds=i),
                    actor_id=uuid.uuid4() if i % 2 else None,
                    action="connection.renamed",
                    outcome=AuditOutcome.SUCCESS,
                    object_type="connection",
                    object_id=f"c{i}",
                    ip="192.0.2.1",
                    user_agent="ua",
                    details={"alias": f"a{i}"},
                )
            )
            sealed.append(record)
            await conn.execute(
                insert(audit_events).values(
                    id=record.id,
                    seq=i + 1,
                    occurred_at=record.occurred_at,
                    actor_id=record.actor_id,
                    action=record.action,
                    outcome=record.outcome.value,
                    object_type=record.object_type,
                    object_id=record.object_id,
                    ip=record.ip,
                    user_agent=record.user_agent,
                    details=record.details,
                    prev_mac=record.prev_mac,
                    mac=record.mac,
                )
            )
    return sealed


async def test_valid_chain_round_trips_through_the_database(audit_db: AsyncEngine) -> None:
    await _write(audit_db, 10)
    async with audit_db.connect() as conn:
        result = await verify_audit_table(conn, KEY, batch_size=3)
    assert result.as_dict() == {"valid": True, "checked": 10, "first_bad_id": None}


async def test_empty_table_is_valid(audit_db: AsyncEngine) -> None:
    async with audit_db.connect() as conn:
        result = await verify_audit_table(conn, KEY)
    assert (result.valid, result.checked) == (True, 0)


async def test_edit_in_database_detected(audit_db: AsyncEngine) -> None:
    sealed = await _write(audit_db, 8)
    async with audit_db.begin() as conn:
        await conn.execute(
            update(audit_events).where(audit_events.c.seq == 5).values(outcome="failure")
        )
    async with audit_db.connect() as conn:
        result = await verify_audit_table(conn, KEY, batch_size=3)
    assert (result.valid, result.first_bad_id, result.checked) == (False, sealed[4].id, 5)


async def test_deletion_in_database_detected(audit_db: AsyncEngine) -> None:
    sealed = await _write(audit_db, 8)
    async with audit_db.begin() as conn:
        await conn.execute(delete(audit_events).where(audit_events.c.seq == 3))
    async with audit_db.connect() as conn:
        result = await verify_audit_table(conn, KEY, batch_size=2)
    assert (result.valid, result.first_bad_id) == (False, sealed[3].id)


async def test_reordering_in_database_detected(audit_db: AsyncEngine) -> None:
    sealed = await _write(audit_db, 6)
    async with audit_db.begin() as conn:
        await conn.execute(update(audit_events).where(audit_events.c.seq == 2).values(seq=100))
        await conn.execute(update(audit_events).where(audit_events.c.seq == 3).values(seq=2))
        await conn.execute(update(audit_events).where(audit_events.c.seq == 100).values(seq=3))
    async with audit_db.connect() as conn:
        result = await verify_audit_table(conn, KEY)
    assert (result.valid, result.first_bad_id) == (False, sealed[2].id)
