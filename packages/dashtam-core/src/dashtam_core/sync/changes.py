"""The change log and the change feed (``GET /api/v1/transactions/changes``).

Ordering guarantee (sync.md rule 12). A plain autoincrement is not enough on PostgreSQL: two
transactions may draw seq 10 and 11, and 11 may commit first; a reader that saw 11 and stored it
as its cursor would never see 10. Dashtam therefore takes a **per-user transaction-scoped
advisory lock** (``pg_advisory_xact_lock(namespace, hash(user_id))``) before a unit of work
writes any change-log row for that user. The lock is held until commit and PostgreSQL releases
it only after the commit is visible, so for each user seq order equals commit order, and the
feed (which is per user) never skips an entry. Writers for different users do not wait for each
other; a hash collision between two users only costs some extra waiting. The lock is taken at
the start of the transactions stage (before any row lock), so two syncs of the same user queue
instead of deadlocking. SQLite serializes writers itself, so nothing is needed there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dashtam_core.adapters.sqlalchemy.tables_data import change_log, transactions
from dashtam_core.domain.transaction import Transaction
from dashtam_core.sync.bulk import copy_rows, unnest_select
from dashtam_core.sync.rows import transaction_from_row

ADDED = "added"
MODIFIED = "modified"
REMOVED = "removed"

#: First key of the two-int advisory lock ("DSHT"), so other features can pick other spaces.
CHANGE_FEED_LOCK_NAMESPACE = 0x44534854
_IN_CHUNK = 500
_LOG_COLUMNS = ("user_id", "account_id", "transaction_id", "kind", "created_at")
_COPY_FROM = 2000  # entries from which COPY beats one INSERT ... SELECT FROM unnest


def user_lock_key(user_id: UUID) -> int:
    """The signed 32-bit second key of the user's change-feed advisory lock."""
    return int.from_bytes(user_id.bytes[-4:], "big", signed=True)


async def lock_change_feed(conn: AsyncConnection, user_id: UUID) -> None:
    """Serialize change-log writers of ``user_id`` until the current transaction ends.

    Call inside the transaction, before writing rows whose changes will be logged. A no-op on
    databases that serialize writers themselves (SQLite). Re-entrant within one transaction.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(
            select(func.pg_advisory_xact_lock(CHANGE_FEED_LOCK_NAMESPACE, user_lock_key(user_id)))
        )


async def write_changes(
    conn: AsyncConnection,
    *,
    user_id: UUID,
    account_id: UUID,
    entries: Sequence[tuple[UUID, str]],
    now: datetime,
) -> int:
    """Append ``(transaction_id, kind)`` entries in order (one statement); return the count.

    PostgreSQL: one ``INSERT ... SELECT FROM unnest``, or a binary ``COPY`` for long lists.

    The caller must hold :func:`lock_change_feed` for ``user_id`` (the engine does).
    """
    if not entries:
        return 0
    pg = conn.dialect.name == "postgresql"
    if pg and len(entries) >= _COPY_FROM:
        # Binary COPY: rows are inserted in order, so seq follows ``entries``.
        tuples = ((user_id, account_id, tx_id, kind, now) for tx_id, kind in entries)
        await copy_rows(conn, change_log.name, _LOG_COLUMNS, tuples)
        return len(entries)
    rows = [
        {
            "user_id": user_id,
            "account_id": account_id,
            "transaction_id": tx_id,
            "kind": kind,
            "created_at": now,
        }
        for tx_id, kind in entries
    ]
    if pg:
        # One statement; rows come out of unnest in order, so seq follows ``entries``.
        names = list(rows[0])
        await conn.execute(
            insert(change_log).from_select(names, unnest_select(change_log, names, rows))
        )
    else:
        await conn.execute(insert(change_log), rows)
    return len(entries)


@dataclass(frozen=True, slots=True)
class ChangePage:
    """One page of the change feed.

    ``added`` and ``modified`` carry the transactions' current state; a transaction appears once
    per page, in the list of its net change (removed wins; else added if it was added within the
    page; else modified). ``next_cursor`` is always set: pass it back to continue.
    """

    added: list[Transaction] = field(default_factory=list)
    modified: list[Transaction] = field(default_factory=list)
    removed: list[UUID] = field(default_factory=list)
    next_cursor: int = 0
    has_more: bool = False


async def changes_since(
    conn: AsyncConnection, user_id: UUID, cursor: int | None, limit: int = 100
) -> ChangePage:
    """Every change of ``user_id``'s transactions after ``cursor``, in commit order.

    Args:
        conn: a connection (any isolation level; one statement reads the log page).
        user_id: whose feed.
        cursor: the ``next_cursor`` of the previous page; ``None`` or 0 starts at the beginning.
        limit: maximum change-log entries in this page (at least 1).

    Returns:
        The page; ``has_more`` tells whether another page is ready now.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    start = cursor or 0
    rows = (
        await conn.execute(
            select(change_log.c.seq, change_log.c.transaction_id, change_log.c.kind)
            .where(change_log.c.user_id == user_id, change_log.c.seq > start)
            .order_by(change_log.c.seq)
            .limit(limit + 1)
        )
    ).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    if not rows:
        return ChangePage(next_cursor=start)
    order: list[UUID] = []
    kinds: dict[UUID, list[str]] = {}
    for _seq, tx_id, kind in rows:
        if tx_id not in kinds:
            order.append(tx_id)
            kinds[tx_id] = []
        kinds[tx_id].append(kind)
    removed = [t for t in order if kinds[t][-1] == REMOVED]
    live = [t for t in order if kinds[t][-1] != REMOVED]
    found: dict[UUID, Transaction] = {}
    for i in range(0, len(live), _IN_CHUNK):
        chunk = live[i : i + _IN_CHUNK]
        result = await conn.execute(select(transactions).where(transactions.c.id.in_(chunk)))
        for row in result:
            tx = transaction_from_row(row)
            found[tx.id] = tx
    added = [found[t] for t in live if ADDED in kinds[t] and t in found]
    modified = [found[t] for t in live if ADDED not in kinds[t] and t in found]
    return ChangePage(
        added=added,
        modified=modified,
        removed=removed,
        next_cursor=int(rows[-1][0]),
        has_more=has_more,
    )


__all__ = [
    "ADDED",
    "CHANGE_FEED_LOCK_NAMESPACE",
    "MODIFIED",
    "REMOVED",
    "ChangePage",
    "changes_since",
    "lock_change_feed",
    "user_lock_key",
    "write_changes",
]
