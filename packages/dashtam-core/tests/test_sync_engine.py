"""The transactions stage on both databases: idempotency, modify/remove, pending → posted, feed."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dashtam_core.adapters.sqlalchemy.tables_data import (
    change_log,
    outbox,
    pending_matches,
    transactions,
)
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.transaction import (
    SecurityLeg,
    TransactionStatus,
    TransactionSubtype,
    TransactionType,
)
from dashtam_core.errors import ValidationError
from dashtam_core.ports.provider import ProviderTransaction
from dashtam_core.result import Err, Ok
from dashtam_core.sync import (
    DateWindow,
    TransactionCounts,
    changes_since,
    event_from_payload,
    ingest_transactions,
)
from dashtam_core.testing.seeding import seed_account_chain

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


async def make_account(engine: AsyncEngine) -> tuple[UUID, UUID]:
    """Create a user, a connection and an account; return (user_id, account_id)."""
    user, _, account = await seed_account_chain(engine, created_at=NOW)
    return user.id, account.id


def tx(
    key: str,
    amount: str = "-10.00",
    *,
    day: date = date(2025, 2, 10),
    description: str | None = None,
    status: TransactionStatus = TransactionStatus.POSTED,
    pending_link: str | None = None,
    **extra: Any,
) -> ProviderTransaction:
    """A normalized record with sensible defaults."""
    return ProviderTransaction(
        provider_account_id="ACC-1",
        provider_transaction_id=key,
        dedupe_key=key,
        date=day,
        amount=Decimal(amount),
        currency="USD",
        description=description if description is not None else f"Shop {key}",
        type=TransactionType.OTHER,
        subtype=TransactionSubtype.PURCHASE,
        status=status,
        pending_link=pending_link,
        **extra,
    )


async def count(conn: AsyncConnection, table: Any) -> int:
    return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def ingest(
    engine: AsyncEngine,
    user_id: UUID,
    account_id: UUID,
    records: list[ProviderTransaction],
    **kw: Any,
) -> TransactionCounts:
    async with engine.begin() as conn:
        result = await ingest_transactions(
            conn, user_id=user_id, account_id=account_id, records=records, now=NOW, **kw
        )
    assert isinstance(result, Ok), result
    return result.value


async def totals(engine: AsyncEngine) -> tuple[int, int, int, int]:
    async with engine.connect() as conn:
        return (
            await count(conn, transactions),
            await count(conn, change_log),
            await count(conn, outbox),
            await count(conn, pending_matches),
        )


async def row_by_key(engine: AsyncEngine, account_id: UUID, key: str) -> Any:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                select(transactions).where(
                    transactions.c.account_id == account_id, transactions.c.dedupe_key == key
                )
            )
        ).one()


async def test_identical_reingest_writes_nothing(engine: AsyncEngine) -> None:
    user_id, account_id = await make_account(engine)
    records = [tx(f"T{i}", f"-{i}.50") for i in range(1, 2501)]
    first = await ingest(engine, user_id, account_id, records, batch_size=1000)
    assert first == TransactionCounts(added=2500)
    before = await totals(engine)
    assert before == (2500, 2500, 1, 0)
    updated_at = (await row_by_key(engine, account_id, "T7")).updated_at

    again = await ingest(engine, user_id, account_id, list(reversed(records)), batch_size=700)
    assert again == TransactionCounts(unchanged=2500)
    assert await totals(engine) == before
    assert (await row_by_key(engine, account_id, "T7")).updated_at == updated_at


async def test_amounts_stay_exact(engine: AsyncEngine) -> None:
    user_id, account_id = await make_account(engine)
    leg = SecurityLeg(symbol="VTI", quantity=Decimal("0.123456789"), price=Decimal("250.10"))
    await ingest(engine, user_id, account_id, [tx("A", "-12.30", security=leg, fees=Decimal("0"))])
    row = await row_by_key(engine, account_id, "A")
    assert str(row.amount) == "-12.30"
    assert str(row.security_quantity) == "0.123456789"
    assert str(row.security_price) == "250.10"


async def test_modified_record_is_updated_and_logged(engine: AsyncEngine) -> None:
    user_id, account_id = await make_account(engine)
    await ingest(engine, user_id, account_id, [tx("A"), tx("B")])
    original = await row_by_key(engine, account_id, "A")
    counts = await ingest(
        engine, user_id, account_id, [tx("A", "-11.00", description="Shop A corrected"), tx("B")]
    )
    assert counts == TransactionCounts(modified=1, unchanged=1)
    row = await row_by_key(engine, account_id, "A")
    assert row.id == original.id
    assert row.amount == Decimal("-11.00")
    assert row.description == "Shop A corrected"
    async with engine.connect() as conn:
        kinds = (await conn.execute(select(change_log.c.kind).order_by(change_log.c.seq))).all()
        events = (await conn.execute(select(outbox.c.event, outbox.c.payload))).all()
    assert [k for (k,) in kinds] == ["added", "added", "modified"]
    assert len(events) == 2
    last = event_from_payload(events[-1].event, events[-1].payload)
    assert last.name == "TransactionsChanged"
    assert (last.added, last.modified, last.removed) == (0, 1, 0)  # type: ignore[attr-defined]


async def test_invalid_batch_is_rejected_whole(engine: AsyncEngine) -> None:
    user_id, account_id = await make_account(engine)
    bad = [
        tx("A"),
        replace(tx("B"), currency="usd"),
        replace(tx("C"), amount=1.5),  # type: ignore[arg-type]
        replace(tx("D"), dedupe_key=""),
    ]
    async with engine.begin() as conn:
        result = await ingest_transactions(
            conn, user_id=user_id, account_id=account_id, records=bad
        )
    assert isinstance(result, Err)
    assert isinstance(result.error, ValidationError)
    fields = {e.field for e in result.error.errors}
    assert fields == {
        "transactions[1].currency",
        "transactions[2].amount",
        "transactions[3].dedupe_key",
    }
    assert await totals(engine) == (0, 0, 0, 0)


async def test_conflicting_duplicates_in_one_answer_are_rejected(engine: AsyncEngine) -> None:
    user_id, account_id = await make_account(engine)
    async with engine.begin() as conn:
        result = await ingest_transactions(
            conn, user_id=user_id, account_id=account_id, records=[tx("A"), tx("A", "-3.00")]
        )
    assert isinstance(result, Err)
    same = await ingest(engine, user_id, account_id, [tx("A"), tx("A")])
    assert same == TransactionCounts(added=1)


async def test_removed_detection_in_authoritative_window(engine: AsyncEngine) -> None:
    user_id, account_id = await make_account(engine)
    days = [date(2025, 1, 5), date(2025, 1, 20), date(2025, 2, 5), date(2025, 2, 20)]
    records = [tx(f"T{i}", day=d) for i, d in enumerate(days)]
    await ingest(engine, user_id, account_id, records)
    window = DateWindow(date(2025, 1, 15), date(2025, 2, 28))
    # Not authoritative: nothing is removed.
    counts = await ingest(engine, user_id, account_id, [records[2]], window=window)
    assert counts == TransactionCounts(unchanged=1)
    # Authoritative: T1 and T3 (in the window, missing) are removed; T0 is outside the window.
    counts = await ingest(
        engine, user_id, account_id, [records[2]], window=window, authoritative=True
    )
    assert counts == TransactionCounts(removed=2, unchanged=1)
    for key, removed in (("T0", False), ("T1", True), ("T2", False), ("T3", True)):
        row = await row_by_key(engine, account_id, key)
        assert (row.removed_at is not None) is removed, key
    # Repeating the same answer removes nothing more.
    again = await ingest(
        engine, user_id, account_id, [records[2]], window=window, authoritative=True
    )
    assert again == TransactionCounts(unchanged=1)
    # A silently empty answer removes nothing.
    empty = await ingest(engine, user_id, account_id, [], window=window, authoritative=True)
    assert empty == TransactionCounts()
    assert (await row_by_key(engine, account_id, "T2")).removed_at is None
    # A withdrawn transaction that comes back is revived and reported as added.
    back = await ingest(engine, user_id, account_id, [records[1]])
    assert back == TransactionCounts(added=1)
    assert (await row_by_key(engine, account_id, "T1")).removed_at is None


async def test_pending_settled_by_provider_link(engine: AsyncEngine) -> None:
    user_id, account_id = await make_account(engine)
    pending = tx("P1", "-20.00", status=TransactionStatus.PENDING, description="AUTH HOLD")
    await ingest(engine, user_id, account_id, [pending])
    # The pending one reappearing as pending is a no-op.
    assert await ingest(engine, user_id, account_id, [pending]) == TransactionCounts(unchanged=1)

    posted = tx("X9", "-20.00", day=date(2025, 2, 12), description="Other", pending_link="P1")
    counts = await ingest(engine, user_id, account_id, [posted])
    assert counts == TransactionCounts(added=1, removed=1, pending_matched=1)
    await assert_settled(engine, user_id, account_id, "P1", "X9", "provider_link")

    # Both re-sent later (the pending is stale): still exactly one live transaction.
    again = await ingest(engine, user_id, account_id, [pending, posted])
    assert again == TransactionCounts(unchanged=2)
    await assert_settled(engine, user_id, account_id, "P1", "X9", "provider_link")


async def test_pending_settled_by_heuristic_with_tip(engine: AsyncEngine) -> None:
    user_id, account_id = await make_account(engine)
    pending = tx(
        "P1",
        "-40.00",
        day=date(2025, 2, 1),
        status=TransactionStatus.PENDING,
        description="SQ *BLUE BOTTLE COFFEE 4471",
    )
    unrelated = tx("P2", "-40.00", day=date(2025, 2, 1), status=TransactionStatus.PENDING)
    await ingest(engine, user_id, account_id, [pending, unrelated])
    posted = tx("T1", "-46.00", day=date(2025, 2, 3), description="BLUE BOTTLE COFFEE OAKLAND")
    counts = await ingest(engine, user_id, account_id, [posted, unrelated])
    assert counts == TransactionCounts(added=1, removed=1, unchanged=1, pending_matched=1)
    await assert_settled(
        engine, user_id, account_id, "P1", "T1", "amount_date_description", live_rows=2
    )
    assert (await row_by_key(engine, account_id, "P2")).removed_at is None


async def test_pending_arriving_after_its_posted_row_is_settled(engine: AsyncEngine) -> None:
    user_id, account_id = await make_account(engine)
    await ingest(engine, user_id, account_id, [tx("T1", "-5.00", pending_link="P1")])
    late = tx("P1", "-5.00", status=TransactionStatus.PENDING)
    counts = await ingest(engine, user_id, account_id, [late])
    assert counts == TransactionCounts(added=1, modified=1, removed=1, pending_matched=1)
    await assert_settled(engine, user_id, account_id, "P1", "T1", "provider_link")


async def test_pending_that_posts_under_the_same_key_is_modified(engine: AsyncEngine) -> None:
    user_id, account_id = await make_account(engine)
    await ingest(engine, user_id, account_id, [tx("K", status=TransactionStatus.PENDING)])
    counts = await ingest(engine, user_id, account_id, [tx("K")])
    assert counts == TransactionCounts(modified=1)
    async with engine.connect() as conn:
        assert await count(conn, transactions) == 1
        assert await count(conn, pending_matches) == 0


async def assert_settled(
    engine: AsyncEngine,
    user_id: UUID,
    account_id: UUID,
    pending: str,
    posted: str,
    reason: str,
    live_rows: int = 1,
) -> None:
    p = await row_by_key(engine, account_id, pending)
    q = await row_by_key(engine, account_id, posted)
    assert p.removed_at is not None
    assert p.removed_reason == "settled"
    assert q.removed_at is None
    assert q.pending_transaction_id == p.id
    async with engine.connect() as conn:
        live = (
            await conn.execute(
                select(func.count())
                .select_from(transactions)
                .where(transactions.c.account_id == account_id, transactions.c.removed_at.is_(None))
            )
        ).scalar_one()
        match = (await conn.execute(select(pending_matches))).one()
        page = await changes_since(conn, user_id, None, 500)
        names = [r.event for r in await conn.execute(select(outbox.c.event).order_by(outbox.c.id))]
    assert live == live_rows
    assert (match.pending_transaction_id, match.posted_transaction_id) == (p.id, q.id)
    assert match.reason == reason
    assert page.removed == [p.id]
    added = {t.id: t for t in page.added}
    assert p.id not in added
    assert added[q.id].pending_transaction_id == p.id
    assert names.count("PendingTransactionPosted") == 1


async def test_change_feed_pagination(engine: AsyncEngine) -> None:
    user_id, account_id = await make_account(engine)
    other_user, other_account = await make_account(engine)
    await ingest(engine, user_id, account_id, [tx(f"T{i}") for i in range(5)])
    await ingest(engine, other_user, other_account, [tx("Z")])
    await ingest(engine, user_id, account_id, [tx("T1", "-99.00"), tx("T5")])

    async with engine.connect() as conn:
        empty_start = await changes_since(conn, user_id, None, 3)
        assert [t.dedupe_key for t in empty_start.added] == ["T0", "T1", "T2"]
        assert empty_start.has_more
        second = await changes_since(conn, user_id, empty_start.next_cursor, 3)
        assert [t.dedupe_key for t in second.added] == ["T3", "T4"]
        assert [t.dedupe_key for t in second.modified] == ["T1"]
        assert second.modified[0].amount == Decimal("-99.00")
        assert second.has_more
        third = await changes_since(conn, user_id, second.next_cursor, 3)
        assert [t.dedupe_key for t in third.added] == ["T5"]
        assert not third.has_more
        done = await changes_since(conn, user_id, third.next_cursor, 3)
        assert (done.added, done.modified, done.removed) == ([], [], [])
        assert done.next_cursor == third.next_cursor
        assert not done.has_more
        # Another user's feed holds only their own change.
        theirs = await changes_since(conn, other_user, 0, 100)
        assert [t.dedupe_key for t in theirs.added] == ["Z"]
        with pytest.raises(ValueError):
            await changes_since(conn, user_id, None, 0)


async def test_change_feed_follows_commit_order_with_concurrent_writers(
    engine: AsyncEngine,
) -> None:
    user_id, account_a = await make_account(engine)
    async with SqlAlchemyUnitOfWork(engine) as uow:
        acc = await uow.accounts.get(account_a)
        assert acc is not None
        account_b = uuid7()
        await uow.accounts.add(replace(acc, id=account_b, provider_account_id="ACC-2"))
        await uow.commit()

    first = await engine.connect()
    await first.begin()
    result = await ingest_transactions(
        first, user_id=user_id, account_id=account_a, records=[tx("A1"), tx("A2")], now=NOW
    )
    assert isinstance(result, Ok)

    async def second_writer() -> None:
        async with engine.begin() as conn:
            res = await ingest_transactions(
                conn, user_id=user_id, account_id=account_b, records=[tx("B1")], now=NOW
            )
            assert isinstance(res, Ok)

    task = asyncio.create_task(second_writer())
    await asyncio.sleep(0.3)
    assert not task.done()  # queued behind the first writer of this user
    await first.commit()
    await first.close()
    await asyncio.wait_for(task, 10)

    async with engine.connect() as conn:
        seqs = (
            await conn.execute(
                select(change_log.c.account_id, change_log.c.seq).order_by(change_log.c.seq)
            )
        ).all()
        page = await changes_since(conn, user_id, None, 100)
    assert [a for a, _ in seqs] == [account_a, account_a, account_b]
    assert [t.dedupe_key for t in page.added] == ["A1", "A2", "B1"]


async def test_rollback_leaves_nothing(engine: AsyncEngine) -> None:
    user_id, account_id = await make_account(engine)
    async with engine.connect() as conn:
        await conn.begin()
        result = await ingest_transactions(
            conn, user_id=user_id, account_id=account_id, records=[tx("A")], now=NOW
        )
        assert isinstance(result, Ok)
        await conn.rollback()
    assert await totals(engine) == (0, 0, 0, 0)
    counts = await ingest(engine, user_id, account_id, [tx("A")])
    assert counts == TransactionCounts(added=1)


def test_dates_are_validated() -> None:
    from dashtam_core.sync.identity import validate_transactions

    naive = tx("A", posted_at=datetime(2025, 1, 1, 12, 0))
    as_datetime = replace(tx("B"), date=datetime(2025, 1, 1, tzinfo=UTC))
    problems = validate_transactions([naive, as_datetime, tx("C", day=date(2025, 1, 1))])
    assert [p.field for p in problems] == ["transactions[0].posted_at", "transactions[1].date"]
    assert validate_transactions([tx("D")]) == []
