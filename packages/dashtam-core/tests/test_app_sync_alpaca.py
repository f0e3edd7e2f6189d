"""Connect Alpaca against its sandbox, sync, re-sync: figures to the cent, nothing duplicated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.sqlalchemy.tables import provider_connections
from dashtam_core.adapters.sqlalchemy.tables_data import (
    change_log,
    holdings,
    outbox,
    raw_payloads,
    transactions,
)
from dashtam_core.application.connections import connect_api_key, disconnect
from dashtam_core.application.container import Container
from dashtam_core.application.syncing import sync_connection
from dashtam_core.domain.connection import ConnectionStatus
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import User
from dashtam_core.errors import InvalidCredentials
from dashtam_core.result import Err, Ok
from dashtam_core.sync.runs import SyncStatus
from dashtam_core.testing.seeding import sandbox_container
from dashtam_provider_alpaca.sandbox import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY

KEYS = {"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY}


@pytest_asyncio.fixture
async def container(
    engine: AsyncEngine, migrated_url: str, tmp_path: Path
) -> AsyncIterator[Container]:
    async with sandbox_container(engine, migrated_url, tmp_path / "keys") as c:
        yield c


async def _user(c: Container) -> User:
    user = User(
        id=uuid7(),
        email=f"{uuid7().hex}@example.com",
        password_hash="x",
        created_at=datetime.now(UTC),
    )
    async with c.uow_factory() as uow:
        (await uow.users.add(user)).unwrap()
        await uow.commit()
    return user


async def _count(c: Container, table: object) -> int:
    async with c.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def test_bad_keys_store_nothing(container: Container) -> None:
    user = await _user(container)
    result = await connect_api_key(
        container, user.id, "alpaca", {"api_key_id": "PKWRONG", "secret_key": "nope"}
    )
    assert isinstance(result, Err)
    assert isinstance(result.error, InvalidCredentials)
    assert await _count(container, provider_connections) == 0


async def test_connect_sync_resync(container: Container) -> None:
    user = await _user(container)
    connected = await connect_api_key(
        container, user.id, "alpaca", KEYS, options={"environment": "paper"}, alias="paper"
    )
    assert isinstance(connected, Ok)
    conn = connected.value
    assert conn.status == ConnectionStatus.ACTIVE
    assert conn.credentials_encrypted is not None
    assert SANDBOX_SECRET_KEY.encode() not in conn.credentials_encrypted

    first = (await sync_connection(container, conn.id)).unwrap()
    assert first.status == SyncStatus.SUCCEEDED, first.error
    assert first.counts["accounts"] == 1
    assert first.counts["transactions_added"] == 11
    assert first.counts["holdings"] == 3

    async with container.uow_factory() as uow:
        (account,) = await uow.accounts.list_for_user(user.id)
        stored = await uow.connections.get(conn.id)
    assert account.balance_current == Decimal("13272.09")
    assert account.balance_available == Decimal("2610.24")
    assert stored is not None
    assert stored.last_synced_at is not None

    async with container.engine.connect() as db:
        amounts = (
            await db.execute(
                select(transactions.c.amount).where(transactions.c.removed_at.is_(None))
            )
        ).scalars()
        total = sum(amounts, Decimal(0))
        qty = dict((await db.execute(select(holdings.c.symbol, holdings.c.quantity))).all())
    # The 11 activities (deposits, fills, fees, dividends) sum to the account's cash.
    assert total == Decimal("2610.24")
    assert qty == {"AAPL": Decimal("15"), "SPY": Decimal("8"), "BTCUSD": Decimal("0.04")}

    logs, events, raws = (
        await _count(container, change_log),
        await _count(container, outbox),
        await _count(container, raw_payloads),
    )
    assert raws >= 3
    second = (await sync_connection(container, conn.id)).unwrap()
    assert second.status == SyncStatus.SUCCEEDED, second.error
    assert second.counts["transactions_added"] == 0
    assert second.counts["transactions_modified"] == 0
    assert second.counts["transactions_removed"] == 0
    assert await _count(container, change_log) == logs
    assert await _count(container, outbox) == events
    assert await _count(container, transactions) == 11


async def test_disconnect_destroys_credentials_keeps_data(container: Container) -> None:
    user = await _user(container)
    conn = (await connect_api_key(container, user.id, "alpaca", KEYS)).unwrap()
    (await sync_connection(container, conn.id)).unwrap()
    gone = (await disconnect(container, user.id, conn.id)).unwrap()
    assert gone.status == ConnectionStatus.DISCONNECTED
    async with container.uow_factory() as uow:
        stored = await uow.connections.get(conn.id)
        accounts = await uow.accounts.list_for_user(user.id)
    assert stored is not None
    assert stored.credentials_encrypted is None
    assert len(accounts) == 1
    assert await _count(container, transactions) == 11
    again = await sync_connection(container, conn.id)
    assert isinstance(again, Err)
