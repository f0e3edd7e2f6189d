"""Property: the same batches ingested in any order, with repeats, converge to the same rows."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any, TypeVar
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.adapters.sqlalchemy.tables_data import transactions
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.domain.account import Account, AccountType
from dashtam_core.domain.connection import ConnectionStatus, ProviderConnection
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.transaction import TransactionStatus, TransactionSubtype, TransactionType
from dashtam_core.domain.user import User
from dashtam_core.ports.provider import ProviderTransaction
from dashtam_core.result import Ok
from dashtam_core.sync import MatchRules, ingest_transactions

T = TypeVar("T")
NOW = datetime(2025, 3, 1, tzinfo=UTC)
LINK_ONLY = MatchRules(min_similarity=2.0)  # heuristics off: the property is about ordering


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one example on its own event loop (hypothesis drives a synchronous test)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def record(
    key: str, amount: Decimal, day: int, status: TransactionStatus, link: str | None = None
) -> ProviderTransaction:
    return ProviderTransaction(
        provider_account_id="ACC",
        provider_transaction_id=key,
        dedupe_key=key,
        date=date(2025, 1, 1) + timedelta(days=day),
        amount=amount,
        currency="USD",
        description=f"merchant {key}",
        type=TransactionType.OTHER,
        subtype=TransactionSubtype.PURCHASE,
        status=status,
        pending_link=link,
    )


amounts = st.decimals(min_value=Decimal("-999.99"), max_value=Decimal("999.99"), places=2)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[list[ProviderTransaction]], list[int]]:
    """Records (posted ones and linked pending/posted pairs) cut into overlapping batches."""
    recs: list[ProviderTransaction] = []
    for i in range(draw(st.integers(1, 8))):
        day = draw(st.integers(0, 30))
        recs.append(record(f"T{i}", draw(amounts), day, TransactionStatus.POSTED))
    for i in range(draw(st.integers(0, 3))):
        amount, day = draw(amounts), draw(st.integers(0, 30))
        recs.append(record(f"P{i}", amount, day, TransactionStatus.PENDING))
        recs.append(record(f"L{i}", amount, day + 2, TransactionStatus.POSTED, link=f"P{i}"))
    order = draw(st.permutations(recs))
    cuts = sorted(draw(st.lists(st.integers(0, len(order)), max_size=4)))
    bounds = [0, *cuts, len(order)]
    batches = [list(order[a:b]) for a, b in pairwise(bounds) if a < b]
    repeats = draw(st.lists(st.sampled_from(order), max_size=4))
    if repeats:
        batches.append(repeats)
    permutation = draw(st.permutations(range(len(batches))))
    return batches, list(permutation)


async def make_account(engine: AsyncEngine) -> tuple[UUID, UUID]:
    user_id, conn_id, account_id = uuid7(), uuid7(), uuid7()
    async with SqlAlchemyUnitOfWork(engine) as uow:
        assert isinstance(
            await uow.users.add(
                User(id=user_id, email=f"{user_id.hex}@x.org", password_hash="x", created_at=NOW)
            ),
            Ok,
        )
        await uow.connections.add(
            ProviderConnection(conn_id, user_id, "fake", ConnectionStatus.ACTIVE, NOW)
        )
        await uow.accounts.add(
            Account(
                account_id, conn_id, user_id, "fake", "ACC", "A", AccountType.CHECKING, "USD", NOW
            )
        )
        await uow.commit()
    return user_id, account_id


async def ingest_in_order(
    url: str, batches: list[list[ProviderTransaction]], order: list[int]
) -> set[tuple[str, str, str | None, str | None]]:
    """Ingest ``batches`` in ``order`` (twice) into a new account; return its stored rows."""
    engine = create_engine(url)
    try:
        user_id, account_id = await make_account(engine)
        for i in order + order:
            async with engine.begin() as conn:
                result = await ingest_transactions(
                    conn,
                    user_id=user_id,
                    account_id=account_id,
                    records=batches[i],
                    rules=LINK_ONLY,
                    now=NOW,
                )
                assert isinstance(result, Ok)
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(transactions).where(transactions.c.account_id == account_id)
                )
            ).all()
    finally:
        await engine.dispose()
    key_of = {r.id: r.dedupe_key for r in rows}
    return {
        (r.dedupe_key, r.content_hash, r.removed_reason, key_of.get(r.pending_transaction_id))
        for r in rows
    }


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_any_order_converges(migrated_url: str, scenario: Any) -> None:
    batches, permutation = scenario
    natural = run(ingest_in_order(migrated_url, batches, list(range(len(batches)))))
    shuffled = run(ingest_in_order(migrated_url, batches, permutation))
    assert natural == shuffled
    # And the converged state is the right one: every posted row live, every pending settled
    # by its linked posted row, nothing duplicated.
    keys = {r.dedupe_key for b in batches for r in b}
    assert {k for k, *_ in natural} == keys
    for key, _, reason, lineage in natural:
        if key.startswith("P"):
            assert reason == "settled"
        else:
            assert reason is None
            assert lineage == ("P" + key[1:] if key.startswith("L") else None)
