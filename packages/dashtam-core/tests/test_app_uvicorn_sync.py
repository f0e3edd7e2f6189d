"""Sync over real HTTP: the Alpaca simulator served by uvicorn on a loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_api_test_support import uvicorn_server
from dashtam_core.adapters.security.vault import CredentialVault
from dashtam_core.application.connections import connect_api_key
from dashtam_core.application.container import Container
from dashtam_core.application.exports import list_transactions, list_user_holdings
from dashtam_core.application.syncing import sync_connection
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import User
from dashtam_core.settings import CoreSettings
from dashtam_core.sync.runs import SyncStatus
from dashtam_provider_alpaca.sandbox import (
    SANDBOX_API_KEY_ID,
    SANDBOX_SECRET_KEY,
    create_sandbox_app,
)


@pytest_asyncio.fixture
async def sandbox_url() -> AsyncIterator[str]:
    async with uvicorn_server(create_sandbox_app(), lifespan="auto") as base:
        yield base


async def test_connect_and_sync_over_http(
    engine: AsyncEngine, migrated_url: str, tmp_path: Path, sandbox_url: str
) -> None:
    settings = CoreSettings(database_url=migrated_url, secret_dir=tmp_path, _env_file=None)
    c = await Container.create(
        settings,
        engine=engine,
        migrate=False,
        vault=CredentialVault.generate(),
        provider_settings_overrides={
            "alpaca": {"paper_base_url": sandbox_url, "live_base_url": sandbox_url}
        },
    )
    try:
        user = User(
            id=uuid7(), email="h@example.com", password_hash="x", created_at=datetime.now(UTC)
        )
        async with c.uow_factory() as uow:
            (await uow.users.add(user)).unwrap()
            await uow.commit()
        keys = {"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY}
        conn = (await connect_api_key(c, user.id, "alpaca", keys)).unwrap()
        run = (await sync_connection(c, conn.id)).unwrap()
        assert run.status == SyncStatus.SUCCEEDED, run.error
        txs = await list_transactions(c, user.id)
        assert len(txs) == 11
        assert sum((t.amount for t in txs), Decimal(0)) == Decimal("2610.24")
        positions = {h.symbol: h for h in await list_user_holdings(c, user.id)}
        assert positions["SPY"].quantity == Decimal("8")
        assert positions["AAPL"].market_value == Decimal("2943.75")
        again = (await sync_connection(c, conn.id)).unwrap()
        assert again.counts["transactions_added"] == 0
        assert len(await list_transactions(c, user.id)) == 11
    finally:
        await c.aclose()
