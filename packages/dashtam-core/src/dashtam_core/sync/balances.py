"""Balance snapshots: one row per account and day, the newest ``as_of`` wins (sync.md rule 7).

``INSERT ... ON CONFLICT (account_id, date) DO UPDATE ... WHERE balance_snapshots.as_of <
excluded.as_of AND (current, available or currency differ)``: an older or equally old snapshot
for a day never overwrites a newer one, so overlapping statements imported in any order end with
the newest balance; and a snapshot whose amounts equal the stored ones writes nothing, even with
a later ``as_of`` (providers stamp balances with the fetch time, so an identical re-sync would
otherwise rewrite every row: sync.md rule 1). A row's ``as_of`` is therefore the time its balance
last changed, or was first seen, that day. A new day always gets its own row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dashtam_core.adapters.sqlalchemy.tables_data import balance_snapshots
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.snapshot import BalanceSnapshot
from dashtam_core.sync.upsert import insert_for


def balance_snapshot(
    account_id: UUID,
    *,
    as_of: datetime,
    current: Decimal | None,
    available: Decimal | None,
    currency: str,
    source: str = "sync",
    day: date | None = None,
) -> BalanceSnapshot:
    """Build a snapshot; ``day`` defaults to the UTC calendar date of ``as_of``."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    return BalanceSnapshot(
        id=uuid7(),
        account_id=account_id,
        date=day or as_of.astimezone(UTC).date(),
        as_of=as_of,
        current=current,
        available=available,
        currency=currency,
        source=source,
    )


async def upsert_balance_snapshots(
    conn: AsyncConnection, snapshots: Sequence[BalanceSnapshot]
) -> int:
    """Store snapshots; return rows written.

    Per account and day the latest ``as_of`` wins, but a stored row is rewritten only when
    ``current``, ``available`` or ``currency`` change (an unchanged balance keeps its ``as_of``).
    """
    newest: dict[tuple[UUID, date], BalanceSnapshot] = {}
    for s in snapshots:
        key = (s.account_id, s.date)
        if key not in newest or s.as_of > newest[key].as_of:
            newest[key] = s
    if not newest:
        return 0
    b = balance_snapshots
    ins = insert_for(conn, b)
    stmt = ins.on_conflict_do_update(
        index_elements=[b.c.account_id, b.c.date],
        set_={
            "as_of": ins.excluded.as_of,
            "current": ins.excluded.current,
            "available": ins.excluded.available,
            "currency": ins.excluded.currency,
            "source": ins.excluded.source,
        },
        where=and_(
            b.c.as_of < ins.excluded.as_of,
            or_(
                b.c.current.is_distinct_from(ins.excluded.current),
                b.c.available.is_distinct_from(ins.excluded.available),
                b.c.currency != ins.excluded.currency,
            ),
        ),
    ).returning(b.c.id)
    rows = [
        {
            "id": s.id,
            "account_id": s.account_id,
            "date": s.date,
            "as_of": s.as_of,
            "current": s.current,
            "available": s.available,
            "currency": s.currency,
            "source": s.source,
        }
        for s in newest.values()
    ]
    return len((await conn.execute(stmt, rows)).all())


async def balance_history(
    conn: AsyncConnection, account_id: UUID, start: date | None = None, end: date | None = None
) -> list[BalanceSnapshot]:
    """The account's daily series in ``[start, end]`` (inclusive), oldest first."""
    b = balance_snapshots
    stmt = select(b).where(b.c.account_id == account_id)
    if start is not None:
        stmt = stmt.where(b.c.date >= start)
    if end is not None:
        stmt = stmt.where(b.c.date <= end)
    result = await conn.execute(stmt.order_by(b.c.date))
    return [
        BalanceSnapshot(
            id=r.id,
            account_id=r.account_id,
            date=r.date,
            as_of=r.as_of,
            current=r.current,
            available=r.available,
            currency=r.currency,
            source=r.source,
        )
        for r in result
    ]


__all__ = ["balance_history", "balance_snapshot", "upsert_balance_snapshots"]
