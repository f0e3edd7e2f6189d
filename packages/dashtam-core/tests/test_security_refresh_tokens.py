"""Opaque refresh tokens: HMAC storage, atomic rotation, reuse detection (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dashtam_core.adapters.security.refresh_tokens import (
    InvalidRefreshToken,
    IssuedRefreshToken,
    RefreshTokenReused,
    TokenHasher,
    constant_time_equals,
    generate_refresh_token,
    generate_token,
    issue_refresh_token,
    rotate_refresh_token,
)
from dashtam_core.adapters.sqlalchemy.tables import refresh_tokens, sessions, users
from dashtam_core.errors import AuthenticationError
from dashtam_core.result import Err, Ok, Result

KEY = b"r" * 32
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
IDLE = timedelta(days=7)


def test_token_generation_and_hmac() -> None:
    token = generate_refresh_token()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    assert len({generate_refresh_token() for _ in range(1000)}) == 1000
    assert len(generate_token(16)) == 22
    with pytest.raises(ValueError):
        generate_token(8)
    hasher = TokenHasher(KEY)
    digest = hasher.digest(token)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert token not in digest
    assert hasher.matches(token, digest)
    assert not hasher.matches(token + "x", digest)
    assert TokenHasher(b"s" * 32).digest(token) != digest
    assert "r" * 32 not in repr(hasher)
    with pytest.raises(ValueError):
        TokenHasher(b"short")
    assert constant_time_equals("abc", "abc")
    assert not constant_time_equals("abc", "abd")
    assert constant_time_equals(b"x", "x")


async def _fresh_postgres() -> tuple[AsyncEngine, AsyncEngine, str] | None:
    url = os.environ.get("DASHTAM_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("DASHTAM_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail("DASHTAM_TEST_POSTGRES_URL is required")
        return None
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    name = f"dashtam_test_{uuid.uuid4().hex[:12]}"
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_async_engine(make_url(url).set(database=name), pool_size=60, max_overflow=0)
    return admin, engine, name


@pytest.fixture(params=["sqlite", "postgres"])
async def token_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    admin: AsyncEngine | None = None
    name = ""
    if request.param == "sqlite":
        eng = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'tokens.db'}")
    else:
        made = await _fresh_postgres()
        if made is None:
            pytest.skip("DASHTAM_TEST_POSTGRES_URL is not set")
        admin, eng, name = made
    async with eng.begin() as conn:
        await conn.run_sync(
            lambda c: users.metadata.create_all(c, tables=[users, sessions, refresh_tokens])
        )
    try:
        yield eng
    finally:
        await eng.dispose()
        if admin is not None:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await admin.dispose()


async def _login(engine: AsyncEngine, hasher: TokenHasher) -> tuple[uuid.UUID, str]:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            insert(users).values(
                id=user_id,
                email=f"{user_id.hex}@example.com",
                password_hash="x",
                created_at=NOW,
                email_verified=True,
                roles=["user"],
                is_locked=False,
                failed_login_count=0,
                mfa_enabled=False,
            )
        )
        await conn.execute(
            insert(sessions).values(
                id=session_id,
                user_id=user_id,
                created_at=NOW,
                last_used_at=NOW,
                expires_at=NOW + timedelta(days=30),
            )
        )
        issued = await issue_refresh_token(
            conn,
            hasher,
            session_id=session_id,
            user_id=user_id,
            now=NOW,
            idle=IDLE,
            session_expires_at=NOW + timedelta(days=30),
        )
    return session_id, issued.token


async def _rotate(
    engine: AsyncEngine, hasher: TokenHasher, token: str, now: datetime = NOW
) -> Result[IssuedRefreshToken, AuthenticationError]:
    async with engine.begin() as conn:
        return await rotate_refresh_token(conn, hasher, token, now=now, idle=IDLE)


async def test_rotation_chain_and_storage(token_db: AsyncEngine) -> None:
    hasher = TokenHasher(KEY)
    session_id, token = await _login(token_db, hasher)
    async with token_db.connect() as conn:
        stored = (await conn.execute(select(refresh_tokens.c.token_hash))).scalars().all()
    assert stored == [hasher.digest(token)]  # never the raw token
    first = await _rotate(token_db, hasher, token, NOW + timedelta(minutes=1))
    assert isinstance(first, Ok)
    child = first.value
    assert child.session_id == session_id
    assert child.token != token
    assert child.expires_at == NOW + timedelta(minutes=1) + IDLE
    second = await _rotate(token_db, hasher, child.token, NOW + timedelta(minutes=2))
    assert isinstance(second, Ok)
    async with token_db.connect() as conn:
        parent = (
            await conn.execute(
                select(refresh_tokens.c.parent_id).where(
                    refresh_tokens.c.id == second.value.token_id
                )
            )
        ).scalar_one()
    assert parent == child.token_id


async def test_reuse_revokes_family(token_db: AsyncEngine) -> None:
    hasher = TokenHasher(KEY)
    session_id, token = await _login(token_db, hasher)
    child = (await _rotate(token_db, hasher, token)).unwrap()
    reused = await _rotate(token_db, hasher, token)
    assert isinstance(reused, Err)
    assert isinstance(reused.error, RefreshTokenReused)
    assert reused.error.code == "refresh_token_reused"
    assert reused.error.status == 401
    # the legitimate child is dead too, and so is the session
    after = await _rotate(token_db, hasher, child.token)
    assert isinstance(after, Err)
    assert isinstance(after.error, InvalidRefreshToken)
    async with token_db.connect() as conn:
        reason = (
            await conn.execute(select(sessions.c.revoked_reason).where(sessions.c.id == session_id))
        ).scalar_one()
    assert reason == "refresh_token_reused"


async def test_unknown_expired_and_ended_session(token_db: AsyncEngine) -> None:
    hasher = TokenHasher(KEY)
    unknown = await _rotate(token_db, hasher, generate_refresh_token())
    assert isinstance(unknown, Err)
    assert isinstance(unknown.error, InvalidRefreshToken)
    _, token = await _login(token_db, hasher)
    expired = await _rotate(token_db, hasher, token, NOW + IDLE + timedelta(seconds=1))
    assert isinstance(expired, Err)
    assert isinstance(expired.error, InvalidRefreshToken)
    session_id, token = await _login(token_db, hasher)
    async with token_db.begin() as conn:
        await conn.execute(
            sessions.update().where(sessions.c.id == session_id).values(revoked_at=NOW)
        )
    ended = await _rotate(token_db, hasher, token)
    assert isinstance(ended, Err)
    assert isinstance(ended.error, InvalidRefreshToken)


async def test_child_never_outlives_session(token_db: AsyncEngine) -> None:
    hasher = TokenHasher(KEY)
    _, token = await _login(token_db, hasher)
    late = NOW + timedelta(days=29)
    chain_token = token
    for day in (6, 12, 18, 24):
        chain_token = (
            (await _rotate(token_db, hasher, chain_token, NOW + timedelta(days=day))).unwrap().token
        )
    child = (await _rotate(token_db, hasher, chain_token, late)).unwrap()
    assert child.expires_at == NOW + timedelta(days=30)


async def test_fifty_concurrent_rotations_one_winner(token_db: AsyncEngine) -> None:
    hasher = TokenHasher(KEY)
    session_id, token = await _login(token_db, hasher)
    results = await asyncio.gather(*(_rotate(token_db, hasher, token) for _ in range(50)))
    winners = [r for r in results if isinstance(r, Ok)]
    losers = [r for r in results if isinstance(r, Err)]
    assert len(winners) == 1
    assert all(isinstance(r.error, RefreshTokenReused) for r in losers)
    async with token_db.connect() as conn:
        children = (
            await conn.execute(
                select(func.count()).where(
                    refresh_tokens.c.session_id == session_id,
                    refresh_tokens.c.parent_id.is_not(None),
                )
            )
        ).scalar_one()
    assert children == 1
