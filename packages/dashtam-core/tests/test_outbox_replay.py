"""The outbox as the SSE replay source: ids, per-user reads, retention pruning, migration 0005."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from pydantic import ValidationError
from sqlalchemy import func, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.jobs.tasks import JobQueue
from dashtam_core.adapters.security.vault import CredentialVault
from dashtam_core.adapters.sqlalchemy import migrate
from dashtam_core.adapters.sqlalchemy.engine import SqlAlchemyUnitOfWorkFactory, create_engine
from dashtam_core.adapters.sqlalchemy.tables_data import outbox
from dashtam_core.application.container import Container
from dashtam_core.domain import events as ev
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import User
from dashtam_core.settings import CoreSettings
from dashtam_core.sync.outbox import (
    event_to_payload,
    events_after,
    mark_dispatched,
    pending_events,
    write_events,
)

NAMES = {"TransactionsChanged", "ConnectionCreated", "StatementImported"}
ZERO = UUID(int=0)


def _changed(user_id: UUID, n: int) -> ev.TransactionsChanged:
    return ev.TransactionsChanged(
        user_id=user_id, account_id=uuid7(), added=n, modified=0, removed=0
    )


async def _user(engine: AsyncEngine) -> UUID:
    user = User(id=uuid7(), email="o@example.com", password_hash="x", created_at=datetime.now(UTC))
    async with SqlAlchemyUnitOfWorkFactory(engine)() as uow:
        (await uow.users.add(user)).unwrap()
        await uow.commit()
    return user.id


async def test_rows_are_keyed_by_event_id_and_read_back_per_user_in_pages(
    engine: AsyncEngine,
) -> None:
    alice, bob = uuid7(), uuid7()
    mine = [_changed(alice, n) for n in range(5)]
    hidden = ev.CredentialsRefreshed(user_id=alice, connection_id=uuid7())  # not user-visible
    theirs = _changed(bob, 9)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        # The later events first, the earlier ones with a later created_at: reads and dispatch
        # follow the ids (the events' creation order), not the writes.
        await write_events(conn, [mine[3], hidden, theirs, mine[4]], now=now)
        await write_events(conn, mine[:3], now=now + timedelta(seconds=1))
    async with engine.connect() as conn:
        pending = await pending_events(conn, limit=100)
        assert [m.event for m in pending] == sorted(
            [*mine, hidden, theirs], key=lambda e: e.event_id
        )
        assert all(m.id == m.event.event_id for m in pending)
    async with engine.begin() as conn:
        await conn.execute(
            outbox.insert().values(
                id=uuid7(), event="RemovedEvent", payload={}, user_id=alice, created_at=now
            )
        )
    async with engine.connect() as conn:
        first, more = await events_after(conn, alice, ZERO, names=NAMES, limit=2)
        assert [m.event for m in first] == mine[:2]
        assert more
        rest, more = await events_after(conn, alice, first[-1].id, names=NAMES, limit=10)
        assert [m.event for m in rest] == mine[2:]
        assert not more
        # An unreadable row (an event class that no longer exists) is skipped, not fatal.
        rows, _ = await events_after(conn, alice, ZERO, names={*NAMES, "RemovedEvent"}, limit=10)
        assert [m.event for m in rows] == mine
        assert (await events_after(conn, alice, mine[-1].event_id, names=NAMES, limit=10)) == (
            [],
            False,
        )
        assert [
            m.event for m in (await events_after(conn, bob, ZERO, names=NAMES, limit=9))[0]
        ] == [theirs]
        assert await events_after(conn, alice, ZERO, names=set(), limit=10) == ([], False)


async def test_prune_keeps_dispatched_events_for_the_retention_window(
    engine: AsyncEngine, migrated_url: str, tmp_path: Path
) -> None:
    user_id = await _user(engine)
    now = datetime.now(UTC)
    old, recent, undispatched = (_changed(user_id, n) for n in range(3))
    async with engine.begin() as conn:
        await write_events(conn, [old, recent, undispatched], now=now - timedelta(days=20))
        await mark_dispatched(conn, [old.event_id], now=now - timedelta(days=10))
        await mark_dispatched(conn, [recent.event_id], now=now - timedelta(days=3))

    async def prune(days: int) -> set[UUID]:
        settings = CoreSettings(
            _env_file=None,
            database_url=migrated_url,
            secret_dir=tmp_path / "k",
            event_retention_days=days,
        )
        container = await Container.create(
            settings, engine=engine, migrate=False, vault=CredentialVault.generate()
        )
        queue = JobQueue(container)
        await queue.broker.startup()
        try:
            await queue.tasks.prune.kiq()
            await queue.broker.wait_all()  # type: ignore[attr-defined]
        finally:
            await queue.broker.shutdown()
            await container.aclose()
        async with engine.connect() as conn:
            return set((await conn.execute(select(outbox.c.id))).scalars())

    assert await prune(7) == {recent.event_id, undispatched.event_id}
    assert await prune(2) == {undispatched.event_id}  # never dispatched: kept until it is


async def test_an_unreadable_row_does_not_block_dispatch(
    engine: AsyncEngine, migrated_url: str, tmp_path: Path
) -> None:
    user_id = await _user(engine)
    before, after = _changed(user_id, 1), _changed(user_id, 2)
    broken = uuid7()
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await write_events(conn, [before], now=now)
        await conn.execute(
            outbox.insert().values(
                id=broken, event="RemovedEvent", payload={}, user_id=user_id, created_at=now
            )
        )
        await write_events(conn, [after], now=now)
    async with engine.connect() as conn:
        with pytest.raises(KeyError):  # without a place to report it, a read still refuses
            await pending_events(conn)
    settings = CoreSettings(_env_file=None, database_url=migrated_url, secret_dir=tmp_path / "k")
    container = await Container.create(
        settings, engine=engine, migrate=False, vault=CredentialVault.generate()
    )
    published: list[ev.DomainEvent] = []

    async def collect(event: ev.DomainEvent) -> None:
        published.append(event)

    container.bus.subscribe(ev.TransactionsChanged, collect)
    try:
        assert await container.dispatch_outbox() == []
        assert published == [before, after]  # the broken row between them blocked nothing
        async with engine.connect() as conn:
            assert await pending_events(conn) == []  # ... and is not retried forever
            kept = (await conn.execute(select(outbox.c.id).where(outbox.c.id == broken))).all()
        assert len(kept) == 1  # still there to inspect, until the retention window prunes it
    finally:
        await container.aclose()


def test_event_retention_setting_bounds() -> None:
    assert CoreSettings(_env_file=None).event_retention_days == 7
    with pytest.raises(ValidationError):
        CoreSettings(_env_file=None, event_retention_days=1)


async def test_migration_0005_rekeys_existing_rows_by_their_event_id(database_url: str) -> None:
    await migrate.upgrade(database_url, "0004_identity_security")
    events = [_changed(uuid7(), n) for n in range(3)]
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                outbox.insert(),
                [
                    {
                        "id": uuid7(),  # rows written before 0005 had an id of their own
                        "event": e.name,
                        "payload": event_to_payload(e),
                        "user_id": e.user_id,
                        "created_at": datetime.now(UTC),
                    }
                    for e in events
                ],
            )
            await conn.execute(update(outbox).values(dispatched_at=datetime.now(UTC)))
        await migrate.upgrade(database_url)
        async with engine.connect() as conn:
            ids = set((await conn.execute(select(outbox.c.id))).scalars())
            assert ids == {e.event_id for e in events}
            owner = events[0].user_id
            assert owner is not None
            found, _ = await events_after(conn, owner, ZERO, names=NAMES, limit=10)
            assert [m.event for m in found] == events[:1]
            indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("outbox"))
            assert {"name": "ix_outbox_user_id_id", "columns": ["user_id", "id"]} in [
                {"name": i["name"], "columns": i["column_names"]} for i in indexes
            ]
            assert (await conn.execute(select(func.count()).select_from(outbox))).scalar_one() == 3
        await migrate.downgrade(database_url, "0004_identity_security")
        async with engine.connect() as conn:
            indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("outbox"))
            assert "ix_outbox_user_id_id" not in {i["name"] for i in indexes}
    finally:
        await engine.dispose()
