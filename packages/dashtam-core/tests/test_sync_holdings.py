"""Holdings snapshots, balance snapshots, outbox, raw archive and sync runs on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dashtam_core.adapters.sqlalchemy.tables_data import (
    balance_snapshots,
    holding_snapshots,
    holdings,
    outbox,
)
from dashtam_core.domain.account import AccountType
from dashtam_core.domain.events import HoldingsSnapshotted
from dashtam_core.domain.holding import AssetType, CostBasis, CostBasisUnit
from dashtam_core.domain.ids import uuid7
from dashtam_core.errors import ValidationError
from dashtam_core.ports.provider import ProviderHolding, RawPayload
from dashtam_core.result import Err, Ok
from dashtam_core.sync import (
    HoldingsCounts,
    SuspiciousEmptyAnswer,
    SyncStatus,
    archive_raw_payloads,
    balance_history,
    balance_snapshot,
    finish_sync_run,
    get_watermark,
    list_holdings,
    load_raw_payload,
    mark_dispatched,
    pending_events,
    queue_sync_run,
    set_watermark,
    snapshot_holdings,
    start_sync_run,
    upsert_balance_snapshots,
)
from dashtam_core.testing.seeding import seed_account_chain

T0 = datetime(2025, 3, 3, 21, 0, tzinfo=UTC)


async def make_account(engine: AsyncEngine) -> tuple[UUID, UUID, UUID]:
    """Create a user, a connection and a brokerage account; return their ids."""
    user, connection, account = await seed_account_chain(
        engine,
        provider_account_id="BRK-1",
        name="Brokerage",
        type=AccountType.BROKERAGE,
        created_at=T0,
    )
    return user.id, connection.id, account.id


def pos(
    instrument: str, quantity: str, price: str = "10.00", *, as_of: datetime = T0
) -> ProviderHolding:
    qty = Decimal(quantity)
    return ProviderHolding(
        provider_account_id="BRK-1",
        instrument_id=instrument,
        symbol=instrument.upper(),
        asset_type=AssetType.EQUITY,
        quantity=qty,
        currency="USD",
        as_of=as_of,
        cost_basis=CostBasis.from_per_unit(Decimal("8.00"), qty),
        price=Decimal(price),
        market_value=Decimal(price) * qty,
    )


async def count(conn: AsyncConnection, table: Any) -> int:
    return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def snap(
    engine: AsyncEngine, user_id: UUID, account_id: UUID, records: list[ProviderHolding], **kw: Any
) -> Any:
    async with engine.begin() as conn:
        return await snapshot_holdings(
            conn, user_id=user_id, account_id=account_id, records=records, now=T0, **kw
        )


async def test_snapshot_replaces_positions_and_is_idempotent(engine: AsyncEngine) -> None:
    user_id, _, account_id = await make_account(engine)
    first = await snap(engine, user_id, account_id, [pos("aapl", "10"), pos("tsla", "-5")])
    assert first == Ok(HoldingsCounts(opened=2, open_positions=2))
    again = await snap(engine, user_id, account_id, [pos("tsla", "-5"), pos("aapl", "10")])
    assert again == Ok(HoldingsCounts(unchanged=2, open_positions=2))
    async with engine.connect() as conn:
        assert await count(conn, holding_snapshots) == 2
        assert await count(conn, outbox) == 1
        stored = await list_holdings(conn, account_id)
    short = next(h for h in stored if h.symbol == "TSLA")
    assert short.quantity == Decimal("-5")
    assert short.cost_basis_total == Decimal("-40.00")
    assert short.cost_basis_per_unit == Decimal("8.00")
    assert short.cost_basis_reported is CostBasisUnit.PER_UNIT
    assert short.unrealized_gain == Decimal("-10.00")


async def test_vanished_positions_are_closed_and_can_reopen(engine: AsyncEngine) -> None:
    user_id, _, account_id = await make_account(engine)
    await snap(engine, user_id, account_id, [pos("aapl", "10"), pos("msft", "3")])
    later = T0 + timedelta(days=1)
    counts = await snap(engine, user_id, account_id, [pos("aapl", "12", as_of=later)])
    assert counts == Ok(HoldingsCounts(changed=1, closed=1, open_positions=1))
    async with engine.connect() as conn:
        every = {h.symbol: h for h in await list_holdings(conn, account_id, include_closed=True)}
        open_now = await list_holdings(conn, account_id)
        history = (
            await conn.execute(
                select(holding_snapshots.c.instrument_id, holding_snapshots.c.change)
                .where(holding_snapshots.c.account_id == account_id)
                .order_by(holding_snapshots.c.id)
            )
        ).all()
        rows = (await conn.execute(select(outbox.c.payload).order_by(outbox.c.id))).all()
    assert [h.symbol for h in open_now] == ["AAPL"]
    assert every["MSFT"].quantity == 0
    assert every["MSFT"].market_value == 0
    assert every["MSFT"].closed_at == T0
    assert [tuple(r) for r in history] == [
        ("aapl", "opened"),
        ("msft", "opened"),
        ("aapl", "changed"),
        ("msft", "closed"),
    ]
    assert rows[-1].payload["closed_positions"] == 1
    reopened = await snap(
        engine, user_id, account_id, [pos("aapl", "12", as_of=later), pos("msft", "1")]
    )
    assert reopened == Ok(HoldingsCounts(opened=1, unchanged=1, open_positions=2))


async def test_empty_answer_does_not_wipe_positions(engine: AsyncEngine) -> None:
    user_id, _, account_id = await make_account(engine)
    await snap(engine, user_id, account_id, [pos("aapl", "10")])
    refused = await snap(engine, user_id, account_id, [])
    assert isinstance(refused, Err)
    assert isinstance(refused.error, SuspiciousEmptyAnswer)
    assert refused.error.code == "suspicious_empty_answer"
    async with engine.connect() as conn:
        assert [h.symbol for h in await list_holdings(conn, account_id)] == ["AAPL"]
    accepted = await snap(
        engine, user_id, account_id, [], allow_empty=True, reason="user sold everything"
    )
    assert accepted == Ok(HoldingsCounts(closed=1, open_positions=0))
    async with engine.connect() as conn:
        assert await list_holdings(conn, account_id) == []
        reason = (
            await conn.execute(
                select(holding_snapshots.c.reason).where(holding_snapshots.c.change == "closed")
            )
        ).scalar_one()
    assert reason == "user sold everything"
    # An empty account staying empty is fine without any flag.
    assert await snap(engine, user_id, account_id, []) == Ok(HoldingsCounts())


async def test_invalid_holdings_are_rejected(engine: AsyncEngine) -> None:
    user_id, _, account_id = await make_account(engine)
    dup = await snap(engine, user_id, account_id, [pos("aapl", "1"), pos("aapl", "2")])
    assert isinstance(dup, Err)
    assert isinstance(dup.error, ValidationError)
    async with engine.connect() as conn:
        assert await count(conn, holdings) == 0


async def test_balance_snapshot_latest_as_of_wins(engine: AsyncEngine) -> None:
    _, _, account_id = await make_account(engine)
    day = date(2025, 3, 3)
    noon = datetime(2025, 3, 3, 12, tzinfo=UTC)

    def at(hour: int, current: str) -> Any:
        return balance_snapshot(
            account_id,
            as_of=noon.replace(hour=hour),
            current=Decimal(current),
            available=None,
            currency="USD",
        )

    async with engine.begin() as conn:
        assert await upsert_balance_snapshots(conn, [at(12, "100.00"), at(9, "90.00")]) == 1
        assert await upsert_balance_snapshots(conn, [at(10, "95.00")]) == 0  # older: ignored
        assert await upsert_balance_snapshots(conn, [at(12, "100.00")]) == 0  # same: nothing
        assert await upsert_balance_snapshots(conn, [at(18, "120.50")]) == 1  # newer wins
        other_day = balance_snapshot(
            account_id,
            as_of=noon - timedelta(days=1),
            current=Decimal("80"),
            available=Decimal("5"),
            currency="USD",
        )
        assert await upsert_balance_snapshots(conn, [other_day]) == 1
    async with engine.connect() as conn:
        series = await balance_history(conn, account_id)
        only_day = await balance_history(conn, account_id, day, day)
        assert await count(conn, balance_snapshots) == 2
    assert [(s.date, s.current) for s in series] == [
        (date(2025, 3, 2), Decimal("80")),
        (day, Decimal("120.50")),
    ]
    assert [s.current for s in only_day] == [Decimal("120.50")]


async def test_outbox_round_trip_and_dispatch(engine: AsyncEngine) -> None:
    user_id, _, account_id = await make_account(engine)
    await snap(engine, user_id, account_id, [pos("aapl", "1")])
    async with engine.begin() as conn:
        waiting = await pending_events(conn)
        assert len(waiting) == 1
        event = waiting[0].event
        assert isinstance(event, HoldingsSnapshotted)
        assert (event.account_id, event.user_id, event.open_positions) == (account_id, user_id, 1)
        assert event.occurred_at == T0
        assert await mark_dispatched(conn, [waiting[0].id], now=T0) == 1
        assert await mark_dispatched(conn, [waiting[0].id], now=T0) == 0
        assert await pending_events(conn) == []


async def test_raw_payloads_and_watermarks(engine: AsyncEngine) -> None:
    _, conn_id, account_id = await make_account(engine)
    big = b'{"items": [' + b'{"a": 1},' * 40000 + b"]}"
    pages = [
        RawPayload("transactions", big, "application/json", T0, "GET /v2/x?page=1", "BRK-1"),
        RawPayload("accounts", b"[]", "application/json", T0),
    ]
    async with engine.begin() as conn:
        ids = await archive_raw_payloads(conn, connection_id=conn_id, payloads=pages)
        assert await get_watermark(conn, account_id, "transactions") is None
        await set_watermark(conn, account_id, "transactions", "2025-03-01", now=T0)
        await set_watermark(conn, account_id, "transactions", "2025-03-02", now=T0)
    async with engine.connect() as conn:
        loaded = await load_raw_payload(conn, ids[0])
        assert loaded == pages[0]
        assert await load_raw_payload(conn, uuid7()) is None
        assert await get_watermark(conn, account_id, "transactions") == "2025-03-02"


async def test_one_active_sync_run_per_connection(engine: AsyncEngine) -> None:
    _, conn_id, _ = await make_account(engine)
    async with engine.begin() as conn:
        run, created = await queue_sync_run(conn, conn_id, now=T0)
        assert created
        assert run.status is SyncStatus.QUEUED
        same, created_again = await queue_sync_run(conn, conn_id, now=T0)
        assert not created_again
        assert same.id == run.id
        assert await start_sync_run(conn, run.id, now=T0)
        assert not await start_sync_run(conn, run.id, now=T0)
        assert await finish_sync_run(conn, run.id, succeeded=True, counts={"accounts": 1}, now=T0)
        assert not await finish_sync_run(conn, run.id, succeeded=False, now=T0)
        nxt, created_next = await queue_sync_run(conn, conn_id, now=T0)
        assert created_next
        assert nxt.id != run.id
