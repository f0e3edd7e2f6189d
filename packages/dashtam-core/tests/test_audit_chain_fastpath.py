"""The fast verification path: same canonical bytes as the reference form, same verdicts."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, insert, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dashtam_core.adapters.security.audit_chain import (
    AuditChainer,
    canonical_bytes,
    verify_audit_table,
)
from dashtam_core.adapters.security.audit_log import SqlAlchemyAuditLog
from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.adapters.sqlalchemy.tables import audit_events
from dashtam_core.domain.audit import AuditOutcome, AuditRecord

KEY = b"k" * 32


def _reference(record: AuditRecord) -> bytes:
    """The canonical form as first specified (strftime timestamps, sorted keys)."""
    at = record.occurred_at
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return orjson.dumps(
        {
            "v": 1,
            "id": str(record.id),
            "occurred_at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "actor_id": str(record.actor_id) if record.actor_id else None,
            "action": record.action,
            "outcome": str(record.outcome),
            "object_type": record.object_type,
            "object_id": record.object_id,
            "ip": record.ip,
            "user_agent": record.user_agent,
            "details": {str(k): str(v) for k, v in record.details.items()},
            "prev_mac": record.prev_mac,
        },
        option=orjson.OPT_SORT_KEYS,
    )


@given(
    at=st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.none()
    ),
    offset=st.integers(min_value=-14 * 60, max_value=14 * 60),
    details=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4),
    agent=st.none() | st.text(max_size=20),
)
def test_canonical_bytes_match_the_reference_form(
    at: datetime, offset: int, details: dict[str, str], agent: str | None
) -> None:
    for moment in (
        at,
        at.replace(tzinfo=UTC),
        at.replace(tzinfo=timezone(timedelta(minutes=offset))),
    ):
        record = AuditRecord(
            id=uuid.uuid4(),
            occurred_at=moment,
            actor_id=uuid.uuid4(),
            action="a.b",
            outcome=AuditOutcome.FAILURE,
            user_agent=agent,
            details=details,
            prev_mac="ab" * 32,
        )
        assert canonical_bytes(record) == _reference(record)


@pytest.fixture
async def fast_db(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An empty SQLite or PostgreSQL database (``database_url``) with only the audit table."""
    eng = create_async_engine(database_url)
    async with eng.begin() as conn:
        await conn.run_sync(lambda c: audit_events.create(c))
    try:
        yield eng
    finally:
        await eng.dispose()


ODD_DETAILS = [
    {},
    {"é": "ünïcødé ✓", "quote": 'say "hi"\\', "ctl": "a\tb\nc\x01"},
    {"z": "1", "a": "2", "long key with spaces": "x" * 300},
]


async def _write(engine: AsyncEngine, n: int, first_seq: int = 1) -> list[AuditRecord]:
    chainer = AuditChainer(KEY)
    sealed = []
    t0 = datetime(2026, 3, 1, 0, 0, 0, 0, tzinfo=UTC)  # a zero microsecond field too
    async with engine.begin() as conn:
        for i in range(n):
            record = chainer.seal(
                AuditRecord(
                    id=uuid.uuid4(),
                    occurred_at=t0 + timedelta(microseconds=7 * i),
                    actor_id=uuid.uuid4() if i % 2 else None,
                    action="admin.user.roles",
                    outcome=AuditOutcome.SUCCESS if i % 3 else AuditOutcome.FAILURE,
                    object_type=None if i % 4 == 1 else "user",
                    object_id=None if i % 4 == 1 else f"u{i}",
                    ip=None if i % 5 == 2 else "2001:db8::1",
                    user_agent=None if i % 2 else "Mozilla/5.0 «ua»",
                    details=ODD_DETAILS[i % len(ODD_DETAILS)],
                )
            )
            sealed.append(record)
            values = {
                f: getattr(record, f) for f in (col.name for col in audit_events.c) if f != "seq"
            }
            values["outcome"] = str(record.outcome)
            await conn.execute(insert(audit_events).values(seq=first_seq + i, **values))
    return sealed


async def test_odd_values_verify_on_every_dialect(fast_db: AsyncEngine) -> None:
    await _write(fast_db, 12, first_seq=40)
    async with fast_db.connect() as conn:
        result = await verify_audit_table(conn, KEY, batch_size=5)
    assert result.as_dict() == {"valid": True, "checked": 12, "first_bad_id": None}


async def test_detail_edit_detected(fast_db: AsyncEngine) -> None:
    sealed = await _write(fast_db, 9)
    async with fast_db.begin() as conn:
        await conn.execute(
            update(audit_events)
            .where(audit_events.c.seq == 5)
            .values(details={"é": "ünïcødé ✓", "quote": 'say "hi"\\', "ctl": "a\tb\nc\x02"})
        )
    async with fast_db.connect() as conn:
        result = await verify_audit_table(conn, KEY, batch_size=4)
    assert (result.valid, result.first_bad_id, result.checked) == (False, sealed[4].id, 5)


async def test_deleting_the_first_or_last_records(fast_db: AsyncEngine) -> None:
    sealed = await _write(fast_db, 7)
    async with fast_db.begin() as conn:
        await conn.execute(delete(audit_events).where(audit_events.c.seq == 1))
    async with fast_db.connect() as conn:
        result = await verify_audit_table(conn, KEY, batch_size=3)
    assert (result.valid, result.first_bad_id, result.checked) == (False, sealed[1].id, 1)
    async with fast_db.begin() as conn:
        await conn.execute(delete(audit_events).where(audit_events.c.seq == 2))
        await conn.execute(delete(audit_events).where(audit_events.c.seq == 5))
    async with fast_db.connect() as conn:
        result = await verify_audit_table(conn, KEY, batch_size=3)
    assert (result.valid, result.first_bad_id) == (False, sealed[2].id)


@pytest.fixture
async def pg_engine() -> AsyncIterator[AsyncEngine]:
    url = os.environ.get("DASHTAM_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("DASHTAM_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail("DASHTAM_TEST_POSTGRES_URL is required")
        pytest.skip("DASHTAM_TEST_POSTGRES_URL is not set")
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    name = f"dashtam_test_{uuid.uuid4().hex[:12]}"
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    eng = create_engine(make_url(url).set(database=name))
    async with eng.begin() as conn:
        await conn.run_sync(lambda c: audit_events.create(c))
    try:
        yield eng
    finally:
        await eng.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def _new(i: int) -> AuditRecord:
    return AuditRecord(
        id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        actor_id=uuid.uuid4(),
        action="connection.rename",
        outcome=AuditOutcome.SUCCESS,
        object_type="connection",
        object_id=str(i),
        ip="127.0.0.1",
        user_agent="ua",
        details={"alias": f"Checking «{i}»", "n": i},  # type: ignore[dict-item]
    )


async def _append_in_open_transaction(engine: AsyncEngine, count: int, start: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("SELECT 1"))  # the caller's change opened the transaction
        log = SqlAlchemyAuditLog(conn, KEY)
        assert await log._driver() is not None  # the asyncpg path is the one under test
        for i in range(count):
            await log.append(_new(start + i))


async def test_driver_path_chains_rolls_back_and_serializes(pg_engine: AsyncEngine) -> None:
    await _append_in_open_transaction(pg_engine, 3, 0)
    async with pg_engine.begin() as conn:  # first statement: the SQLAlchemy path
        await SqlAlchemyAuditLog(conn, KEY).append(_new(3))
    async with pg_engine.connect() as conn:  # the audited change fails: all rolls back
        await conn.execute(text("SELECT 1"))
        await SqlAlchemyAuditLog(conn, KEY).append(_new(99))
        await conn.rollback()
    await asyncio.gather(*(_append_in_open_transaction(pg_engine, 5, 10 * k) for k in range(1, 7)))
    async with pg_engine.connect() as conn:
        result = await verify_audit_table(conn, KEY, batch_size=7)
        log = SqlAlchemyAuditLog(conn, KEY)
        items = [item async for item in log.iter_chain()]
    assert result.as_dict() == {"valid": True, "checked": 34, "first_bad_id": None}
    assert [item.seq for item in items] == list(range(1, 35))
    assert "99" not in {item.record.object_id for item in items}
    assert items[0].record.details == {"alias": "Checking «0»", "n": "0"}


@pytest.mark.parametrize("seq", [4, 5])  # the last record of the first range, the first of the next
async def test_edit_at_a_batch_boundary_detected(fast_db: AsyncEngine, seq: int) -> None:
    sealed = await _write(fast_db, 12)
    async with fast_db.begin() as conn:
        await conn.execute(
            update(audit_events).where(audit_events.c.seq == seq).values(object_id="edited")
        )
    async with fast_db.connect() as conn:
        result = await verify_audit_table(conn, KEY, batch_size=4)
    assert (result.valid, result.first_bad_id, result.checked) == (False, sealed[seq - 1].id, seq)


async def test_resealed_record_breaks_the_link_at_a_batch_boundary(fast_db: AsyncEngine) -> None:
    sealed = await _write(fast_db, 10)
    # a record re-sealed with the key after another head: its own MAC is right, its link is not
    forged = AuditChainer(KEY, "00" * 32).seal(replace(sealed[4], object_id="forged"))
    async with fast_db.begin() as conn:
        await conn.execute(
            update(audit_events)
            .where(audit_events.c.seq == 5)
            .values(object_id=forged.object_id, prev_mac=forged.prev_mac, mac=forged.mac)
        )
    async with fast_db.connect() as conn:
        result = await verify_audit_table(conn, KEY, batch_size=4)
    assert (result.valid, result.first_bad_id, result.checked) == (False, sealed[4].id, 5)


@pytest.mark.parametrize(
    ("details", "valid"),
    [
        ({"z": "1", "a": "2", "long key with spaces": "x" * 300}, True),  # same, stored again
        ({"z": 1, "a": "2", "long key with spaces": "x" * 300}, True),  # str(1) == "1", as before
        ({"z": "1", "a": "2"}, False),
        ({"z": "1", "a": "2", "long key with spaces": "x" * 300, "extra": "y"}, False),
        (["z", "1"], False),  # no longer a mapping: reported, not raised
        ("text", False),
    ],
)
async def test_details_edits_use_the_reference_form(
    fast_db: AsyncEngine, details: object, valid: bool
) -> None:
    sealed = await _write(fast_db, 6)  # seq 3 and 6 carry ODD_DETAILS[2]
    async with fast_db.begin() as conn:
        await conn.execute(
            update(audit_events).where(audit_events.c.seq == 3).values(details=details)
        )
    async with fast_db.connect() as conn:
        result = await verify_audit_table(conn, KEY, batch_size=2)
    expected = (True, None, 6) if valid else (False, sealed[2].id, 3)
    assert (result.valid, result.first_bad_id, result.checked) == expected


async def test_timestamp_edit_detected_on_the_fast_path(fast_db: AsyncEngine) -> None:
    sealed = await _write(fast_db, 5)
    moved = sealed[3].occurred_at + timedelta(microseconds=1)
    async with fast_db.begin() as conn:
        await conn.execute(
            update(audit_events).where(audit_events.c.seq == 4).values(occurred_at=moved)
        )
    async with fast_db.connect() as conn:
        result = await verify_audit_table(conn, KEY, batch_size=3)
    assert (result.valid, result.first_bad_id, result.checked) == (False, sealed[3].id, 4)


async def test_stale_head_prediction_falls_back_to_the_real_head(pg_engine: AsyncEngine) -> None:
    await _append_in_open_transaction(pg_engine, 2, 0)  # this process predicts head seq 2
    async with pg_engine.begin() as conn:  # another writer (the SQLAlchemy path) appends
        await SqlAlchemyAuditLog(conn, KEY).append(_new(2))
    async with pg_engine.connect() as conn:  # a predicted append that rolls back
        await conn.execute(text("SELECT 1"))
        await SqlAlchemyAuditLog(conn, KEY).append(_new(98))
        await conn.rollback()
    await _append_in_open_transaction(pg_engine, 3, 3)
    async with pg_engine.connect() as conn:
        result = await verify_audit_table(conn, KEY)
        items = [item async for item in SqlAlchemyAuditLog(conn, KEY).iter_chain()]
    assert result.as_dict() == {"valid": True, "checked": 6, "first_bad_id": None}
    assert [item.record.object_id for item in items] == ["0", "1", "2", "3", "4", "5"]
