"""Repository and unit-of-work behaviour, run on SQLite, PostgreSQL and the in-memory adapters.

Each scenario is a plain coroutine taking a unit-of-work factory; ``test_sql`` runs it on the
``uow_factory`` fixture (both databases), ``test_memory`` on the in-memory implementation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy.exc import IntegrityError

from dashtam_core.adapters.memory import InMemoryUnitOfWorkFactory
from dashtam_core.domain.account import Account, AccountType
from dashtam_core.domain.connection import ConnectionStatus, ProviderConnection
from dashtam_core.domain.events import EmailVerified
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.session import RefreshToken, Session
from dashtam_core.domain.user import Role, User
from dashtam_core.errors import Conflict, EmailTaken
from dashtam_core.ports.repositories import (
    AccountRepository,
    ConnectionRepository,
    RefreshTokenRepository,
    SessionRepository,
    UserRepository,
)
from dashtam_core.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from dashtam_core.result import Err, Ok

T0 = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
EST = timezone(timedelta(hours=-5))

Scenario = Callable[[UnitOfWorkFactory], Awaitable[None]]


def make_user(email: str = "ada@example.com", **kw: Any) -> User:
    return User(id=uuid7(), email=email, password_hash="$argon2id$v=19$x", created_at=T0, **kw)


def make_connection(user_id: UUID, provider: str = "schwab", **kw: Any) -> ProviderConnection:
    kw.setdefault("status", ConnectionStatus.ACTIVE)
    kw.setdefault("created_at", T0)
    return ProviderConnection(id=uuid7(), user_id=user_id, provider=provider, **kw)


def make_account(conn: ProviderConnection, pid: str = "A1", **kw: Any) -> Account:
    kw.setdefault("type", AccountType.BROKERAGE)
    return Account(
        id=uuid7(),
        connection_id=conn.id,
        user_id=conn.user_id,
        provider=conn.provider,
        provider_account_id=pid,
        name=f"Account {pid}",
        currency="USD",
        created_at=T0,
        **kw,
    )


def make_session(user_id: UUID, created_at: datetime = T0) -> Session:
    return Session(
        id=uuid7(),
        user_id=user_id,
        created_at=created_at,
        last_used_at=created_at,
        expires_at=created_at + timedelta(days=30),
        user_agent="pytest",
        ip="127.0.0.1",
    )


def make_token(session_id: UUID, tag: str, parent: UUID | None = None) -> RefreshToken:
    return RefreshToken(
        id=uuid7(),
        session_id=session_id,
        token_hash=f"hmac-{tag}-{uuid7().hex}",
        created_at=T0,
        expires_at=T0 + timedelta(days=7),
        parent_id=parent,
    )


async def _seed_user(factory: UnitOfWorkFactory, email: str = "ada@example.com") -> User:
    user = make_user(email)
    async with factory() as uow:
        assert (await uow.users.add(user)) == Ok(None)
        await uow.commit()
    return user


async def user_round_trip(factory: UnitOfWorkFactory) -> None:
    user = make_user(
        roles=[Role.ADMIN, Role.AUDITOR],
        locked_until=datetime(2026, 3, 1, 9, 0, tzinfo=EST),
        mfa_secret_encrypted=b"\x00\x01secret\xff",
        mfa_enabled=True,
        failed_login_count=3,
        tokens_valid_after=T0,
    )
    async with factory() as uow:
        assert isinstance(uow, UnitOfWork)
        assert isinstance(uow.users, UserRepository)
        assert (await uow.users.add(user)) == Ok(None)
        await uow.commit()
    async with factory() as uow:
        loaded = await uow.users.get(user.id)
        assert loaded == user
        assert loaded is not None
        assert loaded is not user
        assert loaded.locked_until == datetime(2026, 3, 1, 14, 0, tzinfo=UTC)
        assert loaded.locked_until.utcoffset() == timedelta(0)
        assert loaded.created_at == T0
        assert loaded.created_at.tzinfo is not None
        assert loaded.roles == [Role.ADMIN, Role.AUDITOR]
        assert await uow.users.get_by_email("ada@example.com") == user
        assert await uow.users.get_by_email("nobody@example.com") is None
        assert await uow.users.get(uuid7()) is None
        loaded.email_verified = True  # not persisted without update()
    async with factory() as uow:
        again = await uow.users.get(user.id)
        assert again is not None
        assert again.email_verified is False
        again.email_verified = True
        again.failed_login_count = 0
        await uow.users.update(again)
        await uow.commit()
    async with factory() as uow:
        final = await uow.users.get(user.id)
        assert final is not None
        assert final.email_verified
        assert final.failed_login_count == 0


async def user_email_unique_and_keyset(factory: UnitOfWorkFactory) -> None:
    first = await _seed_user(factory)
    async with factory() as uow:
        result = await uow.users.add(make_user("ada@example.com"))
        assert isinstance(result, Err)
        assert isinstance(result.error, EmailTaken)
        # The failed insert does not poison the transaction.
        second = make_user("bob@example.com")
        assert (await uow.users.add(second)) == Ok(None)
        await uow.commit()
    async with factory() as uow:
        everyone = await uow.users.list_all(limit=10)
        assert [u.id for u in everyone] == sorted([first.id, second.id])
        page = await uow.users.list_all(limit=1, after=everyone[0].id)
        assert [u.id for u in page] == [everyone[1].id]


async def sessions_scoped_to_user(factory: UnitOfWorkFactory) -> None:
    ada = await _seed_user(factory)
    bob = await _seed_user(factory, "bob@example.com")
    older, newer = make_session(ada.id), make_session(ada.id, T0 + timedelta(hours=1))
    bobs = make_session(bob.id)
    async with factory() as uow:
        assert isinstance(uow.sessions, SessionRepository)
        for s in (newer, older, bobs):
            await uow.sessions.add(s)
        await uow.commit()
    async with factory() as uow:
        assert await uow.sessions.get_for_user(older.id, ada.id) == older
        assert await uow.sessions.get_for_user(older.id, bob.id) is None
        assert await uow.sessions.get(bobs.id) == bobs
        assert [s.id for s in await uow.sessions.list_for_user(ada.id)] == [older.id, newer.id]
        at = T0 + timedelta(hours=2)
        count = await uow.sessions.revoke_all_for_user(
            ada.id, at=at, reason="password_changed", except_id=newer.id
        )
        assert count == 1
        await uow.commit()
    async with factory() as uow:
        active = await uow.sessions.list_for_user(ada.id, active_only=True)
        assert [s.id for s in active] == [newer.id]
        revoked = await uow.sessions.get(older.id)
        assert revoked is not None
        assert revoked.revoked_at == T0 + timedelta(hours=2)
        assert revoked.revoked_reason == "password_changed"
        assert not revoked.is_active
        assert (await uow.sessions.list_for_user(bob.id, active_only=True))[0].id == bobs.id


async def refresh_tokens_claim_once(factory: UnitOfWorkFactory) -> None:
    ada = await _seed_user(factory)
    session = make_session(ada.id)
    parent = make_token(session.id, "parent")
    child = make_token(session.id, "child", parent=parent.id)
    async with factory() as uow:
        assert isinstance(uow.refresh_tokens, RefreshTokenRepository)
        await uow.sessions.add(session)
        await uow.refresh_tokens.add(parent)
        await uow.refresh_tokens.add(child)
        await uow.commit()
    async with factory() as uow:
        assert await uow.refresh_tokens.get_by_hash(child.token_hash) == child
        assert await uow.refresh_tokens.get_by_hash("unknown") is None
        assert await uow.refresh_tokens.mark_used(parent.id, at=T0) is True
        assert await uow.refresh_tokens.mark_used(parent.id, at=T0) is False
        await uow.commit()

    async def claim() -> bool:
        async with factory() as uow:
            won = await uow.refresh_tokens.mark_used(child.id, at=T0 + timedelta(seconds=1))
            await asyncio.sleep(0)
            await uow.commit()
            return won

    results = await asyncio.gather(*(claim() for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    async with factory() as uow:
        third = make_token(session.id, "third", parent=child.id)
        await uow.refresh_tokens.add(third)
        assert await uow.refresh_tokens.revoke_for_sessions([session.id], at=T0) == 3
        assert await uow.refresh_tokens.revoke_for_sessions([], at=T0) == 0
        assert await uow.refresh_tokens.mark_used(third.id, at=T0) is False
        await uow.commit()
    async with factory() as uow:
        tokens = await uow.refresh_tokens.list_for_session(session.id)
        assert [t.id for t in tokens] == [parent.id, child.id, third.id]
        assert all(t.revoked_at == T0 for t in tokens)
        assert tokens[1].parent_id == parent.id
        assert tokens[1].used_at == T0 + timedelta(seconds=1)


async def connections_round_trip(factory: UnitOfWorkFactory) -> None:
    ada = await _seed_user(factory)
    bob = await _seed_user(factory, "bob@example.com")
    conn = make_connection(
        ada.id,
        alias="main",
        credentials_encrypted=b"\x8f" * 40,
        credentials_key_id="k1",
        options={"region": "us"},
        last_synced_at=T0,
    )
    fresh = make_connection(ada.id, "alpaca", status=ConnectionStatus.PENDING)
    bobs = make_connection(bob.id, status=ConnectionStatus.NEEDS_REAUTH)
    async with factory() as uow:
        assert isinstance(uow.connections, ConnectionRepository)
        for c in (conn, fresh, bobs):
            await uow.connections.add(c)
        await uow.commit()
    async with factory() as uow:
        assert await uow.connections.get(conn.id) == conn
        assert await uow.connections.get_for_user(conn.id, bob.id) is None
        assert await uow.connections.get_for_user(conn.id, ada.id) == conn
        mine = await uow.connections.list_for_user(ada.id)
        assert {c.id for c in mine} == {conn.id, fresh.id}
        assert [c.id for c in await uow.connections.list_for_user(ada.id, provider="alpaca")] == [
            fresh.id
        ]
        due = await uow.connections.list_by_status(
            [ConnectionStatus.ACTIVE, ConnectionStatus.PENDING]
        )
        assert [c.id for c in due] == [fresh.id, conn.id]
        conn.transition(ConnectionStatus.ERROR, error="provider_unavailable")
        await uow.connections.update(conn)
        await uow.commit()
    async with factory() as uow:
        loaded = await uow.connections.get(conn.id)
        assert loaded is not None
        assert loaded.status is ConnectionStatus.ERROR
        assert loaded.last_error == "provider_unavailable"
        assert loaded.credentials_encrypted == b"\x8f" * 40
        assert loaded.options == {"region": "us"}


async def accounts_decimal_exact(factory: UnitOfWorkFactory) -> None:
    ada = await _seed_user(factory)
    bob = await _seed_user(factory, "bob@example.com")
    conn = make_connection(ada.id)
    amounts = ["12.30", "0.123456789", "-1500.00", "123456789012.345678", "0"]
    accts = [
        make_account(
            conn,
            f"A{i}",
            balance_current=Decimal(a),
            balance_available=Decimal(a),
            balance_as_of=T0,
            type=AccountType.CHECKING if i % 2 else AccountType.BROKERAGE,
        )
        for i, a in enumerate(amounts)
    ]
    async with factory() as uow:
        assert isinstance(uow.accounts, AccountRepository)
        await uow.connections.add(conn)
        for a in accts:
            await uow.accounts.add(a)
        await uow.commit()
    async with factory() as uow:
        for account, text in zip(accts, amounts, strict=True):
            loaded = await uow.accounts.get_for_user(account.id, ada.id)
            assert loaded == account
            assert loaded is not None
            assert str(loaded.balance_current) == text
            assert isinstance(loaded.balance_current, Decimal)
            assert await uow.accounts.get_for_user(account.id, bob.id) is None
        found = await uow.accounts.get_by_provider_id(conn.id, "A1")
        assert found is not None
        assert found.id == accts[1].id
        assert await uow.accounts.get_by_provider_id(conn.id, "missing") is None
        checking = await uow.accounts.list_for_user(ada.id, type=AccountType.CHECKING)
        assert [a.id for a in checking] == [accts[1].id, accts[3].id]
        assert len(await uow.accounts.list_for_user(ada.id, connection_id=conn.id)) == 5
        assert await uow.accounts.list_for_user(bob.id) == []
        assert [a.id for a in await uow.accounts.list_for_connection(conn.id)] == [
            a.id for a in accts
        ]
    async with factory() as uow:
        with pytest.raises((IntegrityError, Conflict)):
            await uow.accounts.add(make_account(conn, "A1"))


async def rollback_on_exception(factory: UnitOfWorkFactory) -> None:
    user = make_user()

    async def fail_midway() -> None:
        async with factory() as uow:
            await uow.users.add(user)
            uow.add_event(EmailVerified(user_id=user.id))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_midway()
    async with factory() as uow:
        assert await uow.users.get(user.id) is None
        assert uow.collect_new_events() == []
    async with factory() as uow:  # no commit: nothing persisted
        await uow.users.add(user)
    async with factory() as uow:
        assert await uow.users.get(user.id) is None


async def commit_then_rollback(factory: UnitOfWorkFactory) -> None:
    kept, dropped = make_user("kept@example.com"), make_user("dropped@example.com")
    kept_event, dropped_event = EmailVerified(user_id=kept.id), EmailVerified(user_id=dropped.id)
    async with factory() as uow:
        await uow.users.add(kept)
        uow.add_event(kept_event)
        await uow.commit()
        await uow.users.add(dropped)
        uow.add_event(dropped_event)
        await uow.rollback()
        assert await uow.users.get(dropped.id) is None
        assert uow.collect_new_events() == [kept_event]
        assert uow.collect_new_events() == []
    async with factory() as uow:
        assert await uow.users.get(kept.id) == kept
        assert await uow.users.get(dropped.id) is None


async def uncommitted_writes_are_isolated(factory: UnitOfWorkFactory) -> None:
    ada = await _seed_user(factory)
    async with factory() as writer:
        loaded = await writer.users.get(ada.id)
        assert loaded is not None
        loaded.is_locked = True
        await writer.users.update(loaded)
        seen = await writer.users.get(ada.id)
        assert seen is not None
        assert seen.is_locked
        await writer.commit()
    async with factory() as reader:
        after = await reader.users.get(ada.id)
        assert after is not None
        assert after.is_locked


SCENARIOS: list[Scenario] = [
    user_round_trip,
    user_email_unique_and_keyset,
    sessions_scoped_to_user,
    refresh_tokens_claim_once,
    connections_round_trip,
    accounts_decimal_exact,
    rollback_on_exception,
    commit_then_rollback,
    uncommitted_writes_are_isolated,
]
IDS = [s.__name__ for s in SCENARIOS]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
async def test_sql(scenario: Scenario, uow_factory: UnitOfWorkFactory) -> None:
    await scenario(uow_factory)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
async def test_memory(scenario: Scenario) -> None:
    factory = InMemoryUnitOfWorkFactory()
    assert isinstance(factory, UnitOfWorkFactory)
    await scenario(factory)
