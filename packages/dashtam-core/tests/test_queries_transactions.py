"""The transaction list read model against a plain-Python oracle, on SQLite and PostgreSQL.

Every filter shape (account, dates, type, status, text search with LIKE metacharacters) and
keyset cursor is checked: walking all pages of any size yields exactly the oracle's rows, in
``(date DESC, id DESC)`` order, with no row skipped or repeated, removed rows and other users'
rows never included. Statements are cached per filter shape, so the same shape is run with
different values to prove no value leaks from one call into the next.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.sqlalchemy.engine import read_engine
from dashtam_core.adapters.sqlalchemy.tables_data import transactions
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWorkFactory
from dashtam_core.application import queries
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.transaction import TransactionStatus, TransactionType
from dashtam_core.testing.oracles import expected_transactions
from dashtam_core.testing.seeding import seed_account, seed_connection, seed_user

pytestmark = pytest.mark.asyncio

DESCRIPTIONS = ("Coffee shop", "COFFEE beans", "50% off sale", "a_b test", "ab test", "Rent")
TYPES = (TransactionType.OTHER, TransactionType.TRANSFER)
STATUSES = (TransactionStatus.POSTED, TransactionStatus.PENDING)
START = date(2025, 1, 1)


async def _seed(engine: AsyncEngine) -> tuple[UUID, list[UUID], UUID, list[dict[str, Any]]]:
    """Two users; the first has three accounts, the second one. Returns the first's rows."""
    now = datetime.now(UTC)
    rng = random.Random(7)
    owned: dict[UUID, list[UUID]] = {}
    async with SqlAlchemyUnitOfWorkFactory(engine)() as uow:
        for index, count in enumerate((3, 1)):
            user = await seed_user(uow)
            conn = await seed_connection(uow, user.id, provider="chase")
            owned[user.id] = []
            for n in range(count):
                account = await seed_account(uow, conn, provider_account_id=f"acct-{index}-{n}")
                owned[user.id].append(account.id)
        await uow.commit()
    (me, mine), (_, theirs) = owned.items()
    rows: list[dict[str, Any]] = []
    for account_id in [*mine, *theirs]:
        for i in range(25):
            rows.append(
                {
                    "id": uuid7(),
                    "account_id": account_id,
                    "provider_transaction_id": f"p-{account_id}-{i}",
                    "dedupe_key": f"d-{account_id}-{i}",
                    # Few distinct dates: many ties, ordered by id.
                    "date": START + timedelta(days=rng.randrange(6)),
                    "amount": Decimal(rng.randrange(-50000, 50000)) / 100,
                    "currency": "USD",
                    "description": rng.choice(DESCRIPTIONS),
                    "merchant": rng.choice((None, "Blue Bottle", "100%_Merchant")),
                    "type": str(rng.choice(TYPES)),
                    "subtype": "other",
                    "status": str(rng.choice(STATUSES)),
                    "content_hash": "0" * 64,
                    "created_at": now,
                    "updated_at": now,
                    "removed_at": now if rng.random() < 0.1 else None,
                }
            )
    async with engine.begin() as conn:
        await conn.execute(insert(transactions), rows)
    return me, mine, theirs[0], [r for r in rows if r["account_id"] in mine]


def _filters(mine: list[UUID], foreign: UUID) -> list[queries.TransactionFilter]:
    rng = random.Random(11)
    found = [queries.TransactionFilter()]
    for _ in range(40):
        found.append(
            queries.TransactionFilter(
                account_id=rng.choice([None, None, *mine, foreign]),
                start=rng.choice([None, START + timedelta(days=rng.randrange(6))]),
                end=rng.choice([None, START + timedelta(days=rng.randrange(6))]),
                type=rng.choice([None, *TYPES]),
                status=rng.choice([None, *STATUSES]),
                q=rng.choice([None, None, "coffee", "50%", "a_b", "_", "%", "bottle", "zzz"]),
            )
        )
    return found


async def _walk(
    engine: AsyncEngine, user_id: UUID, flt: queries.TransactionFilter, limit: int
) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(200):
        async with engine.connect() as conn:
            rows, cursor = await queries.transaction_rows(
                conn, user_id, flt, limit=limit, cursor=cursor, api_only=True
            )
        assert len(rows) <= limit
        seen.extend(str(r.id) for r in rows)
        if cursor is None:
            return seen
    raise AssertionError("pagination did not end")


async def test_every_filter_shape_and_page_size_matches_the_oracle(engine: AsyncEngine) -> None:
    me, mine, foreign, rows = await _seed(engine)
    reader = read_engine(engine)
    rng = random.Random(3)
    for flt in _filters(mine, foreign):
        expected = [str(r["id"]) for r in expected_transactions(rows, flt)]
        limit = rng.choice((1, 4, 7, 50, queries.MAX_LIMIT))
        assert await _walk(reader, me, flt, limit) == expected, (flt, limit)


async def test_full_rows_and_api_rows_agree(engine: AsyncEngine) -> None:
    me, _, _, _ = await _seed(engine)
    async with engine.connect() as conn:
        full, cursor_full = await queries.transaction_rows(conn, me, limit=10)
        api, cursor_api = await queries.transaction_rows(conn, me, limit=10, api_only=True)
    assert cursor_full == cursor_api
    assert [str(r.id) for r in full] == [r.id for r in api]
    assert [format(r.amount, "f") for r in full] == [r.amount for r in api]


async def test_another_users_account_filter_is_empty(engine: AsyncEngine) -> None:
    me, _, foreign, _ = await _seed(engine)
    async with engine.connect() as conn:
        rows, cursor = await queries.transaction_rows(
            conn, me, queries.TransactionFilter(account_id=foreign)
        )
    assert rows == []
    assert cursor is None
