"""Schema rules enforced by the database itself, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

from dashtam_core.adapters.sqlalchemy import mapping
from dashtam_core.adapters.sqlalchemy.engine import (
    SQLITE_BUSY_TIMEOUT_MS,
    SqlAlchemyUnitOfWorkFactory,
    create_engine,
    normalize_url,
)
from dashtam_core.adapters.sqlalchemy.repositories import is_unique_violation
from dashtam_core.adapters.sqlalchemy.tables import (
    accounts,
    audit_events,
    casbin_rule,
    idempotency_keys,
    one_time_tokens,
    sessions,
    users,
)
from dashtam_core.domain.account import Account, AccountType
from dashtam_core.domain.audit import AuditOutcome, AuditRecord
from dashtam_core.domain.connection import ConnectionStatus, ProviderConnection
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.session import Session
from dashtam_core.domain.user import User

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _user(email: str = "ada@example.com") -> User:
    return User(id=uuid7(), email=email, password_hash="h", created_at=T0)


async def _seed(factory: SqlAlchemyUnitOfWorkFactory) -> tuple[User, ProviderConnection]:
    user = _user()
    conn = ProviderConnection(
        id=uuid7(), user_id=user.id, provider="chase", status=ConnectionStatus.ACTIVE, created_at=T0
    )
    async with factory() as uow:
        (await uow.users.add(user)).unwrap()
        await uow.connections.add(conn)
        await uow.commit()
    return user, conn


async def test_foreign_keys_cascade_from_users(uow_factory: SqlAlchemyUnitOfWorkFactory) -> None:
    user, conn = await _seed(uow_factory)
    session = Session(id=uuid7(), user_id=user.id, created_at=T0, last_used_at=T0, expires_at=T0)
    account = Account(
        id=uuid7(),
        connection_id=conn.id,
        user_id=user.id,
        provider="chase",
        provider_account_id="1",
        name="Checking",
        type=AccountType.CHECKING,
        currency="USD",
        created_at=T0,
    )
    async with uow_factory() as uow:
        await uow.sessions.add(session)
        await uow.accounts.add(account)
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(IntegrityError) as info:
            await uow.sessions.add(
                Session(id=uuid7(), user_id=uuid7(), created_at=T0, last_used_at=T0, expires_at=T0)
            )
        assert not is_unique_violation(info.value)
    async with uow_factory() as uow:
        await uow.connection.execute(users.delete().where(users.c.id == user.id))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.sessions.get(session.id) is None
        assert await uow.accounts.get(account.id) is None
        assert await uow.connections.get(conn.id) is None


async def test_naive_timestamps_and_float_money_are_refused(
    uow_factory: SqlAlchemyUnitOfWorkFactory,
) -> None:
    naive = _user()
    naive.created_at = datetime(2026, 1, 1, 0, 0)
    async with uow_factory() as uow:
        with pytest.raises(StatementError, match="timezone-aware"):
            await uow.users.add(naive)
    _, conn = await _seed(uow_factory)
    row = {
        "id": uuid7(),
        "connection_id": conn.id,
        "user_id": conn.user_id,
        "provider": "chase",
        "provider_account_id": "x",
        "name": "x",
        "type": "checking",
        "currency": "USD",
        "created_at": T0,
        "is_closed": False,
        "balance_current": 12.3,
    }
    async with uow_factory() as uow:
        with pytest.raises(StatementError, match="float"):
            await uow.connection.execute(insert(accounts).values(**row))


async def test_decimal_scale_survives_sql_comparison(engine: AsyncEngine) -> None:
    factory = SqlAlchemyUnitOfWorkFactory(engine)
    _, conn = await _seed(factory)
    async with factory() as uow:
        for i, amount in enumerate(["12.30", "0.123456789", "1E-12"]):
            await uow.connection.execute(
                insert(accounts).values(
                    id=uuid7(),
                    connection_id=conn.id,
                    user_id=conn.user_id,
                    provider="chase",
                    provider_account_id=str(i),
                    name="n",
                    type="checking",
                    currency="USD",
                    created_at=T0,
                    is_closed=False,
                    balance_current=Decimal(amount),
                )
            )
        await uow.commit()
    async with engine.connect() as c:
        got = (
            await c.execute(
                select(accounts.c.balance_current).order_by(accounts.c.provider_account_id)
            )
        ).scalars()
        assert [str(v) for v in got] == ["12.30", "0.123456789", "1E-12"]


async def test_unique_and_check_constraints(uow_factory: SqlAlchemyUnitOfWorkFactory) -> None:
    user, _ = await _seed(uow_factory)
    token = {
        "user_id": user.id,
        "token_hash": "abc",
        "created_at": T0,
        "expires_at": T0 + timedelta(hours=24),
    }
    async with uow_factory() as uow:
        await uow.connection.execute(
            insert(one_time_tokens).values(id=uuid7(), purpose="verify_email", **token)
        )
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(IntegrityError) as info:
            await uow.connection.execute(
                insert(one_time_tokens).values(id=uuid7(), purpose="reset_password", **token)
            )
        assert is_unique_violation(info.value)
    async with uow_factory() as uow:
        with pytest.raises(IntegrityError) as info:
            await uow.connection.execute(
                insert(one_time_tokens).values(
                    id=uuid7(), purpose="anything", **{**token, "token_hash": "other"}
                )
            )
        assert not is_unique_violation(info.value)
    key = {"user_id": user.id, "key": "k-1", "request_hash": "r", "created_at": T0}
    async with uow_factory() as uow:
        await uow.connection.execute(
            insert(idempotency_keys).values(
                id=uuid7(), response_status=201, response_body={"id": "x", "n": [1, 2]}, **key
            )
        )
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(IntegrityError):
            await uow.connection.execute(insert(idempotency_keys).values(id=uuid7(), **key))
    async with uow_factory() as uow:
        body = (await uow.connection.execute(select(idempotency_keys.c.response_body))).scalar()
        assert body == {"id": "x", "n": [1, 2]}


async def test_audit_rows_and_unique_seq(uow_factory: SqlAlchemyUnitOfWorkFactory) -> None:
    record = AuditRecord(
        id=uuid7(),
        occurred_at=T0,
        actor_id=None,
        action="user.login",
        outcome=AuditOutcome.FAILURE,
        object_type="user",
        object_id="42",
        ip="192.0.2.1",
        user_agent="curl",
        details={"reason": "bad_password"},
        prev_mac="",
        mac="f" * 64,
    )
    async with uow_factory() as uow:
        await uow.connection.execute(
            insert(audit_events).values(**mapping.audit_record_to_row(record, 1))
        )
        await uow.commit()
    async with uow_factory() as uow:
        row = (await uow.connection.execute(select(audit_events))).one()
        assert row.seq == 1
        assert mapping.audit_record_from_row(row._mapping) == record
        duplicate = AuditRecord(
            id=uuid7(), occurred_at=T0, actor_id=None, action="x", outcome=AuditOutcome.SUCCESS
        )
        with pytest.raises(IntegrityError):
            await uow.connection.execute(
                insert(audit_events).values(**mapping.audit_record_to_row(duplicate, 1))
            )


async def test_audit_events_are_append_only(uow_factory: SqlAlchemyUnitOfWorkFactory) -> None:
    record = AuditRecord(
        id=uuid7(), occurred_at=T0, actor_id=None, action="a", outcome=AuditOutcome.SUCCESS
    )
    async with uow_factory() as uow:
        await uow.connection.execute(
            insert(audit_events).values(**mapping.audit_record_to_row(record, 1))
        )
        await uow.commit()
    statements: list[Executable] = [
        audit_events.update().values(action="edited"),
        audit_events.delete(),
    ]
    if uow_factory.engine.dialect.name == "postgresql":
        statements.append(text("TRUNCATE audit_events"))
    for statement in statements:
        async with uow_factory() as uow:
            with pytest.raises(DBAPIError, match="append-only"):
                await uow.connection.execute(statement)
    async with uow_factory() as uow:
        rows = (await uow.connection.execute(select(audit_events.c.action))).scalars().all()
        assert rows == ["a"]


async def test_casbin_rule_standard_layout(uow_factory: SqlAlchemyUnitOfWorkFactory) -> None:
    # Later migrations may seed policies; only look at the rows written here.
    async with uow_factory() as uow:
        await uow.connection.execute(
            insert(casbin_rule),
            [
                {"ptype": "p", "v0": "test-role", "v1": "/api/v1/accounts", "v2": "GET"},
                {"ptype": "g", "v0": "test-role", "v1": "user", "v2": None},
            ],
        )
        await uow.commit()
    async with uow_factory() as uow:
        stmt = select(casbin_rule).where(casbin_rule.c.v0 == "test-role").order_by(casbin_rule.c.id)
        rows = (await uow.connection.execute(stmt)).all()
        assert [r.ptype for r in rows] == ["p", "g"]
        assert rows[0].id < rows[1].id
        assert rows[1].v2 is None


async def test_sqlite_engine_settings(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "deeper" / "dashtam.db"
    engine = create_engine(f"sqlite:///{db}")
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            busy = (await conn.execute(text("PRAGMA busy_timeout"))).scalar()
            assert busy == SQLITE_BUSY_TIMEOUT_MS
            assert (await conn.execute(select(func.sqlite_version()))).scalar()
        assert db.exists()
    finally:
        await engine.dispose()


def test_normalize_url_adds_async_drivers() -> None:
    assert normalize_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+asyncpg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+asyncpg"
    assert normalize_url("postgresql+asyncpg://u@h/db").database == "db"
    with pytest.raises(ValueError, match="unsupported"):
        normalize_url("mysql://u@h/db")


def test_indexes_cover_api_filters() -> None:
    def leading(table_indexes: object) -> set[str]:
        return {ix.columns[0].name for ix in table_indexes}  # type: ignore[attr-defined]

    assert "user_id" in leading(sessions.indexes)
    assert {"actor_id", "action", "occurred_at"} <= leading(audit_events.indexes)
    assert "user_id" in leading(accounts.indexes)
