"""Sync processes killed with SIGKILL at random points, and sync processes racing each other:
nothing lost, nothing duplicated (SQLite and PostgreSQL; no Redis: ``dashtam sync``-style runs).

Every child is ``robust_support/sync_once.py`` syncing against the Alpaca simulator (uvicorn on
loopback in this test's event loop, 3,000 activities in pages of 100).

* SIGKILL: each seed gets a connection of its own; its child is killed after a random delay
  drawn over the duration of a full sync measured in the same run. After every kill the stored
  copy must consist of complete units only (sync.md rule 2): all of the account's transactions or
  none, the watermark only with its rows, one change-log ``added`` per stored row, one
  ``TransactionsChanged`` event per stored unit. The orphaned ``running`` run keeps blocking a
  second sync until it has sent no heartbeat for ``STALE_AFTER`` (its ``started_at`` and
  ``heartbeat_at`` backdated here), then the next sync fails it as abandoned and completes the
  copy, which must then equal the sandbox's truth.
* Racing: three processes sync one connection while a fourth syncs another connection of the
  same user; every process ends cleanly and both copies equal the truth.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest
import pytest_asyncio
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_api_test_support import uvicorn_server
from dashtam_core.adapters.security.vault import CredentialVault
from dashtam_core.adapters.sqlalchemy.tables import accounts
from dashtam_core.adapters.sqlalchemy.tables_data import (
    change_log,
    outbox,
    sync_runs,
    sync_watermarks,
    transactions,
)
from dashtam_core.application.connections import connect_api_key
from dashtam_core.application.container import Container
from dashtam_core.application.credentials import unseal_credentials
from dashtam_core.application.syncing import STALE_AFTER, queue_sync, sync_connection
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import User
from dashtam_core.ports.provider import TransactionsProvider
from dashtam_core.settings import CoreSettings
from dashtam_core.sync.runs import SyncStatus, active_sync_run, get_sync_run
from dashtam_provider_alpaca.sandbox import (
    SANDBOX_API_KEY_ID,
    SANDBOX_SECRET_KEY,
    SandboxConfig,
    create_sandbox_app,
)

pytestmark = pytest.mark.slow

EXTRA = 2989  # + 11 fixture activities = 3,000 transactions, 30 pages of 100
EXPECTED = EXTRA + 11
HISTORY_DAYS = 20 * 365
SEEDS = (11, 23, 37, 41)
KEYS = {"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY}
SCRIPT = Path(__file__).parent / "robust_support" / "sync_once.py"
#: Bytecode cache shared by the child processes across runs (kept out of the source tree).
PYCACHE = Path(tempfile.gettempdir()) / "dashtam-robust-pycache"


@pytest_asyncio.fixture
async def alpaca_url() -> AsyncIterator[str]:
    app = create_sandbox_app(SandboxConfig(extra_activities=EXTRA))
    async with uvicorn_server(app) as base:
        yield base


@dataclass
class Child:
    """A ``sync_once.py`` process waiting for its go line."""

    proc: asyncio.subprocess.Process
    connection_id: UUID

    @classmethod
    async def start(cls, env: dict[str, str], cwd: Path, connection_id: UUID) -> Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            str(connection_id),
            env=env,
            cwd=cwd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc, connection_id)

    async def ready(self) -> None:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout=60)
        assert line.strip() == b"ready", line

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")

    async def result(self) -> bytes:
        assert self.proc.stdout is not None
        return await asyncio.wait_for(self.proc.stdout.readline(), timeout=60)

    async def finish(self) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout=60)

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()


async def _user_connection(c: Container, user_id: UUID | None = None) -> UUID:
    """A new Alpaca connection (of a new user unless ``user_id`` is given)."""
    if user_id is None:
        user = User(
            id=uuid7(),
            email=f"{uuid7().hex}@example.com",
            password_hash="x",
            created_at=datetime.now(UTC),
        )
        async with c.uow_factory() as uow:
            (await uow.users.add(user)).unwrap()
            await uow.commit()
        user_id = user.id
    return (await connect_api_key(c, user_id, "alpaca", KEYS)).unwrap().id


@dataclass
class Rig:
    """The test's container, and the environment and children of the sync processes."""

    container: Container
    env: dict[str, str]
    cwd: Path
    children: list[Child]

    async def child(self, connection_id: UUID) -> Child:
        started = await Child.start(self.env, self.cwd, connection_id)
        self.children.append(started)
        return started


@pytest_asyncio.fixture
async def rig(
    engine: AsyncEngine, migrated_url: str, alpaca_url: str, tmp_path: Path
) -> AsyncIterator[Rig]:
    vault = CredentialVault.generate()
    settings = CoreSettings(
        database_url=migrated_url, sync_history_days=HISTORY_DAYS, _env_file=None
    )
    overrides = {"paper_base_url": alpaca_url, "live_base_url": alpaca_url}
    c = await Container.create(
        settings,
        engine=engine,
        migrate=False,
        vault=vault,
        provider_settings_overrides={"alpaca": overrides},
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DASHTAM_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env |= {
        "PYTHONPYCACHEPREFIX": str(PYCACHE),
        "DASHTAM_DATABASE_URL": migrated_url,
        "DASHTAM_VAULT_KEYS": vault.to_json().decode(),
        "DASHTAM_SECRET_DIR": str(tmp_path / "keys"),
        "DASHTAM_SYNC_HISTORY_DAYS": str(HISTORY_DAYS),
        "DASHTAM_ALPACA_PAPER_BASE_URL": alpaca_url,
        "DASHTAM_ALPACA_LIVE_BASE_URL": alpaca_url,
    }
    r = Rig(c, env, tmp_path, [])
    try:
        yield r
    finally:
        for child in r.children:
            await child.kill()
        await c.aclose()


@dataclass(frozen=True)
class Stored:
    rows: int  # every transaction row (live or removed)
    live: int
    keys: int  # distinct dedupe keys among live rows
    total: Decimal
    added: int  # change-log 'added' entries
    added_distinct: int  # distinct transactions those entries name
    changed_events: int  # TransactionsChanged events in the outbox
    watermarks: int


async def _stored(c: Container, connection_id: UUID) -> Stored:
    t, a = transactions, accounts
    mine = select(a.c.id).where(a.c.connection_id == connection_id).scalar_subquery()
    async with c.engine.connect() as db:
        account_ids = (
            (await db.execute(select(a.c.id).where(a.c.connection_id == connection_id)))
            .scalars()
            .all()
        )
        rows = (await db.execute(select(func.count()).where(t.c.account_id.in_(mine)))).scalar_one()
        live = (
            await db.execute(
                select(t.c.dedupe_key, t.c.amount).where(
                    t.c.account_id.in_(mine), t.c.removed_at.is_(None)
                )
            )
        ).all()
        added = (
            await db.execute(
                select(func.count(), func.count(change_log.c.transaction_id.distinct())).where(
                    change_log.c.account_id.in_(mine), change_log.c.kind == "added"
                )
            )
        ).one()
        payloads = (
            (
                await db.execute(
                    select(outbox.c.payload).where(outbox.c.event == "TransactionsChanged")
                )
            )
            .scalars()
            .all()
        )
        marks = (
            await db.execute(select(func.count()).where(sync_watermarks.c.account_id.in_(mine)))
        ).scalar_one()
    ids = {str(x) for x in account_ids}
    return Stored(
        rows=int(rows),
        live=len(live),
        keys=len({k for k, _ in live}),
        total=sum((amount for _, amount in live), Decimal(0)),
        added=int(added[0]),
        added_distinct=int(added[1]),
        changed_events=sum(1 for p in payloads if p.get("account_id") in ids),
        watermarks=int(marks),
    )


async def _truth(c: Container, connection_id: UUID) -> tuple[int, Decimal]:
    provider = c.provider("alpaca")
    assert isinstance(provider, TransactionsProvider)
    async with c.uow_factory() as uow:
        conn = await uow.connections.get(connection_id)
        (account,) = await uow.accounts.list_for_connection(connection_id)
    assert conn is not None
    creds = unseal_credentials(c, conn).unwrap()
    end = datetime.now(UTC).date()
    fetched = await provider.fetch_transactions(
        creds, account.provider_account_id, end - timedelta(days=HISTORY_DAYS), end
    )
    records = fetched.unwrap().records
    assert len({r.dedupe_key for r in records}) == len(records)
    return len(records), sum((r.amount for r in records), Decimal(0))


def _complete_units_only(s: Stored) -> None:
    """The invariants after a kill: all of the account's transaction unit or none of it."""
    assert s.live == s.keys == s.rows  # nothing duplicated, nothing half-removed
    assert s.added == s.added_distinct == s.rows  # one 'added' per stored row
    assert s.live in (0, EXPECTED), s
    assert s.watermarks == (1 if s.live else 0), s  # the watermark committed with its rows
    assert s.changed_events == (1 if s.live else 0), s


async def test_sigkill_at_random_points_then_rerun(rig: Rig) -> None:
    c = rig.container
    reference = await _user_connection(c)
    children = [await rig.child(reference)]
    for _ in SEEDS:
        children.append(await rig.child(await _user_connection(c)))
    await asyncio.gather(*(child.ready() for child in children))

    # A full, unkilled sync in a child process: the baseline and the kill-delay range.
    began = time.monotonic()
    children[0].go()
    assert b'"succeeded"' in await children[0].result()
    duration = time.monotonic() - began
    assert await children[0].finish() == 0
    expected_count, expected_total = await _truth(c, reference)
    assert expected_count == EXPECTED
    baseline = await _stored(c, reference)
    assert (baseline.live, baseline.total) == (expected_count, expected_total)
    _complete_units_only(baseline)

    landed: list[tuple[float, str, int]] = []
    for seed, child in zip(SEEDS, children[1:], strict=True):
        delay = random.Random(seed).uniform(0.0, duration)
        child.go()
        await asyncio.sleep(delay)
        await child.kill()
        cid = child.connection_id
        after_kill = await _stored(c, cid)
        _complete_units_only(after_kill)
        async with c.engine.connect() as db:
            orphan = await active_sync_run(db, cid)
        landed.append((round(delay, 3), str(orphan.status) if orphan else "none", after_kill.live))
        if orphan is not None and orphan.status == SyncStatus.RUNNING:
            # A second sync while the dead one looks alive returns it and runs nothing...
            assert (await queue_sync(c, cid)).unwrap().id == orphan.id
            blocked = (await sync_connection(c, cid)).unwrap()
            assert (blocked.id, blocked.status) == (orphan.id, SyncStatus.RUNNING)
            assert await _stored(c, cid) == after_kill
            # ...until it is stale (its heartbeats died with the process; the window is
            # backdated here rather than waited for); then it is failed as abandoned and a
            # new run completes.
            silent_since = datetime.now(UTC) - STALE_AFTER - timedelta(seconds=1)
            async with c.engine.begin() as db:
                await db.execute(
                    update(sync_runs)
                    .where(sync_runs.c.id == orphan.id)
                    .values(started_at=silent_since, heartbeat_at=silent_since)
                )
        rerun = (await sync_connection(c, cid)).unwrap()
        assert rerun.status == SyncStatus.SUCCEEDED, rerun.error
        if orphan is not None and orphan.status == SyncStatus.RUNNING:
            assert rerun.id != orphan.id
            async with c.engine.connect() as db:
                dead = await get_sync_run(db, orphan.id)
            assert dead is not None
            assert dead.status == SyncStatus.FAILED
        final = await _stored(c, cid)
        _complete_units_only(final)
        assert (final.live, final.total) == (expected_count, expected_total), landed
        again = (await sync_connection(c, cid)).unwrap()
        assert again.counts["transactions_added"] == 0
        assert await _stored(c, cid) == final
    # At least one kill must have hit a sync in flight, or the test proved nothing.
    assert any(status == "running" for _, status, _ in landed), (duration, landed)


async def test_concurrent_sync_processes_store_one_copy(rig: Rig) -> None:
    """Three processes sync one connection while a fourth syncs another of the same user
    (``dashtam sync`` run from several terminals: no Redis, no job queue)."""
    c = rig.container
    shared = await _user_connection(c)
    async with c.uow_factory() as uow:
        conn = await uow.connections.get(shared)
    assert conn is not None
    other = await _user_connection(c, conn.user_id)
    children = [await rig.child(cid) for cid in (shared, shared, shared, other)]
    await asyncio.gather(*(child.ready() for child in children))
    for child in children:
        child.go()
    outputs = await asyncio.gather(*(child.result() for child in children))
    assert [await child.finish() for child in children] == [0, 0, 0, 0], outputs
    runs = {json.loads(line)["id"] for line in outputs}
    async with c.engine.connect() as db:
        statuses = [await get_sync_run(db, UUID(run_id)) for run_id in runs]
    assert all(r is not None and r.status == SyncStatus.SUCCEEDED for r in statuses), statuses
    truth = await _truth(c, shared)
    for cid in (shared, other):
        stored = await _stored(c, cid)
        _complete_units_only(stored)
        assert (stored.live, stored.total) == truth
