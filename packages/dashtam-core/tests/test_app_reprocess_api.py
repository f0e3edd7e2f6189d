"""Reprocess API connections (Alpaca, Schwab) from their archived pages, never calling them.

Each connection is synced against its in-process sandbox; reprocessing with the unchanged
mapping writes nothing, and with a "fixed" mapping function exactly the transactions the fix
touches are reported modified (no adds, no removals) while the sandbox sees no request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.security.vault import CredentialVault
from dashtam_core.adapters.sqlalchemy.tables_data import change_log, outbox, transactions
from dashtam_core.application.connections import complete_oauth, connect_api_key, start_oauth
from dashtam_core.application.container import Container
from dashtam_core.application.reprocess import ReprocessResult, reprocess
from dashtam_core.application.syncing import sync_connection
from dashtam_core.domain.transaction import TransactionSubtype
from dashtam_core.domain.user import User
from dashtam_core.settings import CoreSettings
from dashtam_core.sync.runs import SyncStatus
from dashtam_core.testing.seeding import seed_user
from dashtam_provider_alpaca import mapping as alpaca_mapping
from dashtam_provider_alpaca.sandbox import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY
from dashtam_provider_alpaca.sandbox import create_sandbox_app as alpaca_sandbox
from dashtam_provider_schwab import transactions as schwab_transactions
from dashtam_provider_schwab.sandbox import create_sandbox_app as schwab_sandbox


class CountingTransport(httpx.AsyncBaseTransport):
    """Forwards to a sandbox app and counts every request it sees."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return await self.inner.handle_async_request(request)


@dataclasses.dataclass
class Env:
    container: Container
    alpaca: CountingTransport
    schwab: CountingTransport
    user: User


@pytest_asyncio.fixture
async def env(engine: AsyncEngine, migrated_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    alpaca, schwab = CountingTransport(alpaca_sandbox()), CountingTransport(schwab_sandbox())
    settings = CoreSettings(
        database_url=migrated_url, sandbox=True, secret_dir=tmp_path / "k", _env_file=None
    )
    c = await Container.create(
        settings,
        engine=engine,
        migrate=False,
        sandbox_transport="asgi",
        vault=CredentialVault.generate(),
        http_transports={"alpaca": alpaca, "schwab": schwab},
    )
    async with c.uow_factory() as uow:
        user = await seed_user(uow, email="ra@example.com")
        await uow.commit()
    try:
        yield Env(c, alpaca, schwab, user)
    finally:
        await c.aclose()


async def _count(c: Container, table: Table) -> int:
    async with c.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def _descriptions(c: Container) -> dict[str, str]:
    async with c.engine.connect() as db:
        rows = await db.execute(select(transactions.c.id, transactions.c.description))
        return {str(r.id): r.description for r in rows}


def _changes(result: ReprocessResult) -> tuple[int, int, int]:
    return (
        result.transactions_added,
        result.transactions_modified,
        result.transactions_removed,
    )


async def _unchanged_then_fixed(
    env: Env, connection_id: UUID, transport: CountingTransport, fix: Any
) -> set[str]:
    """Reprocess unchanged, then with ``fix`` applied; return the ids whose description moved."""
    c = env.container
    tables = (transactions, change_log, outbox)
    before = [await _count(c, t) for t in tables]
    stored = await _descriptions(c)
    calls = transport.requests
    same = (await reprocess(c, connection_id, user_id=env.user.id)).unwrap()
    assert same.payloads >= 3
    assert _changes(same) == (0, 0, 0)
    assert [await _count(c, t) for t in tables] == before
    assert await _descriptions(c) == stored

    with pytest.MonkeyPatch.context() as patch:
        fix(patch)
        fixed = (await reprocess(c, connection_id)).unwrap()
        after = await _descriptions(c)
        moved = {k for k, v in after.items() if stored[k] != v}
        assert moved
        assert _changes(fixed) == (0, len(moved), 0)
        assert await _count(c, transactions) == before[0]
        assert await _count(c, change_log) == before[1] + len(moved)
        again = (await reprocess(c, connection_id)).unwrap()
        assert _changes(again) == (0, 0, 0)
    assert transport.requests == calls  # the provider was never called
    return {after[k] for k in moved}


async def test_reprocess_alpaca(env: Env) -> None:
    keys = {"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY}
    conn = (
        await connect_api_key(env.container, env.user.id, "alpaca", keys, alias="paper")
    ).unwrap()
    for _ in range(2):  # two syncs: every page archived twice
        run = (await sync_connection(env.container, conn.id)).unwrap()
        assert run.status == SyncStatus.SUCCEEDED, run.error
    original = alpaca_mapping._map_non_trade

    def dividends_named_by_symbol(raw: Any, activity_type: str, *rest: Any) -> Any:
        record = original(raw, activity_type, *rest)
        if activity_type != "DIV" or record.security is None:
            return record
        return dataclasses.replace(record, description=f"Dividend {record.security.symbol}")

    def fix(patch: pytest.MonkeyPatch) -> None:
        patch.setattr(alpaca_mapping, "_map_non_trade", dividends_named_by_symbol)

    moved = await _unchanged_then_fixed(env, conn.id, env.alpaca, fix)
    assert moved == {"Dividend SPY", "Dividend AAPL"}
    async with env.container.uow_factory() as uow:
        (account,) = await uow.accounts.list_for_user(env.user.id)
    assert account.name == "Alpaca Paper PA3SYNTH4X2Q"


async def test_reprocess_schwab(env: Env) -> None:
    c = env.container
    started = (await start_oauth(c, env.user.id, "schwab", alias="ira")).unwrap()
    async with httpx.AsyncClient(transport=env.schwab) as browser:
        answer = await browser.get(started.authorization_url)
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    conn = (await complete_oauth(c, query["state"][0], code=query["code"][0])).unwrap()
    run = (await sync_connection(c, conn.id)).unwrap()
    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert run.counts["transactions_added"] == 14
    original = schwab_transactions.map_transaction

    def wires_in_title_case(item: object, hash_value: str, **kw: Any) -> Any:
        record = original(item, hash_value, **kw)
        if record is None or record.subtype != TransactionSubtype.WIRE:
            return record
        return dataclasses.replace(record, description=record.description.title())

    def fix(patch: pytest.MonkeyPatch) -> None:
        patch.setattr(schwab_transactions, "map_transaction", wires_in_title_case)

    moved = await _unchanged_then_fixed(env, conn.id, env.schwab, fix)
    assert moved == {"Wired Funds Received", "Wired Funds Disbursed"}
    async with c.uow_factory() as uow:
        names = sorted(a.name for a in await uow.accounts.list_for_user(env.user.id))
    assert len(names) == 2
