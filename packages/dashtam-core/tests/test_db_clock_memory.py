"""The clock port and in-memory specifics (timestamps normalized like a database would)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dashtam_core.adapters.memory import InMemoryStore, InMemoryUnitOfWorkFactory
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.session import Session
from dashtam_core.domain.user import User
from dashtam_core.errors import Conflict
from dashtam_core.ports.clock import Clock, FixedClock, SystemClock


def test_system_clock_is_aware_utc() -> None:
    clock = SystemClock()
    assert isinstance(clock, Clock)
    now = clock.now()
    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


def test_fixed_clock_moves_only_when_told() -> None:
    start = datetime(2026, 5, 1, 8, 0, tzinfo=timezone(timedelta(hours=2)))
    clock = FixedClock(start)
    assert isinstance(clock, Clock)
    assert clock.now() == start
    assert clock.now().tzinfo is UTC
    assert clock.now() == clock.now()
    assert clock.advance(timedelta(minutes=30)) == datetime(2026, 5, 1, 6, 30, tzinfo=UTC)
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    assert clock.now().year == 2027
    with pytest.raises(ValueError, match="timezone-aware"):
        FixedClock(datetime(2026, 1, 1))


async def test_memory_refuses_naive_and_duplicate_ids() -> None:
    factory = InMemoryUnitOfWorkFactory(InMemoryStore())
    now = datetime.now(UTC)
    user = User(id=uuid7(), email="a@example.com", password_hash="h", created_at=now)
    session = Session(id=uuid7(), user_id=user.id, created_at=now, last_used_at=now, expires_at=now)
    naive = User(id=uuid7(), email="b@example.com", password_hash="h", created_at=now)
    naive.created_at = datetime(2026, 1, 1)
    async with factory() as uow:
        (await uow.users.add(user)).unwrap()
        await uow.sessions.add(session)
        with pytest.raises(Conflict):
            await uow.sessions.add(session)
        with pytest.raises(TypeError, match="timezone-aware"):
            await uow.users.add(naive)
        await uow.commit()
    assert list(factory.store.users) == [user.id]
    assert factory.store.claims == {}


async def test_memory_unit_of_work_cannot_be_used_outside_its_block() -> None:
    uow = InMemoryUnitOfWorkFactory()()
    with pytest.raises(RuntimeError, match="not active"):
        await uow.commit()
    async with uow:
        pass
    with pytest.raises(RuntimeError, match="not active"):
        await uow.rollback()
