"""SqlAlchemyAuditLog: concurrent appends stay one valid chain; rollbacks leave no record."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.security.audit_log import SqlAlchemyAuditLog
from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.adapters.sqlalchemy.tables import audit_events
from dashtam_core.domain.audit import AuditOutcome, AuditRecord
from dashtam_core.ports.audit import AuditLog

KEY = b"l" * 32


@pytest.fixture
async def log_db(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An empty SQLite or PostgreSQL database (``database_url``) with only the audit table."""
    eng = create_engine(database_url, pool_size=30)
    async with eng.begin() as conn:
        await conn.run_sync(lambda c: audit_events.create(c))
    try:
        yield eng
    finally:
        await eng.dispose()


def _record(action: str, **details: str) -> AuditRecord:
    return AuditRecord(
        id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        actor_id=uuid.uuid4(),
        action=action,
        outcome=AuditOutcome.SUCCESS,
        object_type="user",
        object_id="u1",
        ip="198.51.100.4",
        user_agent="pytest",
        details=details,
    )


async def test_append_and_verify(log_db: AsyncEngine) -> None:
    async with log_db.begin() as conn:
        log = SqlAlchemyAuditLog(conn, KEY)
        assert isinstance(log, AuditLog)
        first = await log.append_sequenced(_record("user.created"))
        second = await log.append(_record("user.role_changed", roles="admin"))
    assert first.seq == 1
    assert first.record.prev_mac == ""
    assert second.prev_mac == first.record.mac
    async with log_db.connect() as conn:
        log = SqlAlchemyAuditLog(conn, KEY)
        items = [item async for item in log.iter_chain()]
        assert [i.seq for i in items] == [1, 2]
        assert items[1].record == second
        assert (await log.verify()).as_dict() == {"valid": True, "checked": 2, "first_bad_id": None}


async def test_rollback_leaves_no_record_and_no_gap(log_db: AsyncEngine) -> None:
    async with log_db.begin() as conn:
        await SqlAlchemyAuditLog(conn, KEY).append(_record("a"))

    async def failing_change() -> None:
        async with log_db.begin() as conn:
            await SqlAlchemyAuditLog(conn, KEY).append(_record("b"))
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await failing_change()
    async with log_db.begin() as conn:
        await SqlAlchemyAuditLog(conn, KEY).append(_record("c"))
    async with log_db.connect() as conn:
        log = SqlAlchemyAuditLog(conn, KEY)
        assert [(i.seq, i.record.action) async for i in log.iter_chain()] == [(1, "a"), (2, "c")]
        assert (await log.verify()).valid


async def test_concurrent_appends_form_one_chain(log_db: AsyncEngine) -> None:
    async def writer(n: int) -> None:
        async with log_db.begin() as conn:
            await SqlAlchemyAuditLog(conn, KEY).append(_record(f"w{n}", n=str(n)))
            await asyncio.sleep(0)  # hold the transaction open across a switch

    await asyncio.gather(*(writer(n) for n in range(20)))
    async with log_db.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(audit_events))).scalar_one()
        result = await SqlAlchemyAuditLog(conn, KEY).verify()
    assert count == 20
    assert (result.valid, result.checked) == (True, 20)
