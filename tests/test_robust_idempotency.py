"""Re-sync and re-import write nothing: every data row byte-for-byte unchanged, no event.

On SQLite and PostgreSQL: sync Alpaca (API key) and Schwab (OAuth) against their in-process
simulators and import the Chase QFX and CSV samples; then sync both connections twice more and
import the same statements again *with different bytes but the same content* (a new QFX server
time, other line endings for the CSV), so the sha256 shortcut for identical files is bypassed
and the engine itself must find nothing to do.

"Nothing written" is checked on full row images of every data table (accounts, transactions,
holdings, holding history, balance snapshots, pending matches, watermarks, change log, outbox)
and, on PostgreSQL, on every row's ``xmin`` too, which a no-op ``UPDATE`` would change. Events
are counted on the message bus (every registered event type; the ``Sync*`` progress
notifications are published by design and checked to report zero changes).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import httpx
import pytest_asyncio
from sqlalchemy import Table, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.security.vault import CredentialVault
from dashtam_core.adapters.sqlalchemy.tables import accounts
from dashtam_core.adapters.sqlalchemy.tables_data import (
    balance_snapshots,
    change_log,
    holding_snapshots,
    holdings,
    outbox,
    pending_matches,
    sync_watermarks,
    transactions,
)
from dashtam_core.application.connections import complete_oauth, connect_api_key, start_oauth
from dashtam_core.application.container import Container
from dashtam_core.application.imports import import_statement
from dashtam_core.application.syncing import sync_connection
from dashtam_core.domain.events import DomainEvent, SyncFinished, SyncProgressed, SyncStarted
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import User
from dashtam_core.registries.events import EVENT_REGISTRY
from dashtam_core.settings import CoreSettings
from dashtam_core.sync.runs import SyncStatus
from dashtam_provider_alpaca.sandbox import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY

FIXTURES = Path(__file__).parent / "robust_support" / "fixtures" / "chase"
DATA_TABLES: tuple[Table, ...] = (
    accounts,
    transactions,
    holdings,
    holding_snapshots,
    balance_snapshots,
    pending_matches,
    sync_watermarks,
    change_log,
    outbox,
)
PROGRESS = (SyncStarted, SyncProgressed, SyncFinished)


@dataclass
class Env:
    container: Container
    user: User
    events: Counter[str]
    finished: list[SyncFinished]


@pytest_asyncio.fixture
async def env(engine: AsyncEngine, migrated_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    settings = CoreSettings(
        database_url=migrated_url, sandbox=True, secret_dir=tmp_path / "keys", _env_file=None
    )
    c = await Container.create(
        settings,
        engine=engine,
        migrate=False,
        sandbox_transport="asgi",
        vault=CredentialVault.generate(),
    )
    events: Counter[str] = Counter()
    finished: list[SyncFinished] = []

    async def count(event: DomainEvent) -> None:
        events[type(event).__name__] += 1
        if isinstance(event, SyncFinished):
            finished.append(event)

    for event_type in EVENT_REGISTRY:
        c.bus.subscribe(event_type, count)
    user = User(
        id=uuid7(), email="idem@example.com", password_hash="x", created_at=datetime.now(UTC)
    )
    async with c.uow_factory() as uow:
        (await uow.users.add(user)).unwrap()
        await uow.commit()
    try:
        yield Env(c, user, events, finished)
    finally:
        await c.aclose()


async def _connect_schwab(env: Env) -> UUID:
    c = env.container
    started = (await start_oauth(c, env.user.id, "schwab")).unwrap()
    async with httpx.AsyncClient(transport=c.http_transport("schwab")) as browser:
        answer = await browser.get(started.authorization_url)
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    conn = await complete_oauth(c, query["state"][0], code=query["code"][0])
    return conn.unwrap().id


async def _images(c: Container) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every data table (plus ``xmin`` on PostgreSQL), in a stable order."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    pg = c.engine.dialect.name == "postgresql"
    async with c.engine.connect() as db:
        for table in DATA_TABLES:
            cols: list[Any] = list(table.c)
            if pg:
                cols.append(literal_column("xmin::text").label("xmin"))
            rows = (await db.execute(select(*cols))).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


def _written(
    before: dict[str, list[tuple[Any, ...]]],
    after: dict[str, list[tuple[Any, ...]]],
) -> dict[str, str]:
    """table -> what changed between two images (row counts, or the columns that differ)."""
    out: dict[str, str] = {}
    for table in DATA_TABLES:
        old, new = before[table.name], after[table.name]
        if old == new:
            continue
        if len(old) != len(new):
            out[table.name] = f"{len(old)} rows -> {len(new)} rows"
            continue
        names = [*table.c.keys(), "xmin"]
        columns = {
            names[i]
            for o, n in zip(old, new, strict=True)
            for i, (a, b) in enumerate(zip(o, n, strict=True))
            if a != b
        }
        changed = sum(1 for o, n in zip(old, new, strict=True) if o != n)
        out[table.name] = f"{changed} rows updated: {', '.join(sorted(columns))}"
    return out


def _same_content(name: str, data: bytes) -> bytes:
    """The same statement in different bytes: a later QFX server time, other CSV line ends."""
    if name.endswith(".qfx"):
        changed = data.replace(b"<DTSERVER>20250430120000", b"<DTSERVER>20250501093000", 1)
    elif b"\r\n" in data:
        changed = data.replace(b"\r\n", b"\n")
    else:
        changed = data.replace(b"\n", b"\r\n")
    assert changed != data
    return changed


@dataclass
class Loaded:
    alpaca: UUID
    schwab: UUID
    statements: dict[str, bytes]
    added: dict[str, int]


async def _load(env: Env) -> Loaded:
    """Sync Alpaca and Schwab once and import the four Chase statements."""
    c = env.container
    keys = {"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY}
    alpaca = (await connect_api_key(c, env.user.id, "alpaca", keys)).unwrap().id
    schwab = await _connect_schwab(env)
    for connection_id in (alpaca, schwab):
        run = (await sync_connection(c, connection_id)).unwrap()
        assert run.status == SyncStatus.SUCCEEDED, run.error
    statements = {p.name: p.read_bytes() for p in sorted(FIXTURES.iterdir())}
    added = {}
    for name, data in statements.items():
        result = (await import_statement(c, env.user.id, name, data)).unwrap()
        added[name] = result.transactions_added
    assert added == {
        "checking.csv": 20,
        "checking.qfx": 25,
        "credit_card.csv": 20,
        "credit_card.qfx": 15,
    }
    env.events.clear()
    env.finished.clear()
    return Loaded(alpaca, schwab, statements, added)


async def _resync_twice(env: Env, loaded: Loaded) -> None:
    for _ in range(2):
        for connection_id in (loaded.alpaca, loaded.schwab):
            run = (await sync_connection(env.container, connection_id)).unwrap()
            assert run.status == SyncStatus.SUCCEEDED, run.error
            assert run.counts["transactions_added"] == 0
            assert run.counts["transactions_modified"] == 0
            assert run.counts["transactions_removed"] == 0


def _only_progress(env: Env) -> None:
    """No event but the ``Sync*`` notifications, and those report no change."""
    data_events = {k: v for k, v in env.events.items() if k not in {e.__name__ for e in PROGRESS}}
    assert data_events == {}
    assert len(env.finished) == 4
    assert all(
        (f.transactions_added, f.transactions_modified, f.transactions_removed) == (0, 0, 0)
        for f in env.finished
    )


async def test_resync_and_reimport_write_nothing(env: Env) -> None:
    c = env.container
    loaded = await _load(env)
    before = await _images(c)
    assert len(before["transactions"]) == 11 + 14 + 80
    assert len(before["change_log"]) == len(before["transactions"])

    await _resync_twice(env, loaded)
    for name, data in loaded.statements.items():
        same = (await import_statement(c, env.user.id, name, data)).unwrap()
        assert same.transactions_added == 0
    after_identical = await _images(c)
    assert _written(before, after_identical) == {}

    for name, data in loaded.statements.items():
        other = (await import_statement(c, env.user.id, name, _same_content(name, data))).unwrap()
        assert other.transactions_added == 0, name
        assert other.transactions_skipped == loaded.added[name], name
    after = await _images(c)
    new_outbox = [r for r in after["outbox"] if r not in after_identical["outbox"]]
    after["outbox"] = after_identical["outbox"]
    assert _written(after_identical, after) == {}
    _only_progress(env)
    # A different file with nothing new is still an import: it is recorded (StatementImported
    # with 0 added), and that is the only outbox row the whole second pass wrote.
    kinds = sorted((r[1], r[2]["transactions_added"]) for r in new_outbox)
    assert kinds == [("StatementImported", 0)] * len(loaded.statements)


async def test_identical_resync_does_not_rewrite_balances(env: Env) -> None:
    loaded = await _load(env)
    before = await _images(env.container)
    await _resync_twice(env, loaded)
    assert _written(before, await _images(env.container)) == {}
