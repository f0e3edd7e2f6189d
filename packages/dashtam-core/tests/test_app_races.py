"""Writers of one user at once, and balances that do not change (SQLite and PostgreSQL).

Every data writer of a user takes the user's advisory lock first (``lock_change_feed``), so two
syncs of different connections and an import of the same user run side by side without a
deadlock or a duplicate; a new account is inserted with ``ON CONFLICT DO NOTHING`` so even a
writer outside the lock cannot make ``upsert_accounts`` fail. A balance row is rewritten only
when an amount changes: an unchanged balance keeps the ``as_of`` it was first seen with.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest
import pytest_asyncio
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.sqlalchemy.tables import accounts, provider_connections
from dashtam_core.adapters.sqlalchemy.tables_data import balance_snapshots, transactions
from dashtam_core.application.connections import connect_api_key
from dashtam_core.application.container import Container
from dashtam_core.application.imports import import_statement
from dashtam_core.application.stages import upsert_accounts
from dashtam_core.application.syncing import sync_connection
from dashtam_core.domain.account import AccountType
from dashtam_core.domain.connection import ConnectionStatus, ProviderConnection
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.snapshot import BalanceSnapshot
from dashtam_core.ports.provider import ProviderAccount
from dashtam_core.sync.balances import balance_history, balance_snapshot, upsert_balance_snapshots
from dashtam_core.sync.runs import SyncStatus
from dashtam_core.testing.seeding import sandbox_container, seed_user
from dashtam_provider_alpaca.sandbox import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY

KEYS = {"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY}
CHASE = Path(__file__).parent / "fixtures" / "chase"
T0 = datetime(2025, 4, 30, 10, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def container(
    engine: AsyncEngine, migrated_url: str, tmp_path: Path
) -> AsyncIterator[Container]:
    async with sandbox_container(engine, migrated_url, tmp_path / "keys") as c:
        yield c


async def _user(c: Container) -> UUID:
    async with c.uow_factory() as uow:
        user = await seed_user(uow)
        await uow.commit()
    return user.id


async def _file_connection(c: Container, user_id: UUID) -> ProviderConnection:
    conn = ProviderConnection(
        id=uuid7(),
        user_id=user_id,
        provider="chase",
        status=ConnectionStatus.ACTIVE,
        created_at=datetime.now(UTC),
        alias=None,
    )
    async with c.uow_factory() as uow:
        await uow.connections.add(conn)
        await uow.commit()
    return conn


def _record(current: str, as_of: datetime) -> ProviderAccount:
    return ProviderAccount(
        provider_account_id="1234",
        name="Checking",
        type=AccountType.CHECKING,
        currency="USD",
        balance_current=Decimal(current),
        balance_available=Decimal(current),
        balance_as_of=as_of,
    )


async def _per_user(c: Container, user_id: UUID) -> tuple[int, int, int]:
    """(connections, accounts, live transactions) of a user."""
    a, t = accounts, transactions
    async with c.engine.connect() as db:
        conns = await db.scalar(
            select(func.count()).where(provider_connections.c.user_id == user_id)
        )
        accs = await db.scalar(select(func.count()).where(a.c.user_id == user_id))
        live = await db.scalar(
            select(func.count())
            .select_from(t.join(a, a.c.id == t.c.account_id))
            .where(a.c.user_id == user_id, t.c.removed_at.is_(None))
        )
    return int(conns or 0), int(accs or 0), int(live or 0)


async def test_two_syncs_and_an_import_of_one_user_at_once(container: Container) -> None:
    c = container
    alone = await _user(c)
    first = (await connect_api_key(c, alone, "alpaca", KEYS, alias="one")).unwrap()
    assert (await sync_connection(c, first.id)).unwrap().status == SyncStatus.SUCCEEDED
    _, accs_one, live_one = await _per_user(c, alone)
    assert accs_one >= 1
    assert live_one >= 1

    user_id = await _user(c)
    ids = [
        (await connect_api_key(c, user_id, "alpaca", KEYS, alias=alias)).unwrap().id
        for alias in ("one", "two")
    ]
    statement = (CHASE / "checking.qfx").read_bytes()
    one, two, imported = await asyncio.wait_for(
        asyncio.gather(
            sync_connection(c, ids[0]),
            sync_connection(c, ids[1]),
            import_statement(c, user_id, "checking.qfx", statement),
        ),
        timeout=60,
    )
    runs = [one.unwrap(), two.unwrap()]
    assert [r.status for r in runs] == [SyncStatus.SUCCEEDED] * 2, [r.error for r in runs]
    assert imported.unwrap().transactions_added == 25
    assert await _per_user(c, user_id) == (3, 2 * accs_one + 1, 2 * live_one + 25)


async def test_unchanged_balance_keeps_its_as_of(container: Container) -> None:
    c = container
    conn = await _file_connection(c, await _user(c))
    later, changed = T0 + timedelta(hours=2), T0 + timedelta(hours=3)
    steps = [("100.00", T0), ("100.00", later), ("101.50", changed), ("99.00", T0)]
    seen = []
    for current, as_of in steps:
        async with c.uow_factory() as uow:
            by_pid = await upsert_accounts(uow, conn, [_record(current, as_of)], source="t", now=T0)
            await uow.commit()
        async with c.uow_factory() as uow:
            account = await uow.accounts.get(by_pid["1234"].id)
            assert account is not None
            history = await balance_history(uow.connection, account.id)
        seen.append((account.balance_current, account.balance_as_of, len(history)))
        assert [(h.current, h.as_of) for h in history] == [
            (account.balance_current, account.balance_as_of)
        ]
    assert seen == [
        (Decimal("100.00"), T0, 1),
        (Decimal("100.00"), T0, 1),  # same amount, later stamp: nothing rewritten
        (Decimal("101.50"), changed, 1),  # the amount changed: rewritten
        (Decimal("101.50"), changed, 1),  # an older snapshot never wins
    ]


async def test_balance_history_gets_a_row_for_a_new_day(container: Container) -> None:
    c = container
    conn = await _file_connection(c, await _user(c))
    async with c.uow_factory() as uow:
        by_pid = await upsert_accounts(uow, conn, [_record("5", T0)], source="t", now=T0)
        account_id = by_pid["1234"].id
        next_day = T0 + timedelta(days=1)

        def snap(as_of: datetime, current: str) -> list[BalanceSnapshot]:
            return [
                balance_snapshot(
                    account_id,
                    as_of=as_of,
                    current=Decimal(current),
                    available=Decimal(current),
                    currency="USD",
                )
            ]

        store = upsert_balance_snapshots
        assert await store(uow.connection, snap(T0 + timedelta(hours=1), "5")) == 0
        assert await store(uow.connection, snap(next_day, "5")) == 1  # a new day: a new row
        assert await store(uow.connection, snap(next_day, "6")) == 0  # not newer: kept
        history = await balance_history(uow.connection, account_id)
        await uow.commit()
    assert [(h.date.isoformat(), h.as_of, h.current) for h in history] == [
        ("2025-04-30", T0, Decimal("5")),
        ("2025-05-01", next_day, Decimal("5")),
    ]


async def test_account_created_outside_the_lock_is_reused(
    container: Container, database_kind: str
) -> None:
    if database_kind != "postgresql":
        pytest.skip("SQLite has one writer at a time: no concurrent insert to race with")
    c = container
    conn = await _file_connection(c, await _user(c))
    outside_id = uuid7()
    async with c.engine.connect() as outside:
        await outside.execute(
            insert(accounts).values(
                id=outside_id,
                connection_id=conn.id,
                user_id=conn.user_id,
                provider="chase",
                provider_account_id="1234",
                name="Old name",
                type=AccountType.CHECKING.value,
                currency="USD",
                created_at=T0,
                is_closed=False,
            )
        )

        async def upsert() -> UUID:
            async with c.uow_factory() as uow:
                by_pid = await upsert_accounts(uow, conn, [_record("1", T0)], source="t", now=T0)
                await uow.commit()
            return by_pid["1234"].id

        task = asyncio.create_task(upsert())
        await asyncio.sleep(0.5)
        assert not task.done()  # its INSERT waits for the uncommitted row
        await outside.commit()
        assert await asyncio.wait_for(task, timeout=10) == outside_id
    async with c.uow_factory() as uow:
        stored = await uow.accounts.get(outside_id)
        count = await uow.connection.scalar(select(func.count()).select_from(balance_snapshots))
    assert stored is not None
    assert (stored.name, stored.balance_current, stored.balance_as_of) == (
        "Checking",
        Decimal("1"),
        T0,
    )
    assert count == 1
