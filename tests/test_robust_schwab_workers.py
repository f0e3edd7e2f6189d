"""Two ``dashtam worker`` processes (PostgreSQL + Redis) sync one Schwab connection whose access
token was forced to expire: no duplicate, figures equal the sandbox's to the cent, and the sandbox
sees exactly one refresh-token grant, never two at once.

The Schwab simulator runs on a loopback port (uvicorn, in this test's event loop) behind a small
ASGI wrapper that counts ``POST /v1/oauth/token`` calls by ``grant_type`` and the peak number of
refresh grants in flight; each refresh grant is held for a moment so that an unserialized second
refresh would overlap it (and be counted) instead of slipping in after it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select, update
from taskiq import AsyncTaskiqTask

from dashtam_api_test_support import uvicorn_server
from dashtam_core.adapters.jobs.broker import build_broker
from dashtam_core.adapters.jobs.tasks import JobQueue
from dashtam_core.adapters.security.vault import CredentialVault
from dashtam_core.adapters.sqlalchemy.migrate import upgrade
from dashtam_core.adapters.sqlalchemy.tables import accounts, provider_connections
from dashtam_core.adapters.sqlalchemy.tables_data import change_log, sync_runs, transactions
from dashtam_core.application.connections import complete_oauth, start_oauth
from dashtam_core.application.container import Container
from dashtam_core.application.credentials import unseal_credentials
from dashtam_core.application.syncing import queue_sync
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import User
from dashtam_core.ports.provider import TransactionsProvider
from dashtam_core.settings import CoreSettings
from dashtam_core.sync.runs import SyncStatus, get_sync_run
from dashtam_core.testing.databases import (
    make_postgres_database,
    postgres_url_or_skip,
    services_required,
)
from dashtam_provider_schwab.sandbox import SandboxConfig, SchwabSandbox, create_sandbox_app
from dashtam_provider_schwab.settings import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

EXTRA = 1500  # generated MARGIN history on top of the 14 fixture transactions
HISTORY_DAYS = 20 * 365  # the first sync reaches back past the generated history
REFRESH_HOLD_SECONDS = 0.5  # how long the sandbox holds each refresh grant


def _redis_url() -> str:
    url = os.environ.get("DASHTAM_TEST_REDIS_URL", "").strip()
    if not url:
        if services_required():
            pytest.fail("Redis not configured: set DASHTAM_TEST_REDIS_URL")
        pytest.skip("Redis not configured: set DASHTAM_TEST_REDIS_URL")
    return url


@dataclass
class GrantCounter:
    """ASGI wrapper counting token-endpoint grants; refresh grants are held ``hold`` seconds."""

    app: Any
    hold: float
    grants: list[str] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/v1/oauth/token"):
            await self.app(scope, receive, send)
            return
        messages: list[Any] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        grant = parse_qs(body.decode()).get("grant_type", [""])[0]
        self.grants.append(grant)
        if grant != "refresh_token":
            await self.app(scope, replay, send)
            return
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.hold)
            await self.app(scope, replay, send)
        finally:
            self.in_flight -= 1


@dataclass
class Served:
    url: str
    sandbox: SchwabSandbox
    counter: GrantCounter


@pytest_asyncio.fixture
async def schwab() -> AsyncIterator[Served]:
    app = create_sandbox_app(SandboxConfig(extra_transactions=EXTRA))
    counter = GrantCounter(app, REFRESH_HOLD_SECONDS)
    async with uvicorn_server(counter) as base:
        yield Served(base, app.state.sandbox, counter)


@dataclass
class Cluster:
    container: Container
    queue: JobQueue
    env: dict[str, str]
    logs: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_workers(self, n: int) -> None:
        for i in range(n):
            log = (self.logs / f"worker-{len(self.workers)}-{i}.log").open("wb")
            self.workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "dashtam_api.cli.app", "worker", "--concurrency", "4"],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()

    def stop_workers(self) -> None:
        for w in self.workers:
            w.kill()
            w.wait(timeout=10)
        self.workers.clear()


@pytest_asyncio.fixture
async def cluster(schwab: Served, tmp_path: Path) -> AsyncIterator[Cluster]:
    redis_url = _redis_url()
    server = postgres_url_or_skip()
    vault = CredentialVault.generate()
    queue_name = f"dashtam:test:{uuid7().hex}"
    schwab_env = {
        "api_base_url": f"{schwab.url}/trader/v1",
        "auth_base_url": f"{schwab.url}/v1/oauth",
        "client_id": SANDBOX_CLIENT_ID,
        "client_secret": SANDBOX_CLIENT_SECRET,
        "redirect_uri": "https://127.0.0.1:8182/callback",
    }
    async with make_postgres_database(server) as db_url:
        await upgrade(db_url)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DASHTAM_") and k != "PYTHONDONTWRITEBYTECODE"
        }
        env |= {
            "PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir()) / "dashtam-robust-pycache"),
            "DASHTAM_DATABASE_URL": db_url,
            "DASHTAM_REDIS_URL": redis_url,
            "DASHTAM_JOBS_QUEUE": queue_name,
            "DASHTAM_VAULT_KEYS": vault.to_json().decode(),
            "DASHTAM_SECRET_DIR": str(tmp_path / "keys"),
            "DASHTAM_SYNC_HISTORY_DAYS": str(HISTORY_DAYS),
        }
        env |= {f"DASHTAM_SCHWAB_{k.upper()}": v for k, v in schwab_env.items()}
        settings = CoreSettings(
            database_url=db_url,
            redis_url=redis_url,
            sync_history_days=HISTORY_DAYS,
            _env_file=None,
        )
        c = await Container.create(
            settings, vault=vault, provider_settings_overrides={"schwab": dict(schwab_env)}
        )
        queue = JobQueue(c, build_broker(settings, queue_name=queue_name))
        await queue.broker.startup()
        logs = tmp_path / "logs"
        logs.mkdir()
        cl = Cluster(c, queue, env, logs)
        try:
            yield cl
        finally:
            cl.stop_workers()
            await queue.broker.shutdown()
            await c.aclose()


async def _connect(c: Container, sandbox_url: str) -> UUID:
    """Create a user and connect Schwab through the OAuth flow (playing the browser)."""
    user = User(
        id=uuid7(), email="workers@example.com", password_hash="x", created_at=datetime.now(UTC)
    )
    async with c.uow_factory() as uow:
        (await uow.users.add(user)).unwrap()
        await uow.commit()
    started = (await start_oauth(c, user.id, "schwab")).unwrap()
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(started.authorization_url)
    assert answer.status_code == 302
    assert answer.headers["location"].startswith("https://127.0.0.1:8182/callback")
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    conn = await complete_oauth(c, query["state"][0], code=query["code"][0])
    return conn.unwrap().id


async def _wait_done(c: Container, sync_id: UUID) -> SyncStatus:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        async with c.engine.connect() as db:
            run = await get_sync_run(db, sync_id)
        assert run is not None
        if run.status in (SyncStatus.SUCCEEDED, SyncStatus.FAILED):
            return run.status
        await asyncio.sleep(0.1)
    raise AssertionError(f"sync {sync_id} did not finish")


async def _stored(c: Container, connection_id: UUID) -> dict[UUID, dict[str, Decimal]]:
    """account id -> {dedupe_key: amount} of the live rows; asserts one row per key."""
    t, a = transactions, accounts
    async with c.engine.connect() as db:
        rows = (
            await db.execute(
                select(t.c.account_id, t.c.dedupe_key, t.c.amount)
                .select_from(t.join(a, a.c.id == t.c.account_id))
                .where(a.c.connection_id == connection_id, t.c.removed_at.is_(None))
            )
        ).all()
    out: dict[UUID, dict[str, Decimal]] = {}
    for account_id, key, amount in rows:
        assert key not in out.setdefault(account_id, {}), f"duplicate {key}"
        out[account_id][key] = amount
    return out


async def _truth(c: Container, connection_id: UUID) -> dict[UUID, dict[str, Decimal]]:
    """What the sandbox serves for the same window, through the provider's own mapping.

    Uses the stored (refreshed) access token: no token request is made here.
    """
    provider = c.provider("schwab")
    assert isinstance(provider, TransactionsProvider)
    async with c.uow_factory() as uow:
        conn = await uow.connections.get(connection_id)
        owned = await uow.accounts.list_for_connection(connection_id)
    assert conn is not None
    creds = unseal_credentials(c, conn).unwrap()
    end = datetime.now(UTC).date()
    start: date = end - timedelta(days=HISTORY_DAYS)
    out: dict[UUID, dict[str, Decimal]] = {}
    for account in owned:
        fetched = await provider.fetch_transactions(creds, account.provider_account_id, start, end)
        records = fetched.unwrap().records
        if records:
            out[account.id] = {r.dedupe_key: r.amount for r in records}
    return out


async def _added_entries(c: Container, connection_id: UUID) -> tuple[int, int]:
    """(change-log 'added' entries, distinct transactions they name) for the connection."""
    a = accounts
    async with c.engine.connect() as db:
        row = (
            await db.execute(
                select(func.count(), func.count(change_log.c.transaction_id.distinct()))
                .select_from(change_log.join(a, a.c.id == change_log.c.account_id))
                .where(a.c.connection_id == connection_id, change_log.c.kind == "added")
            )
        ).one()
    return int(row[0]), int(row[1])


async def test_two_workers_expired_token_one_refresh_no_duplicates(
    cluster: Cluster, schwab: Served
) -> None:
    c = cluster.container
    connection_id = await _connect(c, schwab.url)
    assert schwab.counter.grants == ["authorization_code"]

    # Force expiry on both sides: the provider refuses the old token, and the stored expiry
    # says "refresh first", so every process that touches the connection wants a refresh.
    schwab.sandbox.expire_tokens(access=True)
    async with c.engine.begin() as db:
        await db.execute(
            update(provider_connections)
            .where(provider_connections.c.id == connection_id)
            .values(access_expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )

    cluster.start_workers(2)
    run = (await queue_sync(c, connection_id)).unwrap()
    kicked: list[AsyncTaskiqTask[Any]] = []
    for _ in range(3):  # the same sync handed out repeatedly, and the refresh job alongside it
        kicked.append(await cluster.queue.tasks.sync_connection.kiq(str(run.id)))
        kicked.append(await cluster.queue.tasks.refresh_tokens.kiq())
    results = [await k.wait_result(timeout=90) for k in kicked]
    assert all(not r.is_err for r in results), [r.error for r in results if r.is_err]
    assert await _wait_done(c, run.id) == SyncStatus.SUCCEEDED

    assert schwab.counter.grants.count("refresh_token") == 1, schwab.counter.grants
    assert schwab.counter.peak == 1
    async with c.engine.connect() as db:
        runs = (
            await db.execute(
                select(func.count())
                .select_from(sync_runs)
                .where(sync_runs.c.connection_id == connection_id)
            )
        ).scalar_one()
    assert runs == 1  # three deliveries of the job ran one sync

    stored = await _stored(c, connection_id)
    truth = await _truth(c, connection_id)
    assert stored == truth
    total = sum((sum(v.values(), Decimal(0)) for v in stored.values()), Decimal(0))
    assert total == sum((sum(v.values(), Decimal(0)) for v in truth.values()), Decimal(0))
    count = sum(len(v) for v in stored.values())
    assert count == EXTRA + 14
    assert await _added_entries(c, connection_id) == (count, count)

    # A second round through the workers: nothing new, still one refresh in total.
    again = (await cluster.queue.enqueue_sync(connection_id)).unwrap()
    assert again.id != run.id
    assert await _wait_done(c, again.id) == SyncStatus.SUCCEEDED
    assert await _stored(c, connection_id) == truth
    assert await _added_entries(c, connection_id) == (count, count)
    assert schwab.counter.grants.count("refresh_token") == 1
