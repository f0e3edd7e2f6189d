"""Run heartbeats: a dead worker's run is recovered after a short window, a live one never is.

A running sync stamps ``sync_runs.heartbeat_at`` from a background task; a ``running`` run not
heard from for ``STALE_AFTER`` (``coalesce(heartbeat_at, started_at)``) is failed as abandoned
by the next ``queue_sync`` (and by the scheduler's sweep, ``fail_stale_runs``). SQLite and
PostgreSQL, Alpaca simulator in-process. Intervals are passed in short; nothing waits for
minutes and nothing asserts on durations.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import pytest_asyncio
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.security.keys import generate_all_keys
from dashtam_core.adapters.sqlalchemy.tables import accounts, audit_events
from dashtam_core.adapters.sqlalchemy.tables_data import change_log, sync_runs, transactions
from dashtam_core.application.audit import SYSTEM, Origin
from dashtam_core.application.connections import connect_api_key
from dashtam_core.application.container import Container
from dashtam_core.application.syncing import (
    HEARTBEAT_TASK_PREFIX,
    STALE_AFTER,
    fail_stale_runs,
    queue_sync,
    run_sync,
    sync_connection,
)
from dashtam_core.domain.ids import uuid7
from dashtam_core.ports.provider import Credentials
from dashtam_core.sync.runs import ABANDONED_ERROR, SyncRun, SyncStatus, get_sync_run
from dashtam_core.testing.seeding import sandbox_container, seed_user
from dashtam_provider_alpaca.sandbox import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY

KEYS = {"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY}
FAST = timedelta(milliseconds=10)  # heartbeat interval of the runs under test
SHORT = timedelta(seconds=60)  # a stale window far longer than FAST, far shorter than an hour
EVERYTHING = timedelta(hours=-1)  # a "window" that every running run is outside of
#: Bound on polling loops (iterations of 10 ms): a hang fails the test instead of blocking it.
POLLS = 3000


@pytest_asyncio.fixture
async def container(
    engine: AsyncEngine, migrated_url: str, tmp_path: Path
) -> AsyncIterator[Container]:
    generate_all_keys(tmp_path / "k")  # the audit key: abandoned runs are audited
    async with sandbox_container(engine, migrated_url, tmp_path / "k") as c:
        yield c


@dataclass
class Gated:
    """The Alpaca provider, whose transactions fetch waits for the test's go-ahead."""

    inner: Any
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    crash: bool = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def fetch_transactions(
        self, credentials: Credentials, provider_account_id: str, start: date, end: date
    ) -> Any:
        self.entered.set()
        await self.release.wait()
        if self.crash:
            raise RuntimeError("provider mapping bug")
        return await self.inner.fetch_transactions(credentials, provider_account_id, start, end)


async def _connection(c: Container) -> UUID:
    async with c.uow_factory() as uow:
        user = await seed_user(uow)
        await uow.commit()
    return (await connect_api_key(c, user.id, "alpaca", KEYS)).unwrap().id


def _gate(c: Container) -> Gated:
    gated = Gated(c.provider("alpaca"))
    c.set_provider("alpaca", gated)
    return gated


async def _run(c: Container, sync_id: UUID) -> SyncRun:
    async with c.engine.connect() as db:
        run = await get_sync_run(db, sync_id)
    assert run is not None
    return run


async def _stored(c: Container, connection_id: UUID) -> tuple[int, int, int]:
    """(live transactions, distinct natural keys, change-log ``added``) of the connection
    (the Alpaca simulator has one account, so a natural key is its ``dedupe_key``)."""
    t = transactions
    mine = select(accounts.c.id).where(accounts.c.connection_id == connection_id)
    async with c.engine.connect() as db:
        live = (
            await db.execute(
                select(func.count(), func.count(func.distinct(t.c.dedupe_key))).where(
                    t.c.account_id.in_(mine), t.c.removed_at.is_(None)
                )
            )
        ).one()
        added = (
            await db.execute(
                select(func.count())
                .select_from(change_log)
                .where(change_log.c.account_id.in_(mine), change_log.c.kind == "added")
            )
        ).scalar_one()
    return int(live[0]), int(live[1]), int(added)


async def _dead_run(
    c: Container, connection_id: UUID, *, started: timedelta, heartbeat: timedelta | None
) -> UUID:
    """Insert a ``running`` run as a killed worker leaves it (ages relative to now)."""
    now = datetime.now(UTC)
    run_id = uuid7()
    async with c.engine.begin() as db:
        await db.execute(
            sync_runs.insert().values(
                id=run_id,
                connection_id=connection_id,
                status="running",
                counts={},
                created_at=now - started,
                started_at=now - started,
                heartbeat_at=None if heartbeat is None else now - heartbeat,
            )
        )
    return run_id


async def _abandon_audits(c: Container) -> list[dict[str, Any]]:
    async with c.engine.connect() as db:
        rows = await db.execute(
            select(audit_events.c.details).where(
                audit_events.c.action == "sync.finish", audit_events.c.outcome == "failure"
            )
        )
        return [dict(r.details) for r in rows]


def _heartbeat_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith(HEARTBEAT_TASK_PREFIX)]


async def _wait_for_beat(c: Container, sync_id: UUID, after: datetime) -> datetime:
    """Poll until the run's heartbeat is newer than ``after`` (bounded; no timing asserted)."""
    for _ in range(POLLS):
        beat = (await _run(c, sync_id)).heartbeat_at
        if beat is not None and beat > after:
            return beat
        await asyncio.sleep(0.01)
    pytest.fail("no heartbeat was written")


async def test_a_dead_workers_run_is_recovered_once_stale(container: Container) -> None:
    c = container
    cid = await _connection(c)
    first = (await sync_connection(c, cid)).unwrap()
    assert first.status == SyncStatus.SUCCEEDED
    complete = await _stored(c, cid)
    assert complete[0] == complete[1] == complete[2] > 0

    # A worker killed an hour into a long sync: its last heartbeat is 30 s old, inside the
    # window. It still counts as alive: a new request returns it and runs nothing.
    dead = await _dead_run(c, cid, started=timedelta(hours=1), heartbeat=timedelta(seconds=30))
    assert (await queue_sync(c, cid, origin=SYSTEM)).unwrap().id == dead
    blocked = (await sync_connection(c, cid)).unwrap()
    assert (blocked.id, blocked.status) == (dead, SyncStatus.RUNNING)
    assert await fail_stale_runs(c) == []
    assert await _abandon_audits(c) == []

    # Its heartbeats stopped a few intervals past the window: the next request fails it as
    # abandoned (audited as before) and a new run completes; nothing lost, nothing doubled.
    async with c.engine.begin() as db:
        await db.execute(
            update(sync_runs)
            .where(sync_runs.c.id == dead)
            .values(heartbeat_at=datetime.now(UTC) - STALE_AFTER - timedelta(seconds=1))
        )
    origin = Origin(uuid7(), "127.0.0.1", "test")
    fresh = (await queue_sync(c, cid, origin=origin)).unwrap()
    assert fresh.id != dead
    assert fresh.status == SyncStatus.QUEUED
    gone = await _run(c, dead)
    assert (gone.status, gone.error) == (SyncStatus.FAILED, ABANDONED_ERROR)
    assert gone.finished_at is not None
    assert await _abandon_audits(c) == [
        {"sync_id": str(dead), "status": "failed", "reason": "abandoned"}
    ]
    rerun = (await run_sync(c, fresh.id, heartbeat_every=FAST)).unwrap()
    assert rerun.status == SyncStatus.SUCCEEDED, rerun.error
    assert rerun.counts["transactions_added"] == 0
    assert await _stored(c, cid) == complete


async def test_a_run_that_never_beat_falls_back_to_started_at(container: Container) -> None:
    c = container
    cid = await _connection(c)
    # Killed before its first heartbeat, a minute ago: alive for the window...
    recent = await _dead_run(c, cid, started=timedelta(seconds=30), heartbeat=None)
    assert await fail_stale_runs(c, stale_after=SHORT) == []
    assert (await queue_sync(c, cid, stale_after=SHORT)).unwrap().id == recent
    # ...and abandoned once its start is older than the window.
    async with c.engine.begin() as db:
        await db.execute(
            update(sync_runs)
            .where(sync_runs.c.id == recent)
            .values(started_at=datetime.now(UTC) - SHORT - timedelta(seconds=1))
        )
    assert await fail_stale_runs(c, stale_after=SHORT) == [cid]
    assert (await _run(c, recent)).status == SyncStatus.FAILED
    assert await fail_stale_runs(c, stale_after=SHORT) == []  # failed once, not again
    after = (await sync_connection(c, cid, stale_after=SHORT)).unwrap()
    assert after.status == SyncStatus.SUCCEEDED, after.error


@pytest.mark.parametrize("beating", [True, False], ids=["heartbeats", "no-heartbeats"])
async def test_a_long_healthy_run_is_not_failed(container: Container, beating: bool) -> None:
    c = container
    cid = await _connection(c)
    gated = _gate(c)
    every = FAST if beating else timedelta(hours=1)
    task = asyncio.create_task(sync_connection(c, cid, heartbeat_every=every))
    await gated.entered.wait()
    async with c.engine.connect() as db:
        active = (
            await db.execute(select(sync_runs.c.id).where(sync_runs.c.status == "running"))
        ).scalar_one()
    # The run has been going for an hour (started_at far outside the window).
    backdated = datetime.now(UTC) - timedelta(hours=1)
    async with c.engine.begin() as db:
        await db.execute(
            update(sync_runs).where(sync_runs.c.id == active).values(started_at=backdated)
        )
    if beating:
        await _wait_for_beat(c, active, datetime.now(UTC))
        assert await fail_stale_runs(c, stale_after=SHORT) == []
        assert (await queue_sync(c, cid, stale_after=SHORT)).unwrap().id == active
        assert (await _run(c, active)).status == SyncStatus.RUNNING
    else:  # the old rule: a long sync without heartbeats is wrongly taken for dead
        assert (await queue_sync(c, cid, stale_after=SHORT)).unwrap().id != active
        assert (await _run(c, active)).status == SyncStatus.FAILED
    gated.release.set()
    done = (await task).unwrap()
    assert done.id == active
    if beating:
        assert done.status == SyncStatus.SUCCEEDED, done.error
        assert done.heartbeat_at is not None
        assert done.heartbeat_at > backdated
    else:
        assert (done.status, done.error) == (SyncStatus.FAILED, ABANDONED_ERROR)
    assert _heartbeat_tasks() == []
    live, distinct, added = await _stored(c, cid)
    assert live == distinct == added > 0


async def test_the_heartbeat_ends_with_the_run_whatever_the_outcome(
    container: Container,
) -> None:
    c = container
    cid = await _connection(c)
    gated = _gate(c)

    # A crash inside a stage: the run is failed, the error propagates, no heartbeat is left.
    gated.crash = True
    crashing = asyncio.create_task(sync_connection(c, cid, heartbeat_every=FAST))
    await gated.entered.wait()
    assert len(_heartbeat_tasks()) == 1
    run_id = (await queue_sync(c, cid)).unwrap().id
    await _wait_for_beat(c, run_id, datetime.now(UTC) - timedelta(hours=1))
    gated.release.set()
    with pytest.raises(RuntimeError, match="provider mapping bug"):
        await crashing
    assert _heartbeat_tasks() == []
    assert (await _run(c, run_id)).status == SyncStatus.FAILED

    # Cancelled (a worker shutting down): the heartbeat goes with it; the run stays running
    # and is recovered like a killed worker's once its heartbeats are old enough.
    gated.crash = False
    gated.entered.clear()
    gated.release.clear()
    cancelled = asyncio.create_task(sync_connection(c, cid, heartbeat_every=FAST))
    await gated.entered.wait()
    second = (await queue_sync(c, cid)).unwrap()
    assert second.status == SyncStatus.RUNNING
    assert len(_heartbeat_tasks()) == 1
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert _heartbeat_tasks() == []
    assert (await _run(c, second.id)).status == SyncStatus.RUNNING

    # A run failed as abandoned under a live worker (a stall longer than the window): its
    # heartbeat stops by itself, the worker's finish changes nothing, the next sync completes.
    gated.release.set()
    assert await fail_stale_runs(c, stale_after=EVERYTHING) == [cid]
    gated.entered.clear()
    gated.release.clear()
    stalled = asyncio.create_task(sync_connection(c, cid, heartbeat_every=FAST))
    await gated.entered.wait()
    third = (await queue_sync(c, cid)).unwrap()
    await _wait_for_beat(c, third.id, datetime.now(UTC) - timedelta(hours=1))
    assert await fail_stale_runs(c, stale_after=EVERYTHING) == [cid]
    for _ in range(POLLS):
        if not _heartbeat_tasks():
            break
        await asyncio.sleep(0.01)
    assert _heartbeat_tasks() == []  # it saw the run was no longer running and stopped
    gated.release.set()
    ended = (await stalled).unwrap()
    assert (ended.id, ended.status, ended.error) == (third.id, SyncStatus.FAILED, ABANDONED_ERROR)
    final = (await sync_connection(c, cid, heartbeat_every=FAST)).unwrap()
    assert final.status == SyncStatus.SUCCEEDED, final.error
    live, distinct, added = await _stored(c, cid)
    assert live == distinct == added > 0
