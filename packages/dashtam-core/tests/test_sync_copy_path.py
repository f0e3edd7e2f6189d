"""The bulk paths of the transactions stage: batch UUIDv7s, COPY on PostgreSQL, large answers."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.sqlalchemy.tables_data import change_log, outbox, transactions
from dashtam_core.domain.ids import uuid7, uuid7_batch, uuid7_time_ms
from dashtam_core.domain.transaction import TransactionStatus, TransactionSubtype, TransactionType
from dashtam_core.ports.provider import ProviderTransaction
from dashtam_core.result import Err, Ok
from dashtam_core.sync import DateWindow, TransactionCounts, changes_since, ingest_transactions
from dashtam_core.sync.copyin import (
    Rejected,
    checked_stream,
    classify,
    copy_new_transactions,
)
from dashtam_core.sync.identity import checked_transactions, transaction_hash
from dashtam_core.testing.seeding import seed_account_chain

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = DateWindow(date(2024, 1, 1), date(2025, 12, 31))


def tx(key: str, amount: str = "-10.00", day: int = 0, **extra: object) -> ProviderTransaction:
    """A normalized record."""
    record = ProviderTransaction(
        provider_account_id="ACC-1",
        provider_transaction_id=key,
        dedupe_key=key,
        date=date(2025, 1, 1) + timedelta(days=day % 300),
        amount=Decimal(amount),
        currency="USD",
        description=f"Shop {key}",
        type=TransactionType.OTHER,
        subtype=TransactionSubtype.PURCHASE,
        status=TransactionStatus.POSTED,
    )
    return replace(record, **extra)  # type: ignore[arg-type]


async def make_account(engine: AsyncEngine) -> tuple[UUID, UUID]:
    """A user, a connection and an account; returns (user_id, account_id)."""
    user, _, account = await seed_account_chain(engine, created_at=NOW)
    return user.id, account.id


async def ingest(
    engine: AsyncEngine, user_id: UUID, account_id: UUID, records: list[ProviderTransaction]
) -> TransactionCounts:
    async with engine.begin() as conn:
        result = await ingest_transactions(
            conn,
            user_id=user_id,
            account_id=account_id,
            records=records,
            window=WINDOW,
            authoritative=True,
            now=NOW,
        )
    assert isinstance(result, Ok), result
    return result.value


async def count(engine: AsyncEngine, table: object, *where: object) -> int:
    async with engine.connect() as conn:
        stmt = select(func.count()).select_from(table).where(*where)  # type: ignore[arg-type]
        return int((await conn.execute(stmt)).scalar_one())


async def feed_keys(engine: AsyncEngine, user_id: UUID) -> list[tuple[str, str]]:
    """Every (dedupe_key, kind) of the user's change log, in seq order."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(transactions.c.dedupe_key, change_log.c.kind)
            .join(transactions, transactions.c.id == change_log.c.transaction_id)
            .where(change_log.c.user_id == user_id)
            .order_by(change_log.c.seq)
        )
        return [(key, kind) for key, kind in rows]


def test_uuid7_batch_continues_the_uuid7_sequence() -> None:
    before = uuid7()
    batch = uuid7_batch(10_000)  # more than 4096: the counter rolls into the next millisecond
    after = uuid7()
    assert len(batch) == 10_000
    assert len(set(batch)) == 10_000
    assert before < batch[0]
    assert batch[-1] < after
    assert all(a < b for a, b in itertools.pairwise(batch))
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in batch)
    assert uuid7_time_ms(batch[-1]) >= uuid7_time_ms(batch[0]) + 2
    sample = batch[1234]
    assert sample == uuid.UUID(str(sample))
    assert hash(sample) == hash(uuid.UUID(int=sample.int))
    assert uuid7_batch(0) == []
    assert uuid7_batch(-1) == []


async def test_large_first_sync_then_mixed_sync(engine: AsyncEngine) -> None:
    """3,000 rows (COPY + server-side log on PostgreSQL), then an answer mixing every case."""
    user_id, account_id = await make_account(engine)
    first = [tx(f"K{i:05d}", day=i) for i in range(3000)]
    assert await ingest(engine, user_id, account_id, first) == TransactionCounts(added=3000)
    feed = await feed_keys(engine, user_id)
    assert feed == [(r.dedupe_key, "added") for r in first]  # the answer's order
    async with engine.connect() as conn:
        result = await conn.execute(select(transactions.c.dedupe_key, transactions.c.content_hash))
        stored = {key: digest for key, digest in result.all()}  # noqa: C416
    assert stored == {r.dedupe_key: transaction_hash(r) for r in first}

    # Same answer again: nothing at all.
    again = await ingest(engine, user_id, account_id, first)
    assert again == TransactionCounts(unchanged=3000)
    assert await count(engine, change_log) == 3000

    # K00000 withdrawn (missing), K00001 modified, 2,500 new keys interleaved, rest unchanged.
    second = [tx("K00001", "-99.00", day=1)] + [
        item
        for i in range(2, 3000)
        for item in ([first[i], tx(f"N{i:05d}", day=i)] if i < 2502 else [first[i]])
    ]
    counts = await ingest(engine, user_id, account_id, second)
    assert counts == TransactionCounts(added=2500, modified=1, removed=1, unchanged=2998)
    feed = (await feed_keys(engine, user_id))[3000:]
    expected = [("K00001", "modified")] + [(f"N{i:05d}", "added") for i in range(2, 2502)]
    assert feed == [*expected, ("K00000", "removed")]
    async with engine.connect() as conn:
        page = await changes_since(conn, user_id, 3000, 5000)
    assert [t.dedupe_key for t in page.modified] == ["K00001"]
    assert len(page.added) == 2500
    assert page.removed
    assert not page.has_more

    # The withdrawn row comes back: revived, reported added.
    back = await ingest(engine, user_id, account_id, [first[0], *second])
    assert back == TransactionCounts(added=1, unchanged=len(second))
    assert await count(engine, outbox) == 3  # one TransactionsChanged per changing unit


async def test_invalid_record_late_in_a_first_sync_writes_nothing(engine: AsyncEngine) -> None:
    user_id, account_id = await make_account(engine)
    records = [tx(f"K{i:05d}") for i in range(4000)]
    records[3500] = replace(records[3500], currency="usd")
    records[3900] = replace(records[3900], dedupe_key="")
    async with engine.begin() as conn:
        result = await ingest_transactions(
            conn, user_id=user_id, account_id=account_id, records=records, now=NOW
        )
        # The caller's transaction is still usable after the rejected stream.
        assert (await conn.execute(select(func.count()).select_from(transactions))).scalar() == 0
    assert isinstance(result, Err)
    assert [e.field for e in result.error.errors] == [
        "transactions[3500].currency",
        "transactions[3900].dedupe_key",
    ]
    assert result.error.errors == checked_transactions(records)[0]
    assert (await count(engine, transactions), await count(engine, change_log)) == (0, 0)
    assert await ingest(engine, user_id, account_id, records[:3000]) == TransactionCounts(
        added=3000
    )


@pytest.mark.postgres
async def test_copy_conflict_and_rejection_leave_nothing(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the COPY path is PostgreSQL only")
    user_id, account_id = await make_account(engine)
    await ingest(engine, user_id, account_id, [tx("A")])
    _, pairs = checked_transactions([tx("B"), tx("A", "-5.00"), tx("C")])
    async with engine.begin() as conn:
        ids: list[UUID] = []
        # "A" exists: the unique index refuses the COPY, the savepoint is rolled back.
        assert await copy_new_transactions(conn, account_id, pairs, NOW, ids) is None
        errors: list[object] = []
        bad = [tx("D"), tx("E", currency="eur")]
        with pytest.raises(Rejected):
            await copy_new_transactions(conn, account_id, checked_stream(bad, errors), NOW)  # type: ignore[arg-type]
        assert len(errors) == 1
        copied = await copy_new_transactions(conn, account_id, [pairs[0], pairs[2]], NOW)
        assert copied == 2
        states = await classify(conn, account_id, pairs, (WINDOW.start, WINDOW.end))
    assert states.unchanged == frozenset({0, 2})  # B and C now stored with the same content
    assert set(states.changed) == {"A"}
    assert states.live_in_window == 3
    assert await count(engine, transactions) == 3
