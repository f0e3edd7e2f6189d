"""Two ``dashtam worker`` processes (PostgreSQL + Redis) on one connection, and workers killed
with SIGKILL mid-sync: nothing lost, nothing duplicated."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select, update

from dashtam_core.adapters.jobs.broker import build_broker
from dashtam_core.adapters.jobs.tasks import JobQueue
from dashtam_core.adapters.security.vault import CredentialVault
from dashtam_core.adapters.sqlalchemy.migrate import upgrade
from dashtam_core.adapters.sqlalchemy.tables import accounts
from dashtam_core.adapters.sqlalchemy.tables_data import change_log, sync_runs, transactions
from dashtam_core.application.connections import connect_api_key
from dashtam_core.application.container import Container
from dashtam_core.application.syncing import queue_sync
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import User
from dashtam_core.settings import CoreSettings
from dashtam_core.sync.runs import SyncStatus, get_sync_run
from dashtam_core.testing.databases import (
    make_postgres_database,
    postgres_url_or_skip,
    services_required,
)

EXTRA = 2989  # + 11 fixture activities = 3000 transactions, 30 pages of 100
EXPECTED = EXTRA + 11
HISTORY_DAYS = 20 * 365  # the synthetic history reaches months before April 2025
KEYS = {
    "api_key_id": "PKSANDBOX0DASHTAM000",
    "secret_key": "sandbox-secret-0000000000000000000000000000",
}


def _redis_url() -> str:
    url = os.environ.get("DASHTAM_TEST_REDIS_URL", "").strip()
    if not url:
        if services_required():
            pytest.fail("Redis not configured: set DASHTAM_TEST_REDIS_URL")
        pytest.skip("Redis not configured: set DASHTAM_TEST_REDIS_URL")
    return url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def pycache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pycache")


def _child_env(pycache: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DASHTAM_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


@pytest.fixture
def sandbox_url(pycache: Path) -> Iterator[str]:
    port = _free_port()
    env = _child_env(pycache) | {"DASHTAM_ALPACA_SANDBOX_EXTRA_ACTIVITIES": str(EXTRA)}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "--factory",
            "dashtam_provider_alpaca.sandbox:create_sandbox_app",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        ],
        env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                httpx.get(f"{url}/v2/account", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class Cluster:
    container: Container
    client: JobQueue
    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]]

    def start_workers(self, n: int = 2) -> None:
        for _ in range(n):
            self.workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "dashtam_api.cli.app", "worker", "--concurrency", "4"],
                    env=self.env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def kill_workers(self) -> None:
        for w in self.workers:
            w.send_signal(signal.SIGKILL)
            w.wait(timeout=10)
        self.workers.clear()


@pytest_asyncio.fixture
async def cluster(sandbox_url: str, pycache: Path, tmp_path: Path) -> AsyncIterator[Cluster]:
    redis_url = _redis_url()
    server = postgres_url_or_skip()
    vault = CredentialVault.generate()
    queue = f"dashtam:test:{uuid7().hex}"
    async with make_postgres_database(server) as db_url:
        await upgrade(db_url)
        env = _child_env(pycache) | {
            "DASHTAM_DATABASE_URL": db_url,
            "DASHTAM_REDIS_URL": redis_url,
            "DASHTAM_JOBS_QUEUE": queue,
            "DASHTAM_VAULT_KEYS": vault.to_json().decode(),
            "DASHTAM_SECRET_DIR": str(tmp_path / "keys"),
            "DASHTAM_ALPACA_PAPER_BASE_URL": sandbox_url,
            "DASHTAM_ALPACA_LIVE_BASE_URL": sandbox_url,
            "DASHTAM_SYNC_HISTORY_DAYS": str(HISTORY_DAYS),
        }
        settings = CoreSettings(
            database_url=db_url,
            redis_url=redis_url,
            sync_history_days=HISTORY_DAYS,
            _env_file=None,
        )
        c = await Container.create(
            settings,
            vault=vault,
            provider_settings_overrides={
                "alpaca": {"paper_base_url": sandbox_url, "live_base_url": sandbox_url}
            },
        )
        client = JobQueue(c, build_broker(settings, queue_name=queue))
        await client.broker.startup()
        cl = Cluster(c, client, env, [])
        try:
            yield cl
        finally:
            cl.kill_workers()
            await client.broker.shutdown()
            await c.aclose()


async def _connection(c: Container, email: str) -> UUID:
    user = User(id=uuid7(), email=email, password_hash="x", created_at=datetime.now(UTC))
    async with c.uow_factory() as uow:
        (await uow.users.add(user)).unwrap()
        await uow.commit()
    return (await connect_api_key(c, user.id, "alpaca", KEYS)).unwrap().id


async def _wait_done(c: Container, sync_id: UUID) -> SyncStatus:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        async with c.engine.connect() as db:
            run = await get_sync_run(db, sync_id)
        assert run is not None
        if run.status in (SyncStatus.SUCCEEDED, SyncStatus.FAILED):
            return run.status
        await asyncio.sleep(0.1)
    raise AssertionError(f"sync {sync_id} did not finish")


async def _wait_started(c: Container, sync_id: UUID) -> SyncStatus:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        async with c.engine.connect() as db:
            run = await get_sync_run(db, sync_id)
        assert run is not None
        if run.status != SyncStatus.QUEUED:
            return run.status
        await asyncio.sleep(0.02)
    raise AssertionError(f"sync {sync_id} never started")


async def _stored(c: Container, connection_id: UUID) -> tuple[int, int, int]:
    """(live transactions, distinct dedupe keys, change-log 'added' entries) of a connection."""
    t, a = transactions, accounts
    async with c.engine.connect() as db:
        rows = (
            await db.execute(
                select(func.count(), func.count(t.c.dedupe_key.distinct()))
                .select_from(t.join(a, a.c.id == t.c.account_id))
                .where(a.c.connection_id == connection_id, t.c.removed_at.is_(None))
            )
        ).one()
        added = (
            await db.execute(
                select(func.count())
                .select_from(change_log.join(a, a.c.id == change_log.c.account_id))
                .where(a.c.connection_id == connection_id, change_log.c.kind == "added")
            )
        ).scalar_one()
    return int(rows[0]), int(rows[1]), int(added)


async def test_two_workers_one_connection(cluster: Cluster) -> None:
    c = cluster.container
    connection_id = await _connection(c, "two@example.com")
    cluster.start_workers(2)
    run = (await queue_sync(c, connection_id)).unwrap()
    for _ in range(4):  # the same job handed to both workers, twice each
        await cluster.client.tasks.sync_connection.kiq(str(run.id))
    again = await asyncio.gather(*(cluster.client.enqueue_sync(connection_id) for _ in range(3)))
    assert all(r.unwrap().id == run.id for r in again)  # no second sync while one is active
    assert await _wait_done(c, run.id) == SyncStatus.SUCCEEDED
    assert await _stored(c, connection_id) == (EXPECTED, EXPECTED, EXPECTED)
    second = (await cluster.client.enqueue_sync(connection_id)).unwrap()
    assert await _wait_done(c, second.id) == SyncStatus.SUCCEEDED
    assert await _stored(c, connection_id) == (EXPECTED, EXPECTED, EXPECTED)


async def test_sigkill_mid_sync_then_rerun(cluster: Cluster) -> None:
    c = cluster.container
    connection_id = await _connection(c, "kill@example.com")
    rng = random.Random(20251126)
    killed_running = 0
    attempts = 0
    # Kill at random points until at least two kills landed while a sync was running (a fast
    # machine may finish a sync before a late kill); bounded so the test always ends.
    while attempts < 3 or (killed_running < 2 and attempts < 10):
        attempts += 1
        cluster.start_workers(2)
        run = (await cluster.client.enqueue_sync(connection_id)).unwrap()
        status = await _wait_started(c, run.id)
        # A random point of the sync; later attempts kill earlier if earlier ones were late.
        await asyncio.sleep(rng.uniform(0.0, 0.6 / attempts))
        cluster.kill_workers()
        async with c.engine.connect() as db:
            status = (await get_sync_run(db, run.id)).status  # type: ignore[union-attr]
        if status == SyncStatus.RUNNING:  # a dead worker's run: it goes stale
            killed_running += 1
            async with c.engine.begin() as db:
                await db.execute(
                    update(sync_runs)
                    .where(sync_runs.c.id == run.id)
                    .values(started_at=datetime.now(UTC) - timedelta(hours=2))
                )
        live, distinct, added = await _stored(c, connection_id)
        assert live == distinct == added  # whatever is stored is complete units, once
        assert live in (0, EXPECTED)
    assert killed_running >= 1
    cluster.start_workers(2)
    # The scheduler's recovery: stale runs fail, queued orphans are re-kicked.
    final = (await cluster.client.enqueue_sync(connection_id)).unwrap()
    if final.status == SyncStatus.QUEUED:
        await cluster.client.tasks.sync_connection.kiq(str(final.id))
    assert await _wait_done(c, final.id) == SyncStatus.SUCCEEDED
    assert await _stored(c, connection_id) == (EXPECTED, EXPECTED, EXPECTED)
