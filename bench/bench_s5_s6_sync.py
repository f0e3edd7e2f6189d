"""Benchmarks S5 (sync ingest) and S6 (idempotent re-sync) on PostgreSQL (performance.md).

Setup: a fresh PostgreSQL database (from ``DASHTAM_TEST_POSTGRES_URL`` or ``--server-url``),
migrated; the Alpaca simulator in a child process (uvicorn on a loopback port) serving N account
activities (fixture + synthetic) in pages of 1,000; an Alpaca connection made through the
application layer (``connect_api_key``).

* S5 value: transactions/s of ``sync_connection`` end to end (HTTP pages -> mapping -> validation
  -> set-based upsert -> change log -> outbox -> watermark -> raw archive), from the connection's
  first transaction sync covering every activity.
* S5 database stage: transactions/s of ``ingest_transactions`` alone for the same records into a
  fresh account (one transaction, batches of 1,000).
* Ceiling (both): rows/s of asyncpg ``copy_records_to_table`` of the same rows (the rows the
  engine stored, with new ids) into the same ``transactions`` table for a third account.
* S6: a second ``sync_connection`` over the same data: transactions/s, rows written (change-log
  entries + transaction rows whose ``updated_at`` moved) and outbox events, which must be 0.

Each scenario prints one JSON line ``{"scenario","value","unit","ceiling","ratio","target",
"python","db", ...}``. ``--quick`` uses 2,000 transactions (CI proves the benchmark works).

Usage: ``.venv/bin/python bench/bench_s5_s6_sync.py [--quick] [--transactions N]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from dashtam_core.adapters.security.vault import CredentialVault
from dashtam_core.adapters.sqlalchemy.migrate import upgrade
from dashtam_core.adapters.sqlalchemy.tables_data import change_log, outbox, transactions
from dashtam_core.application.connections import connect_api_key, unseal_credentials
from dashtam_core.application.container import Container
from dashtam_core.application.syncing import sync_connection
from dashtam_core.domain.account import Account, AccountType
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import User
from dashtam_core.settings import CoreSettings
from dashtam_core.sync.engine import ingest_transactions
from dashtam_core.testing.databases import make_postgres_database
from dashtam_provider_alpaca.client import AlpacaProvider
from dashtam_provider_alpaca.sandbox import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY
from dashtam_provider_alpaca.settings import AlpacaSettings

FIXTURE_ACTIVITIES = 11
PAGE_SIZE = 1000
HISTORY_START = date(1990, 1, 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_sandbox(count: int) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = dict(os.environ)
    env["DASHTAM_ALPACA_SANDBOX_EXTRA_ACTIVITIES"] = str(max(0, count - FIXTURE_ACTIVITIES))
    env["DASHTAM_ALPACA_SANDBOX_MAX_PAGE_SIZE"] = str(PAGE_SIZE)
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "--factory",
            "dashtam_provider_alpaca.sandbox:create_sandbox_app",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        ],
        env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/v2/account", timeout=1).status_code in (200, 401, 403):
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the Alpaca sandbox did not start")


def _line(
    scenario: str, value: float, unit: str, ceiling: float, target: float, **extra: Any
) -> None:
    doc = {
        "scenario": scenario,
        "value": round(value, 1),
        "unit": unit,
        "ceiling": round(ceiling, 1),
        "ratio": round(value / ceiling, 3) if ceiling else None,
        "target": target,
        "python": platform.python_version(),
        "db": "postgresql",
        **extra,
    }
    print(json.dumps(doc), flush=True)


async def _count(c: Container, table: Any, *where: Any) -> int:
    async with c.engine.connect() as db:
        return int(
            (await db.execute(select(func.count()).select_from(table).where(*where))).scalar_one()
        )


async def _new_account(c: Container, template: Account) -> Account:
    acc = Account(
        id=uuid7(),
        connection_id=template.connection_id,
        user_id=template.user_id,
        provider=template.provider,
        provider_account_id=f"bench-{uuid7().hex}",
        name="bench",
        type=AccountType.BROKERAGE,
        currency="USD",
        created_at=datetime.now(UTC),
    )
    async with c.uow_factory() as uow:
        await uow.accounts.add(acc)
        await uow.commit()
    return acc


async def _copy_ceiling(db_url: str, c: Container, source: Account, target: Account) -> float:
    async with c.engine.connect() as db:
        rows = [dict(r._mapping) for r in await db.execute(
            select(transactions).where(transactions.c.account_id == source.id)
        )]  # fmt: skip
    columns = list(rows[0].keys())
    records = []
    for row in rows:
        row = dict(row, id=uuid7(), account_id=target.id, pending_transaction_id=None)
        records.append(tuple(row[col] for col in columns))
    url = make_url(db_url).set(drivername="postgresql")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("transactions", records=records, columns=columns)
        elapsed = time.perf_counter() - started
    finally:
        await conn.close()
    return len(records) / elapsed


async def run(count: int, server_url: str) -> None:
    proc, sandbox_url = _start_sandbox(count)
    try:
        async with make_postgres_database(server_url) as db_url:
            await upgrade(db_url)
            with tempfile.TemporaryDirectory() as tmp:
                settings = CoreSettings(database_url=db_url, secret_dir=Path(tmp), _env_file=None)
                c = await Container.create(settings, vault=CredentialVault.generate())
                try:
                    await _bench(c, db_url, sandbox_url, count)
                finally:
                    await c.aclose()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _bench(c: Container, db_url: str, sandbox_url: str, count: int) -> None:
    alpaca_settings = AlpacaSettings(_env_file=None).model_copy(
        update={"paper_base_url": sandbox_url, "live_base_url": sandbox_url, "page_size": PAGE_SIZE}
    )
    client = httpx.AsyncClient(timeout=60)
    provider = AlpacaProvider(alpaca_settings, client)
    c.set_provider("alpaca", provider)
    user = User(
        id=uuid7(), email="bench@example.com", password_hash="x", created_at=datetime.now(UTC)
    )
    async with c.uow_factory() as uow:
        (await uow.users.add(user)).unwrap()
        await uow.commit()
    keys = {"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY}
    conn = (await connect_api_key(c, user.id, "alpaca", keys)).unwrap()

    started = time.perf_counter()
    first = (
        await sync_connection(c, conn.id, scope=["transactions"], start_date=HISTORY_START)
    ).unwrap()
    e2e = time.perf_counter() - started
    stored = first.counts["transactions_added"]
    if first.status != "succeeded" or stored != count:
        raise RuntimeError(f"first sync: {first.status} {first.error} ({stored} of {count})")
    async with c.uow_factory() as uow:
        (account,) = await uow.accounts.list_for_connection(conn.id)

    # Database stage alone: the same records into a fresh account.
    creds = unseal_credentials(c, conn).unwrap()
    fetched = (await provider.fetch_transactions(
        creds, account.provider_account_id, HISTORY_START, date.today()
    )).unwrap()  # fmt: skip
    stage_account = await _new_account(c, account)
    async with c.engine.begin() as db:
        started = time.perf_counter()
        (await ingest_transactions(
            db, user_id=user.id, account_id=stage_account.id, records=fetched.records
        )).unwrap()  # fmt: skip
        db_stage = time.perf_counter() - started

    ceiling = await _copy_ceiling(db_url, c, account, await _new_account(c, account))
    _line("S5 sync ingest end to end", count / e2e, "transactions/s", ceiling, 0.40,
          transactions=count, pages=len(fetched.raw), seconds=round(e2e, 3))  # fmt: skip
    _line("S5 sync ingest database stage", count / db_stage, "transactions/s", ceiling, 0.55,
          transactions=count, seconds=round(db_stage, 3))  # fmt: skip

    logs, events = await _count(c, change_log), await _count(c, outbox)
    mark = datetime.now(UTC)
    started = time.perf_counter()
    second = (
        await sync_connection(c, conn.id, scope=["transactions"], start_date=HISTORY_START)
    ).unwrap()
    resync = time.perf_counter() - started
    touched = await _count(c, transactions, transactions.c.updated_at >= mark)
    written = (await _count(c, change_log) - logs) + touched
    emitted = await _count(c, outbox) - events
    _line("S6 idempotent re-sync", count / resync, "transactions/s", ceiling, 0.60,
          transactions=count, rows_written=written, events=emitted,
          status=str(second.status), seconds=round(resync, 3))  # fmt: skip
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 transactions (CI).")
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--server-url", default=os.environ.get("DASHTAM_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    if not args.server_url:
        print(json.dumps({"scenario": "S5/S6", "skipped": "set DASHTAM_TEST_POSTGRES_URL"}))
        return
    count = 2_000 if args.quick else args.transactions
    asyncio.run(run(count, args.server_url))


if __name__ == "__main__":
    main()
