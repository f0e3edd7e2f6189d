"""Schwab OAuth against its sandbox: start/complete, sync, refresh (forced, serialized), repair."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.security.vault import CredentialVault
from dashtam_core.adapters.sqlalchemy.tables import provider_connections
from dashtam_core.adapters.sqlalchemy.tables_data import transactions
from dashtam_core.application.connections import (
    InvalidOAuthState,
    complete_oauth,
    expiry_warnings,
    refresh_credentials,
    start_oauth,
)
from dashtam_core.application.container import Container
from dashtam_core.application.syncing import sync_connection
from dashtam_core.domain.connection import ConnectionStatus, ProviderConnection
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import User
from dashtam_core.result import Err
from dashtam_core.settings import CoreSettings
from dashtam_core.sync.runs import SyncStatus
from dashtam_core.testing.seeding import seed_user
from dashtam_provider_schwab.sandbox import SchwabSandbox, create_sandbox_app


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts token-endpoint calls by grant type, then forwards to the sandbox app."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.grants: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/v1/oauth/token"):
            body = parse_qs(request.content.decode())
            self.grants.append(body.get("grant_type", [""])[0])
        return await self.inner.handle_async_request(request)


@dataclass
class Env:
    container: Container
    sandbox: SchwabSandbox
    transport: CountingTransport
    user: User


@pytest_asyncio.fixture
async def env(engine: AsyncEngine, migrated_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    app = create_sandbox_app()
    transport = CountingTransport(httpx.ASGITransport(app=app))
    settings = CoreSettings(
        database_url=migrated_url, sandbox=True, secret_dir=tmp_path / "k", _env_file=None
    )
    c = await Container.create(
        settings,
        engine=engine,
        migrate=False,
        sandbox_transport="asgi",
        vault=CredentialVault.generate(),
        http_transports={"schwab": transport},
    )
    async with c.uow_factory() as uow:
        user = await seed_user(uow, email="s@example.com")
        await uow.commit()
    try:
        yield Env(c, app.state.sandbox, transport, user)
    finally:
        await c.aclose()


async def _authorize(env: Env, url: str) -> tuple[str, str]:
    """Play the browser: follow the authorize URL to the redirect and read code + state."""
    async with httpx.AsyncClient(transport=env.transport) as browser:
        answer = await browser.get(url)
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    return query["code"][0], query["state"][0]


async def _connect(env: Env) -> ProviderConnection:
    started = (await start_oauth(env.container, env.user.id, "schwab", alias="ira")).unwrap()
    assert started.connection.status == ConnectionStatus.PENDING
    assert started.expires_in == 600
    code, state = await _authorize(env, started.authorization_url)
    assert state == started.state
    return (await complete_oauth(env.container, state, code=code, user_id=env.user.id)).unwrap()


async def test_oauth_connect_sync_and_single_use_state(env: Env) -> None:
    started = (await start_oauth(env.container, env.user.id, "schwab")).unwrap()
    code, state = await _authorize(env, started.authorization_url)
    other = await complete_oauth(env.container, state, code=code, user_id=uuid7())
    assert isinstance(other, Err)
    assert isinstance(other.error, InvalidOAuthState)
    # the state was not consumed by the wrong user's attempt... but it is single use:
    conn = (await complete_oauth(env.container, state, code=code)).unwrap()
    assert conn.status == ConnectionStatus.ACTIVE
    assert conn.auth_expires_at is not None
    assert conn.auth_expires_at > datetime.now(UTC) + timedelta(days=6)
    replay = await complete_oauth(env.container, state, code=code)
    assert isinstance(replay, Err)

    run = (await sync_connection(env.container, conn.id)).unwrap()
    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert run.counts["accounts"] == 2
    assert run.counts["holdings"] == 6
    assert run.counts["transactions_added"] == 14
    async with env.container.uow_factory() as uow:
        balances = sorted(a.balance_current for a in await uow.accounts.list_for_user(env.user.id))
    assert balances == [Decimal("12668.80"), Decimal("18517.92")]
    async with env.container.engine.connect() as db:
        amounts = (await db.execute(select(transactions.c.amount))).scalars().all()
    assert sum(amounts, Decimal(0)) == Decimal("172.01")  # summed exactly, not by SQLite
    again = (await sync_connection(env.container, conn.id)).unwrap()
    assert again.counts["transactions_added"] == 0
    assert again.counts["transactions_modified"] == 0


async def test_expired_access_token_is_refreshed_once_and_stored(env: Env) -> None:
    conn = await _connect(env)
    env.sandbox.expire_tokens(access=True)
    run = (await sync_connection(env.container, conn.id)).unwrap()
    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert env.transport.grants == ["authorization_code", "refresh_token"]
    forced = (await sync_connection(env.container, conn.id, force=True)).unwrap()
    assert forced.status == SyncStatus.SUCCEEDED
    assert env.transport.grants.count("refresh_token") == 2


async def test_concurrent_refreshes_call_the_provider_once(env: Env) -> None:
    conn = await _connect(env)
    async with env.container.engine.begin() as db:
        await db.execute(
            update(provider_connections)
            .where(provider_connections.c.id == conn.id)
            .values(access_expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    first, second = await asyncio.gather(
        refresh_credentials(env.container, conn.id), refresh_credentials(env.container, conn.id)
    )
    assert env.transport.grants.count("refresh_token") == 1
    assert first.unwrap()["access_token"] == second.unwrap()["access_token"]


async def test_dead_refresh_token_needs_reauth_then_repair_in_place(env: Env) -> None:
    conn = await _connect(env)
    (await sync_connection(env.container, conn.id)).unwrap()
    async with env.container.uow_factory() as uow:
        account_ids = sorted(a.id for a in await uow.accounts.list_for_connection(conn.id))
    env.sandbox.expire_tokens(access=True, refresh=True)
    failed = (await sync_connection(env.container, conn.id)).unwrap()
    assert failed.status == SyncStatus.FAILED
    async with env.container.uow_factory() as uow:
        stored = await uow.connections.get(conn.id)
    assert stored is not None
    assert stored.status == ConnectionStatus.NEEDS_REAUTH

    repair = (
        await start_oauth(env.container, env.user.id, "schwab", connection_id=conn.id)
    ).unwrap()
    assert repair.connection.id == conn.id
    code, state = await _authorize(env, repair.authorization_url)
    repaired = (await complete_oauth(env.container, state, code=code)).unwrap()
    assert repaired.id == conn.id
    assert repaired.status == ConnectionStatus.ACTIVE
    run = (await sync_connection(env.container, conn.id)).unwrap()
    assert run.status == SyncStatus.SUCCEEDED
    assert run.counts["transactions_added"] == 0
    async with env.container.uow_factory() as uow:
        after = sorted(a.id for a in await uow.accounts.list_for_connection(conn.id))
    assert after == account_ids


@pytest.mark.parametrize("days", [8])
async def test_expiry_warning_is_raised_once(env: Env, days: int) -> None:
    conn = await _connect(env)
    warned = await expiry_warnings(env.container, days=days)
    assert [w.connection_id for w in warned] == [conn.id]
    assert await expiry_warnings(env.container, days=days) == []
    assert await expiry_warnings(env.container, days=1) == []
