"""Benchmarks S5 (sync ingest) and S6 (idempotent re-ingest) of the sync engine (performance.md).

Pipeline measured: the Alpaca simulator (uvicorn on a loopback port, in a child process) serves
N account activities in pages of 1,000 -> :class:`AlpacaProvider` fetches and maps them ->
:func:`dashtam_core.sync.ingest_transactions` stores them in PostgreSQL (one transaction).

* S5 end to end: N / (fetch + map + ingest seconds), first ingest into an empty account.
* S5 database stage: N / ingest seconds (validation, hashing, upsert, change log, outbox).
* S6: the same N records fetched and ingested again: N / ingest seconds; rows written (rows whose
  ``updated_at``/``created_at`` moved), change-log entries and outbox events must all be 0.
* Ceiling (all lines): rows/s of asyncpg ``copy_records_to_table`` of the same rows (every
  column, as the engine stores them) into the ``transactions`` table of a second, freshly
  migrated database (best of three, emptied in between).

Every scenario prints one JSON line ``{"scenario","value","unit","ceiling","ratio","target",
"python","db", ...}``. ``--quick`` uses 5,000 transactions (CI only proves the script works).
The server comes from ``--server-url``, ``DASHTAM_BENCH_POSTGRES_URL`` or
``DASHTAM_TEST_POSTGRES_URL``; throwaway databases are created and dropped on it.

Usage: ``.venv/bin/python bench/bench_s5_s6_ingest.py [--quick] [--transactions N] [--profile]``
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import platform
import pstats
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import asyncpg
import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.adapters.sqlalchemy.migrate import upgrade
from dashtam_core.adapters.sqlalchemy.tables_data import change_log, outbox, transactions
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.domain.account import Account, AccountType
from dashtam_core.domain.connection import ConnectionStatus, ProviderConnection
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import User
from dashtam_core.ports.provider import Credentials, ProviderTransaction
from dashtam_core.sync import DateWindow, ingest_transactions
from dashtam_core.sync.identity import transaction_hash
from dashtam_core.testing.databases import make_postgres_database
from dashtam_provider_alpaca.client import AlpacaProvider
from dashtam_provider_alpaca.sandbox import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY
from dashtam_provider_alpaca.settings import AlpacaSettings

FIXTURE_ACTIVITIES = 11  # the sandbox's fixture activities come on top of the synthetic ones
PAGE_SIZE = 1000
START, END = date(1990, 1, 1), date(2100, 1, 1)
ACCOUNT_ID = "bench-alpaca-account"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sandbox(count: int) -> tuple[subprocess.Popen[bytes], str]:
    """Start the Alpaca simulator serving ``count`` activities; return (process, base URL)."""
    port = _free_port()
    env = os.environ | {
        "DASHTAM_ALPACA_SANDBOX_EXTRA_ACTIVITIES": str(max(0, count - FIXTURE_ACTIVITIES)),
        "DASHTAM_ALPACA_SANDBOX_MAX_PAGE_SIZE": str(PAGE_SIZE),
    }
    command = [
        sys.executable, "-m", "uvicorn", "--factory",
        "dashtam_provider_alpaca.sandbox:create_sandbox_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(command, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            httpx.get(f"{base}/v2/account", timeout=1)
            return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError("the Alpaca sandbox did not start")


def emit(scenario: str, value: float, ceiling: float, target: float, **extra: Any) -> None:
    """Print one benchmark JSON line."""
    line = {
        "scenario": scenario,
        "value": round(value, 1),
        "unit": "transactions/s",
        "ceiling": round(ceiling, 1),
        "ratio": round(value / ceiling, 3),
        "target": target,
        "python": platform.python_version(),
        "db": "postgresql",
        **extra,
    }
    print(json.dumps(line), flush=True)


async def make_account(engine: AsyncEngine) -> tuple[UUID, UUID]:
    """Create a user, an Alpaca connection and one account; return (user_id, account_id)."""
    now = datetime.now(UTC)
    user_id, connection_id, account_id = uuid7(), uuid7(), uuid7()
    async with SqlAlchemyUnitOfWork(engine) as uow:
        user = User(
            id=user_id, email=f"{user_id.hex}@example.com", password_hash="x", created_at=now
        )
        (await uow.users.add(user)).unwrap()
        await uow.connections.add(
            ProviderConnection(
                id=connection_id,
                user_id=user_id,
                provider="alpaca",
                status=ConnectionStatus.ACTIVE,
                created_at=now,
            )
        )
        await uow.accounts.add(
            Account(
                id=account_id,
                connection_id=connection_id,
                user_id=user_id,
                provider="alpaca",
                provider_account_id=ACCOUNT_ID,
                name="Bench brokerage",
                type=AccountType.BROKERAGE,
                currency="USD",
                created_at=now,
            )
        )
        await uow.commit()
    return user_id, account_id


async def fetch(provider: AlpacaProvider) -> tuple[list[ProviderTransaction], int, float]:
    """Fetch and map every activity; return (records, pages, seconds)."""
    credentials = Credentials({"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY})
    started = time.perf_counter()
    fetched = (await provider.fetch_transactions(credentials, ACCOUNT_ID, START, END)).unwrap()
    return list(fetched.records), len(fetched.raw), time.perf_counter() - started


async def ingest(
    engine: AsyncEngine,
    user_id: UUID,
    account_id: UUID,
    records: Sequence[ProviderTransaction],
    profile: cProfile.Profile | None = None,
) -> float:
    """Ingest ``records`` in one transaction; return the seconds (commit included)."""
    started = time.perf_counter()
    if profile is not None:
        profile.enable()
    async with engine.begin() as conn:
        result = await ingest_transactions(
            conn,
            user_id=user_id,
            account_id=account_id,
            records=records,
            window=DateWindow(START, END),
            authoritative=True,  # as the sync's transactions stage calls it
        )
    if profile is not None:
        profile.disable()
    result.unwrap()
    return time.perf_counter() - started


def ceiling_rows(
    account_id: UUID, records: Sequence[ProviderTransaction]
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The rows the engine stores for ``records`` (every column), for the COPY ceiling."""
    now = datetime.now(UTC)
    columns = [c.name for c in transactions.columns]
    rows = []
    for r in records:
        sec = r.security
        values = {
            "id": uuid7(),
            "account_id": account_id,
            "provider_transaction_id": r.provider_transaction_id,
            "dedupe_key": r.dedupe_key,
            "date": r.date,
            "posted_at": r.posted_at,
            "amount": r.amount,
            "currency": r.currency,
            "description": r.description,
            "merchant": r.merchant,
            "type": str(r.type),
            "subtype": str(r.subtype),
            "status": str(r.status),
            "pending_link": r.pending_link,
            "pending_transaction_id": None,
            "security_symbol": None if sec is None else sec.symbol,
            "security_quantity": None if sec is None else sec.quantity,
            "security_price": None if sec is None else sec.price,
            "security_asset_type": None if sec is None else sec.asset_type,
            "fees": r.fees,
            "content_hash": transaction_hash(r),
            "created_at": now,
            "updated_at": now,
            "removed_at": None,
            "removed_reason": None,
        }
        rows.append(tuple(values[c] for c in columns))
    return columns, rows


async def copy_ceiling(server_url: str, records: Sequence[ProviderTransaction]) -> float:
    """Best-of-three rows/s of ``copy_records_to_table`` into a freshly migrated database."""
    async with make_postgres_database(server_url) as url:
        await upgrade(url)
        engine = create_engine(url)
        try:
            _, account_id = await make_account(engine)
        finally:
            await engine.dispose()
        columns, rows = ceiling_rows(account_id, records)
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn)
        best = float("inf")
        try:
            for _ in range(3):
                started = time.perf_counter()
                async with conn.transaction():
                    await conn.copy_records_to_table("transactions", records=rows, columns=columns)
                best = min(best, time.perf_counter() - started)
                await conn.execute("TRUNCATE transactions CASCADE")
        finally:
            await conn.close()
    return len(rows) / best


async def count_rows(engine: AsyncEngine, table: Any, *where: Any) -> int:
    """``SELECT count(*)`` of ``table`` with ``where``."""
    async with engine.connect() as conn:
        stmt = select(func.count()).select_from(table).where(*where)
        return int((await conn.execute(stmt)).scalar_one())


async def run(count: int, server_url: str, profile: bool) -> None:
    """Run S5 and S6 with ``count`` transactions against the server at ``server_url``."""
    proc, base = start_sandbox(count)
    try:
        settings = AlpacaSettings(_env_file=None).for_sandbox(base)
        # The simulator accepts 1,000 per page here (the real API: 100); bypass the field limit.
        settings = settings.model_copy(update={"page_size": PAGE_SIZE})
        async with httpx.AsyncClient(timeout=120) as http:
            provider = AlpacaProvider(settings, http)
            await fetch(provider)  # warm up the sandbox and the client (not measured)
            async with make_postgres_database(server_url) as url:
                await upgrade(url)
                engine = create_engine(url)
                try:
                    await _scenarios(engine, provider, server_url, count, profile)
                finally:
                    await engine.dispose()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _scenarios(
    engine: AsyncEngine, provider: AlpacaProvider, server_url: str, count: int, profile: bool
) -> None:
    user_id, account_id = await make_account(engine)
    prof = cProfile.Profile() if profile else None
    records, pages, fetch_s = await fetch(provider)
    if len(records) != count:
        raise RuntimeError(f"the sandbox served {len(records)} transactions, expected {count}")
    first_s = await ingest(engine, user_id, account_id, records, prof)
    stored = await count_rows(engine, transactions, transactions.c.account_id == account_id)
    if stored != count:
        raise RuntimeError(f"first ingest stored {stored} of {count}")
    ceiling = await copy_ceiling(server_url, records)
    emit("S5 sync ingest end to end", count / (fetch_s + first_s), ceiling, 0.40,
         transactions=count, pages=pages, fetch_seconds=round(fetch_s, 3),
         ingest_seconds=round(first_s, 3))  # fmt: skip
    emit("S5 sync ingest database stage", count / first_s, ceiling, 0.55,
         transactions=count, seconds=round(first_s, 3))  # fmt: skip

    logs, events = await count_rows(engine, change_log), await count_rows(engine, outbox)
    mark = datetime.now(UTC)
    records, _, refetch_s = await fetch(provider)
    again_s = await ingest(engine, user_id, account_id, records)
    t = transactions
    written = await count_rows(engine, t, (t.c.updated_at >= mark) | (t.c.created_at >= mark))
    new_logs = await count_rows(engine, change_log) - logs
    new_events = await count_rows(engine, outbox) - events
    emit("S6 idempotent re-sync", count / again_s, ceiling, 0.60,
         transactions=count, rows_written=written, change_log_entries=new_logs,
         events=new_events, seconds=round(again_s, 3),
         end_to_end=round(count / (refetch_s + again_s), 1))  # fmt: skip
    if written or new_logs or new_events:
        raise RuntimeError("S6: an identical re-sync wrote rows, change-log entries or events")
    if prof is not None:
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(45)


def main() -> None:
    """Parse the arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 transactions (CI)")
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--profile", action="store_true", help="cProfile the first ingest")
    parser.add_argument(
        "--server-url",
        default=os.environ.get("DASHTAM_BENCH_POSTGRES_URL")
        or os.environ.get("DASHTAM_TEST_POSTGRES_URL"),
    )
    args = parser.parse_args()
    if not args.server_url:
        skipped = "set DASHTAM_BENCH_POSTGRES_URL or DASHTAM_TEST_POSTGRES_URL"
        print(json.dumps({"scenario": "S5/S6 ingest", "skipped": skipped}))
        return
    count = 5_000 if args.quick else args.transactions
    asyncio.run(run(count, args.server_url, args.profile))


if __name__ == "__main__":
    main()
