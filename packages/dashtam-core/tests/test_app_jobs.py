"""Background jobs: in-memory broker (embedded default) and the Redis broker with a worker."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.jobs.broker import build_broker
from dashtam_core.adapters.jobs.tasks import JobQueue
from dashtam_core.adapters.sqlalchemy.tables import oauth_states
from dashtam_core.adapters.sqlalchemy.tables_data import outbox, sync_runs
from dashtam_core.application.connections import connect_api_key, start_oauth
from dashtam_core.application.container import Container
from dashtam_core.application.syncing import STALE_AFTER, queue_sync
from dashtam_core.domain.connection import ProviderConnection
from dashtam_core.domain.events import DomainEvent, SyncFinished, TransactionsChanged
from dashtam_core.domain.ids import uuid7
from dashtam_core.sync.runs import SyncStatus, get_sync_run
from dashtam_core.testing.databases import services_required
from dashtam_core.testing.seeding import sandbox_container, seed_user
from dashtam_provider_alpaca.sandbox import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY

KEYS = {"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY}


@pytest_asyncio.fixture
async def container(
    engine: AsyncEngine, migrated_url: str, tmp_path: Path
) -> AsyncIterator[Container]:
    async with sandbox_container(engine, migrated_url, tmp_path / "k") as c:
        yield c


async def _connection(c: Container) -> ProviderConnection:
    async with c.uow_factory() as uow:
        user = await seed_user(uow, email="j@example.com")
        await uow.commit()
    return (await connect_api_key(c, user.id, "alpaca", KEYS)).unwrap()


async def _status(c: Container, sync_id: object) -> SyncStatus:
    async with c.engine.connect() as db:
        run = await get_sync_run(db, sync_id)  # type: ignore[arg-type]
    assert run is not None
    return run.status


async def test_in_process_jobs_sync_once_and_dispatch(container: Container) -> None:
    conn = await _connection(container)
    queue = JobQueue(container)
    await queue.broker.startup()
    seen: list[DomainEvent] = []

    async def collect(event: DomainEvent) -> None:
        seen.append(event)

    container.bus.subscribe(TransactionsChanged, collect)
    container.bus.subscribe(SyncFinished, collect)
    try:
        first = (await queue_sync(container, conn.id)).unwrap()
        second = (await queue_sync(container, conn.id)).unwrap()
        assert first.id == second.id  # a sync requested while one is queued: the same one
        # Two workers handed the same job: one runs it, the other finds it started.
        jobs = [await queue.tasks.sync_connection.kiq(str(first.id)) for _ in range(2)]
        await queue.broker.wait_all()  # type: ignore[attr-defined]
        results = [(await j.wait_result()).return_value for j in jobs]
        assert {r["id"] for r in results} == {str(first.id)}
        assert await _status(container, first.id) == SyncStatus.SUCCEEDED
        async with container.engine.connect() as db:
            runs = (await db.execute(select(func.count()).select_from(sync_runs))).scalar_one()
        assert runs == 1
        via_queue = (await queue.enqueue_sync(conn.id)).unwrap()
        await queue.broker.wait_all()  # type: ignore[attr-defined]
        assert await _status(container, via_queue.id) == SyncStatus.SUCCEEDED

        # Each sync dispatched its own data events before announcing that it finished.
        kinds = [type(e) for e in seen]
        assert kinds.count(TransactionsChanged) == 1
        assert kinds.index(TransactionsChanged) < kinds.index(SyncFinished)
        dispatched = await queue.tasks.dispatch_outbox.kiq()
        await queue.broker.wait_all()  # type: ignore[attr-defined]
        # Left for the periodic dispatcher: only what came before the syncs (the connection's
        # creation), none of the runs' data events.
        assert (await dispatched.wait_result()).return_value == 1
        assert [type(e) for e in seen].count(TransactionsChanged) == 1
        async with container.engine.connect() as db:
            left = (
                await db.execute(
                    select(func.count()).select_from(outbox).where(outbox.c.dispatched_at.is_(None))
                )
            ).scalar_one()
        assert left == 0
    finally:
        await queue.broker.shutdown()


async def test_scheduler_recovers_stale_runs_and_prunes(container: Container) -> None:
    conn = await _connection(container)
    queue = JobQueue(container)
    await queue.broker.startup()
    try:
        queued = (await queue.enqueue_sync(conn.id)).unwrap()
        await queue.broker.wait_all()  # type: ignore[attr-defined]
        # Simulate a worker killed mid-sync: a run left "running" for an hour.
        stale = uuid7()
        async with container.engine.begin() as db:
            await db.execute(
                sync_runs.insert().values(
                    id=stale,
                    connection_id=conn.id,
                    status="running",
                    counts={},
                    created_at=datetime.now(UTC) - timedelta(hours=1),
                    started_at=datetime.now(UTC) - timedelta(hours=1),
                )
            )
            await db.execute(
                update(sync_runs)
                .where(sync_runs.c.id == queued.id)
                .values(finished_at=datetime.now(UTC) - timedelta(days=1))
            )
        from dashtam_core.adapters.sqlalchemy.tables import provider_connections

        async with container.engine.begin() as db:
            await db.execute(
                update(provider_connections)
                .where(provider_connections.c.id == conn.id)
                .values(last_synced_at=datetime.now(UTC) - timedelta(days=1))
            )
        kicked = await queue.tasks.scheduled_syncs.kiq()
        await queue.broker.wait_all()  # type: ignore[attr-defined]
        assert (await kicked.wait_result()).return_value == 1
        await queue.broker.wait_all()  # type: ignore[attr-defined]
        assert await _status(container, stale) == SyncStatus.FAILED
        async with container.engine.connect() as db:
            statuses = sorted((await db.execute(select(sync_runs.c.status))).scalars().all())
        assert statuses == ["failed", "succeeded", "succeeded"]  # stale failed, then re-run

        # prune: an OAuth state expired two days ago goes away
        async with container.uow_factory() as uow:
            user = (await uow.connections.get(conn.id)).user_id  # type: ignore[union-attr]
        (await start_oauth(container, user, "schwab")).unwrap()
        async with container.engine.begin() as db:
            await db.execute(
                update(oauth_states).values(expires_at=datetime.now(UTC) - timedelta(days=2))
            )
        pruned = await queue.tasks.prune.kiq()
        await queue.broker.wait_all()  # type: ignore[attr-defined]
        assert (await pruned.wait_result()).return_value >= 1
        async with container.engine.connect() as db:
            assert (
                await db.execute(select(func.count()).select_from(oauth_states))
            ).scalar_one() == 0
    finally:
        await queue.broker.shutdown()


async def test_scheduler_fails_runs_whose_heartbeats_stopped(container: Container) -> None:
    """A dead worker's run is failed by the scheduler's sweep even when its connection is not
    due, and the connection is re-synced; a run whose heartbeats keep coming is left alone."""
    dead_conn = await _connection(container)
    async with container.uow_factory() as uow:
        other_user = await seed_user(uow)
        await uow.commit()
    live_conn = (await connect_api_key(container, other_user.id, "alpaca", KEYS)).unwrap()
    queue = JobQueue(container, heartbeat_every=timedelta(milliseconds=10))
    await queue.broker.startup()
    try:
        for cid in (dead_conn.id, live_conn.id):  # both synced just now: neither is due
            (await queue.enqueue_sync(cid)).unwrap()
        await queue.broker.wait_all()  # type: ignore[attr-defined]
        now = datetime.now(UTC)
        dead, live = uuid7(), uuid7()
        async with container.engine.begin() as db:
            for run_id, cid, beat in (
                (dead, dead_conn.id, now - STALE_AFTER - timedelta(seconds=1)),
                (live, live_conn.id, now),
            ):
                await db.execute(
                    sync_runs.insert().values(
                        id=run_id,
                        connection_id=cid,
                        status="running",
                        counts={},
                        created_at=now - timedelta(hours=1),
                        started_at=now - timedelta(hours=1),
                        heartbeat_at=beat,
                    )
                )
        kicked = await queue.tasks.scheduled_syncs.kiq()
        await queue.broker.wait_all()  # type: ignore[attr-defined]
        assert (await kicked.wait_result()).return_value == 1
        await queue.broker.wait_all()  # type: ignore[attr-defined]
        assert await _status(container, dead) == SyncStatus.FAILED
        assert await _status(container, live) == SyncStatus.RUNNING
        async with container.engine.connect() as db:
            rows = (
                await db.execute(
                    select(sync_runs.c.status, sync_runs.c.counts)
                    .where(sync_runs.c.connection_id == dead_conn.id)
                    .order_by(sync_runs.c.created_at)
                )
            ).all()
        assert [r.status for r in rows] == ["failed", "succeeded", "succeeded"]
        assert rows[-1].counts["transactions_added"] == 0  # the re-sync duplicated nothing
    finally:
        await queue.broker.shutdown()


def _redis_url() -> str:
    url = os.environ.get("DASHTAM_TEST_REDIS_URL", "").strip()
    if url:
        return url
    if services_required():
        pytest.fail("Redis not configured: set DASHTAM_TEST_REDIS_URL")
    pytest.skip("Redis not configured: set DASHTAM_TEST_REDIS_URL")


async def test_redis_worker_runs_a_queued_sync(container: Container) -> None:
    url = _redis_url()
    conn = await _connection(container)
    queue_name = f"dashtam:test:{secrets.token_hex(4)}"
    client = JobQueue(
        container, build_broker(container.settings, redis_url=url, queue_name=queue_name)
    )
    worker = JobQueue(
        container, build_broker(container.settings, redis_url=url, queue_name=queue_name)
    )
    await client.broker.startup()
    running = asyncio.create_task(worker.run_worker(max_async_tasks=2))
    try:
        run = (await client.enqueue_sync(conn.id)).unwrap()
        for _ in range(200):
            if await _status(container, run.id) == SyncStatus.SUCCEEDED:
                break
            await asyncio.sleep(0.05)
        assert await _status(container, run.id) == SyncStatus.SUCCEEDED
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        await client.broker.shutdown()
