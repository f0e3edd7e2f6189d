"""The TOTP replay guard in the database: shared by engines, processes and API replicas.

Each engine below stands for another process (its own connection pool); one test also claims
from a real second Python process. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import UUID

import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.security.totp import (
    SqlAlchemyTotpReplayGuard,
    TotpReplayGuard,
    TotpVerifier,
    new_totp_secret,
)
from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.adapters.sqlalchemy.tables import users
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import User

NOW = 1_800_000_000.0


@pytest.fixture
async def engines(migrated_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two engines (two connection pools, as two processes would have) on one database."""
    first, second = create_engine(migrated_url), create_engine(migrated_url)
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


async def _user(engine: AsyncEngine, email: str = "mfa@example.com") -> UUID:
    async with SqlAlchemyUnitOfWork(engine) as uow:
        user = User(
            id=uuid7(), email=email, password_hash="$argon2id$unused", created_at=datetime.now(UTC)
        )
        (await uow.users.add(user)).unwrap()
        await uow.commit()
    return user.id


async def _last_step(engine: AsyncEngine, user_id: UUID) -> int | None:
    async with engine.connect() as conn:
        value = (
            await conn.execute(select(users.c.mfa_last_step).where(users.c.id == user_id))
        ).scalar_one()
    return None if value is None else int(value)


async def test_a_step_claimed_through_one_engine_is_refused_through_another(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    first, second = engines
    a, b = SqlAlchemyTotpReplayGuard(first), SqlAlchemyTotpReplayGuard(second)
    assert isinstance(a, TotpReplayGuard)
    uid = await _user(first)
    other = await _user(first, "other@example.com")
    assert await _last_step(first, uid) is None
    assert await a.claim(str(uid), 100)
    assert not await b.claim(str(uid), 100)  # the same step elsewhere
    assert not await b.claim(str(uid), 99)  # an older step
    assert not await a.claim(str(uid), 100)  # and here again
    assert await b.claim(str(uid), 101)  # a newer step is fine, wherever
    assert not await a.claim(str(uid), 101)
    assert await _last_step(first, uid) == 101
    assert await b.claim(str(other), 100)  # users are independent
    assert not await a.claim(str(uuid7()), 500)  # unknown user
    assert not await a.claim("not-a-uuid", 500)


async def test_concurrent_claims_of_one_step_have_exactly_one_winner(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    first, second = engines
    uid = await _user(first)
    guards = [SqlAlchemyTotpReplayGuard(e) for e in (first, second)] * 8
    results = await asyncio.gather(*(g.claim(str(uid), 4242) for g in guards))
    assert sorted(results) == [False] * (len(guards) - 1) + [True]
    assert await _last_step(second, uid) == 4242


async def test_verifiers_of_two_instances_accept_a_code_once(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    first, second = engines
    uid = await _user(first)
    secret = new_totp_secret()
    code = pyotp.TOTP(secret).at(NOW)
    one = TotpVerifier(SqlAlchemyTotpReplayGuard(first))
    two = TotpVerifier(SqlAlchemyTotpReplayGuard(second))
    assert two.matching_step(secret, code, NOW) == int(NOW // 30)  # valid, in time
    assert await one.verify(secret, code, subject=str(uid), now=NOW)
    assert not await two.verify(secret, code, subject=str(uid), now=NOW + 5)
    assert not await one.verify(secret, code, subject=str(uid), now=NOW + 5)
    following = pyotp.TOTP(secret).at(NOW + 30)
    assert await two.verify(secret, following, subject=str(uid), now=NOW + 30)


async def test_saving_the_user_keeps_the_claimed_step(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """Login saves the user after the code was checked: that must not reset the guard."""
    first, second = engines
    uid = await _user(first)
    assert await SqlAlchemyTotpReplayGuard(first).claim(str(uid), 777)
    async with SqlAlchemyUnitOfWork(second) as uow:
        user = await uow.users.get(uid)
        assert user is not None
        user.failed_login_count = 0
        user.mfa_enabled = True
        await uow.users.update(user)
        await uow.commit()
    assert await _last_step(first, uid) == 777
    assert not await SqlAlchemyTotpReplayGuard(second).claim(str(uid), 777)


_CHILD = """
import asyncio, sys
from dashtam_core.adapters.security.totp import SqlAlchemyTotpReplayGuard
from dashtam_core.adapters.sqlalchemy.engine import create_engine

async def main() -> None:
    engine = create_engine(sys.argv[1])
    guard = SqlAlchemyTotpReplayGuard(engine)
    try:
        print(*[int(await guard.claim(sys.argv[2], int(s))) for s in sys.argv[3:]])
    finally:
        await engine.dispose()

asyncio.run(main())
"""


async def test_another_process_refuses_a_step_claimed_here(
    migrated_url: str, engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    first, _ = engines
    uid = await _user(first)
    assert await SqlAlchemyTotpReplayGuard(first).claim(str(uid), 9000)
    child = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _CHILD, migrated_url, str(uid), "9000", "8999", "9001"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["0", "0", "1"]
    assert not await SqlAlchemyTotpReplayGuard(first).claim(str(uid), 9001)
