"""The change feed over HTTP never skips or repeats a change while writers commit concurrently.

Several writers ingest batches into two accounts of one user, each batch in its own database
transaction that stays open a little (so commits interleave), while a reader follows
``GET /api/v1/transactions/changes`` with small pages. At the end the reader has seen every
transaction exactly once as added, and the modifications, in commit order.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest_asyncio
from sqlalchemy import func, select

import dashtam_api_test_support as support
from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.adapters.sqlalchemy.tables_data import transactions
from dashtam_core.domain.transaction import TransactionSubtype, TransactionType
from dashtam_core.ports.provider import ProviderTransaction
from dashtam_core.result import Ok
from dashtam_core.sync.engine import ingest_transactions

WRITERS = 4
BATCHES = 8
PER_BATCH = 5


@pytest_asyncio.fixture
async def served(migrated_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    # The reader polls as fast as it can while the writers work: lift the per-user read
    # limit so a fast machine measures the feed, not the rate limiter.
    async with support.serve(migrated_url, tmp_path, rate_limits="read_user=1000000/min") as s:
        yield s


def _records(writer: int, batch: int, amount: str = "1.00") -> list[ProviderTransaction]:
    day = date(2024, 1, 1) + timedelta(days=batch)
    return [
        ProviderTransaction(
            provider_account_id="x",
            provider_transaction_id=f"w{writer}-b{batch}-{i}",
            dedupe_key=f"w{writer}-b{batch}-{i}",
            date=day,
            amount=Decimal(amount),
            currency="USD",
            description=f"writer {writer} batch {batch} item {i}",
            type=TransactionType.OTHER,
            subtype=TransactionSubtype.OTHER,
        )
        for i in range(PER_BATCH)
    ]


async def _writer(url: str, user_id: UUID, account_id: UUID, writer: int) -> None:
    engine = create_engine(url)
    rng = random.Random(writer)
    try:
        for batch in range(BATCHES):
            async with engine.begin() as conn:
                stored = await ingest_transactions(
                    conn, user_id=user_id, account_id=account_id, records=_records(writer, batch)
                )
                assert isinstance(stored, Ok), stored
                await asyncio.sleep(0.01 + rng.random() * 0.05)
            await asyncio.sleep(rng.random() * 0.01)
        # Modify the first batch (new amounts) once everything was added.
        async with engine.begin() as conn:
            stored = await ingest_transactions(
                conn,
                user_id=user_id,
                account_id=account_id,
                records=_records(writer, 0, amount="2.00"),
            )
            assert isinstance(stored, Ok)
            assert stored.value.modified == PER_BATCH
    finally:
        await engine.dispose()


async def test_feed_never_skips_under_concurrent_writers(served: Any) -> None:
    user, headers = await served.user()
    accounts = []
    for name in ("checking.qfx", "credit_card.qfx"):
        r = await served.client.post(
            "/api/v1/imports",
            files={"file": (name, (support.FIXTURES / "chase" / name).read_bytes())},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        accounts.append(UUID(r.json()["accounts"][0]))

    added: list[str] = []
    latest: dict[str, str] = {}
    cursor = ""
    writers = asyncio.gather(
        *(_writer(served.database_url, user.id, accounts[w % 2], w) for w in range(WRITERS))
    )
    finished = False
    while True:
        page = await served.client.get(
            "/api/v1/transactions/changes",
            params={"cursor": cursor, "limit": 7},
            headers=headers,
        )
        assert page.status_code == 200, page.text
        page = page.json()
        added += [t["id"] for t in page["added"]]
        for t in page["added"] + page["modified"]:
            latest[t["id"]] = t["amount"]
        assert page["removed"] == []
        cursor = page["next_cursor"]
        if finished and not page["has_more"]:
            break
        if writers.done():
            await writers
            finished = True
        await asyncio.sleep(0.001)

    engine = create_engine(served.database_url)
    try:
        async with engine.connect() as conn:
            stored = {
                str(r.id): format(r.amount, "f")
                for r in await conn.execute(select(transactions.c.id, transactions.c.amount))
            }
            total = (
                await conn.execute(select(func.count()).select_from(transactions))
            ).scalar_one()
    finally:
        await engine.dispose()
    assert total == 25 + 15 + WRITERS * BATCHES * PER_BATCH
    assert len(added) == len(set(added)), "a change was delivered twice as added"
    assert set(added) == set(stored), "the feed skipped an added transaction"
    # Following the feed reproduces the stored state, modifications included.
    assert latest == stored, "the feed skipped a modification"
    assert sum(1 for v in stored.values() if v == "2.00") == WRITERS * PER_BATCH
