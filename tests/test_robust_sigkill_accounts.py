"""SIGKILL between the per-account units of a two-account sync (Schwab over OAuth), then re-run.

A Schwab connection has two accounts; a sync stores accounts, then per account its holdings
and its transactions, each its own database transaction with the account's watermark. A child
process (``robust_support/sync_once.py``) is killed at a random point; afterwards every account
must be all-or-nothing on its own (its watermark present exactly when all of its transactions
are, one change-log ``added`` per row), and the re-run, once the dead run's last heartbeat is
older than the stale window, completes the copy to the sandbox's truth without duplicating
what the killed run had stored.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_api_test_support import uvicorn_server
from dashtam_core.adapters.security.vault import CredentialVault
from dashtam_core.adapters.sqlalchemy.tables import accounts
from dashtam_core.adapters.sqlalchemy.tables_data import (
    change_log,
    sync_runs,
    sync_watermarks,
    transactions,
)
from dashtam_core.application.connections import complete_oauth, start_oauth
from dashtam_core.application.container import Container
from dashtam_core.application.credentials import unseal_credentials
from dashtam_core.application.syncing import STALE_AFTER, sync_connection
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import User
from dashtam_core.ports.provider import TransactionsProvider
from dashtam_core.settings import CoreSettings
from dashtam_core.sync.runs import SyncStatus, active_sync_run
from dashtam_provider_schwab.sandbox import SandboxConfig, create_sandbox_app
from dashtam_provider_schwab.settings import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

pytestmark = pytest.mark.slow

EXTRA = 1500
HISTORY_DAYS = 1500  # reaches past the generated history (730 days before April 2025)
SEEDS = (3, 17, 29)
TRANSACTIONS_DELAY = 0.1  # seconds per transactions request (5 yearly windows per account)
SCRIPT = Path(__file__).parent / "robust_support" / "sync_once.py"
PYCACHE = Path(tempfile.gettempdir()) / "dashtam-robust-pycache"
PerAccount = dict[str, tuple[int, Decimal]]  # provider account id -> (rows, sum)


def _slow_transactions(app: Any) -> Any:
    """Hold every transactions request a moment, so each account's stage takes a while and a
    kill lands between two accounts' units as often as inside one."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/transactions"):
            await asyncio.sleep(TRANSACTIONS_DELAY)
        await app(scope, receive, send)

    return wrapped


@pytest_asyncio.fixture
async def schwab_url() -> AsyncIterator[str]:
    app = _slow_transactions(create_sandbox_app(SandboxConfig(extra_transactions=EXTRA)))
    async with uvicorn_server(app) as base:
        yield base


async def _connect(c: Container) -> UUID:
    user = User(
        id=uuid7(),
        email=f"{uuid7().hex}@example.com",
        password_hash="x",
        created_at=datetime.now(UTC),
    )
    async with c.uow_factory() as uow:
        (await uow.users.add(user)).unwrap()
        await uow.commit()
    started = (await start_oauth(c, user.id, "schwab")).unwrap()
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(started.authorization_url)
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    return (await complete_oauth(c, query["state"][0], code=query["code"][0])).unwrap().id


async def _per_account(c: Container, connection_id: UUID) -> dict[str, tuple[int, Decimal, bool]]:
    """provider account id -> (live rows, their sum, watermark present); checks the log."""
    a, t = accounts, transactions
    out: dict[str, tuple[int, Decimal, bool]] = {}
    async with c.engine.connect() as db:
        owned = (
            await db.execute(
                select(a.c.id, a.c.provider_account_id).where(a.c.connection_id == connection_id)
            )
        ).all()
        for account_id, pid in owned:
            amounts = (
                (await db.execute(select(t.c.amount).where(t.c.account_id == account_id)))
                .scalars()
                .all()
            )
            log = (
                await db.execute(
                    select(func.count(), func.count(change_log.c.transaction_id.distinct())).where(
                        change_log.c.account_id == account_id, change_log.c.kind == "added"
                    )
                )
            ).one()
            assert tuple(log) == (len(amounts), len(amounts)), pid  # one 'added' per row
            mark = (
                await db.execute(
                    select(func.count()).where(sync_watermarks.c.account_id == account_id)
                )
            ).scalar_one()
            out[pid] = (len(amounts), sum(amounts, Decimal(0)), bool(mark))
    return out


async def _first_watermark(c: Container, connection_id: UUID) -> None:
    a, w = accounts, sync_watermarks
    query = (
        select(func.count())
        .select_from(w.join(a, a.c.id == w.c.account_id))
        .where(a.c.connection_id == connection_id)
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        async with c.engine.connect() as db:
            if (await db.execute(query)).scalar_one():
                return
        await asyncio.sleep(0.005)
    raise AssertionError("the first account unit never committed")


async def _truth(c: Container, connection_id: UUID) -> PerAccount:
    provider = c.provider("schwab")
    assert isinstance(provider, TransactionsProvider)
    async with c.uow_factory() as uow:
        conn = await uow.connections.get(connection_id)
        owned = await uow.accounts.list_for_connection(connection_id)
    assert conn is not None
    creds = unseal_credentials(c, conn).unwrap()
    end = datetime.now(UTC).date()
    out: PerAccount = {}
    for account in owned:
        pid = account.provider_account_id
        fetched = await provider.fetch_transactions(
            creds, pid, end - timedelta(days=HISTORY_DAYS), end
        )
        records = fetched.unwrap().records
        out[pid] = (len(records), sum((r.amount for r in records), Decimal(0)))
    return out


async def test_sigkill_between_account_units(
    engine: AsyncEngine, migrated_url: str, schwab_url: str, tmp_path: Path
) -> None:
    vault = CredentialVault.generate()
    schwab = {
        "api_base_url": f"{schwab_url}/trader/v1",
        "auth_base_url": f"{schwab_url}/v1/oauth",
        "client_id": SANDBOX_CLIENT_ID,
        "client_secret": SANDBOX_CLIENT_SECRET,
    }
    settings = CoreSettings(
        database_url=migrated_url, sync_history_days=HISTORY_DAYS, _env_file=None
    )
    c = await Container.create(
        settings,
        engine=engine,
        migrate=False,
        vault=vault,
        provider_settings_overrides={"schwab": dict(schwab)},
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
    }
    env |= {f"DASHTAM_SCHWAB_{k.upper()}": v for k, v in schwab.items()}
    procs: list[asyncio.subprocess.Process] = []
    try:
        reference = await _connect(c)
        targets = [await _connect(c) for _ in (*SEEDS, "after-first-unit")]
        for cid in [reference, *targets]:
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    str(SCRIPT),
                    str(cid),
                    env=env,
                    cwd=tmp_path,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
            )
        for p in procs:
            assert p.stdout is not None
            assert (await asyncio.wait_for(p.stdout.readline(), 60)).strip() == b"ready"

        def go(p: asyncio.subprocess.Process) -> None:
            assert p.stdin is not None
            p.stdin.write(b"go\n")

        began = time.monotonic()
        go(procs[0])
        assert procs[0].stdout is not None
        assert b'"succeeded"' in await asyncio.wait_for(procs[0].stdout.readline(), 60)
        duration = time.monotonic() - began
        truth = await _truth(c, reference)
        assert len(truth) == 2
        assert sum(n for n, _ in truth.values()) == EXTRA + 14
        full = {pid: (n, total, True) for pid, (n, total) in truth.items()}
        assert await _per_account(c, reference) == full

        partial = 0
        for seed, proc, cid in zip((*SEEDS, None), procs[1:], targets, strict=True):
            go(proc)
            if seed is not None:
                await asyncio.sleep(random.Random(seed).uniform(0.0, duration))
            else:  # the last child dies right after its first account's unit commits
                await _first_watermark(c, cid)
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
            await proc.wait()
            state = await _per_account(c, cid)
            for pid, (rows, total, marked) in state.items():
                # all of an account's transactions with its watermark, or none and no watermark
                expected = (*truth[pid], True) if marked else (0, Decimal(0), False)
                assert (rows, total, marked) == expected, (pid, state)
            partial += 0 < sum(m for *_, m in state.values()) < len(truth)
            # The killed run's heartbeats stopped with its process: backdate its last sign of
            # life past the stale window instead of waiting for it.
            silent_since = datetime.now(UTC) - STALE_AFTER - timedelta(seconds=1)
            async with c.engine.begin() as db:
                orphan = await active_sync_run(db, cid)
                if orphan is not None:
                    await db.execute(
                        update(sync_runs)
                        .where(sync_runs.c.id == orphan.id)
                        .values(started_at=silent_since, heartbeat_at=silent_since)
                    )
            if seed is None:
                assert sorted(m for *_, m in state.values()) == [False, True], state
            rerun = (await sync_connection(c, cid)).unwrap()
            assert rerun.status == SyncStatus.SUCCEEDED, rerun.error
            assert await _per_account(c, cid) == full
        print(f"kills between account units: {partial} of {len(SEEDS) + 1}")
    finally:
        for p in procs:
            if p.returncode is None:
                p.send_signal(signal.SIGKILL)
                await p.wait()
        await c.aclose()
