"""The transactions stage of the sync engine: validate, upsert, reconcile, remove, log, publish.

Everything happens on the caller's connection inside the caller's transaction (one database
transaction per connection, account and stage: sync.md rule 2). Commit after a successful
return; on ``Err`` or an exception roll back and nothing is left behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dashtam_core.adapters.sqlalchemy.tables_data import pending_matches, transactions
from dashtam_core.domain.events import DomainEvent, PendingTransactionPosted, TransactionsChanged
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.transaction import TransactionStatus
from dashtam_core.errors import ValidationError
from dashtam_core.ports.provider import ProviderTransaction
from dashtam_core.result import Err, Ok, Result
from dashtam_core.sync.changes import ADDED, MODIFIED, REMOVED, lock_change_feed, write_changes
from dashtam_core.sync.identity import checked_transactions, invalid
from dashtam_core.sync.outbox import write_events
from dashtam_core.sync.reconcile import Candidate, Match, MatchRules, match_pending
from dashtam_core.sync.upsert import (
    SETTLED,
    WITHDRAWN,
    Written,
    mark_removed,
    missing_in_window,
    stored_state,
    upsert_batch,
)

DEFAULT_BATCH_SIZE = 1000
_PENDING = str(TransactionStatus.PENDING)
_POSTED = str(TransactionStatus.POSTED)


@dataclass(frozen=True, slots=True)
class TransactionCounts:
    """What one transactions stage did (``removed`` includes settled pending rows)."""

    added: int = 0
    modified: int = 0
    removed: int = 0
    unchanged: int = 0
    pending_matched: int = 0

    @property
    def changed(self) -> bool:
        """True when anything was written."""
        return bool(self.added or self.modified or self.removed)


@dataclass(frozen=True, slots=True)
class DateWindow:
    """The inclusive date range a provider answer covers."""

    start: date
    end: date


def _candidate(row: Any, touched: set[UUID]) -> Candidate:
    return Candidate(
        id=row.id,
        provider_transaction_id=row.provider_transaction_id,
        date=row.date,
        amount=row.amount,
        currency=row.currency,
        description=row.description,
        pending_link=row.pending_link,
        touched=row.id in touched,
    )


async def _reconcile(
    conn: AsyncConnection,
    account_id: UUID,
    written: list[Written],
    rules: MatchRules,
    now: datetime,
) -> list[Match]:
    """Match live pending rows with posted rows, at least one side written in this unit."""
    if not written:
        return []
    t = transactions
    touched = {w.id for w in written}
    cols = (
        t.c.id,
        t.c.provider_transaction_id,
        t.c.date,
        t.c.amount,
        t.c.currency,
        t.c.description,
        t.c.pending_link,
    )
    pend_rows = (
        await conn.execute(
            select(*cols).where(
                t.c.account_id == account_id, t.c.status == _PENDING, t.c.removed_at.is_(None)
            )
        )
    ).all()
    if not pend_rows:
        return []
    pendings = [_candidate(r, touched) for r in pend_rows]
    lo = min(p.date for p in pendings)
    hi = max(p.date for p in pendings) + timedelta(days=rules.max_days)
    links = [p.provider_transaction_id for p in pendings]
    post_rows = (
        await conn.execute(
            select(*cols).where(
                t.c.account_id == account_id,
                t.c.status == _POSTED,
                t.c.removed_at.is_(None),
                t.c.pending_transaction_id.is_(None),
                or_(and_(t.c.date >= lo, t.c.date <= hi), t.c.pending_link.in_(links)),
            )
        )
    ).all()
    matches = match_pending(pendings, [_candidate(r, touched) for r in post_rows], rules)
    if not matches:
        return []
    await mark_removed(conn, [m.pending_id for m in matches], reason=SETTLED, now=now)
    await conn.execute(
        update(t)
        .where(t.c.id == bindparam("b_posted"))
        .values(pending_transaction_id=bindparam("b_pending"), updated_at=now),
        [{"b_posted": m.posted_id, "b_pending": m.pending_id} for m in matches],
    )
    await conn.execute(
        insert(pending_matches),
        [
            {
                "id": uuid7(),
                "account_id": account_id,
                "pending_transaction_id": m.pending_id,
                "posted_transaction_id": m.posted_id,
                "reason": m.reason,
                "matched_at": now,
            }
            for m in matches
        ],
    )
    return matches


async def ingest_transactions(
    conn: AsyncConnection,
    *,
    user_id: UUID,
    account_id: UUID,
    records: Sequence[ProviderTransaction],
    window: DateWindow | None = None,
    authoritative: bool = False,
    rules: MatchRules | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    now: datetime | None = None,
) -> Result[TransactionCounts, ValidationError]:
    """Store one account's transactions: the whole transactions stage in the caller's transaction.

    Steps: validate every record (any defect rejects the whole answer, nothing written); take the
    user's change-feed lock; read the stored state of every key (one set-based query per 20k
    keys); upsert what changed in batches of ``batch_size`` (one multi-row statement each);
    settle pending rows (see :mod:`dashtam_core.sync.reconcile`); when ``authoritative`` and
    ``window`` is given, mark live rows dated in the window that the answer no longer contains
    as removed (an empty answer removes nothing: sync.md rule 10); append
    change-log entries for exactly the rows that changed; write ``TransactionsChanged`` and one
    ``PendingTransactionPosted`` per match to the outbox when anything changed.

    Args:
        conn: a connection inside an open transaction (``async with engine.begin() as conn``).
        user_id: the owner (the change feed and events are per user).
        account_id: the stored account the records belong to.
        records: the provider's normalized records (one provider account).
        window: the inclusive date range the answer covers.
        authoritative: whether the provider's answer for ``window`` is complete, so that a
            missing row means the provider withdrew it.
        rules: pending-matching tolerances (documented defaults when omitted).
        batch_size: rows per upsert statement.
        now: the unit's timestamp (defaults to the current UTC time).

    Returns:
        ``Ok(TransactionCounts)`` or ``Err(ValidationError)`` naming the bad fields.
    """
    problems, pairs = checked_transactions(records)
    if problems:
        return Err(invalid(problems, "transactions"))
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    now = now or datetime.now(UTC)
    rules = rules or MatchRules()
    await lock_change_feed(conn, user_id)

    existing = await stored_state(conn, account_id, [r.dedupe_key for r, _ in pairs])
    written: list[Written] = []
    unchanged = 0
    for i in range(0, len(pairs), batch_size):
        batch = await upsert_batch(conn, account_id, pairs[i : i + batch_size], now, existing)
        written.extend(batch.written)
        unchanged += batch.unchanged

    matches = await _reconcile(conn, account_id, written, rules, now)

    withdrawn: list[UUID] = []
    if authoritative and window is not None and pairs:
        seen = {r.dedupe_key for r, _ in pairs}
        withdrawn = await missing_in_window(conn, account_id, window.start, window.end, seen)
        await mark_removed(conn, withdrawn, reason=WITHDRAWN, now=now)

    entries: list[tuple[UUID, str]] = [(w.id, w.kind) for w in written]
    touched = {w.id for w in written}
    for m in matches:
        entries.append((m.pending_id, REMOVED))
        if m.posted_id not in touched:
            entries.append((m.posted_id, MODIFIED))
    entries.extend((tx_id, REMOVED) for tx_id in withdrawn)
    await write_changes(conn, user_id=user_id, account_id=account_id, entries=entries, now=now)

    counts = TransactionCounts(
        added=sum(1 for _, k in entries if k == ADDED),
        modified=sum(1 for _, k in entries if k == MODIFIED),
        removed=sum(1 for _, k in entries if k == REMOVED),
        unchanged=unchanged,
        pending_matched=len(matches),
    )
    if counts.changed:
        events: list[DomainEvent] = [
            TransactionsChanged(
                user_id=user_id,
                occurred_at=now,
                account_id=account_id,
                added=counts.added,
                modified=counts.modified,
                removed=counts.removed,
            )
        ]
        events.extend(
            PendingTransactionPosted(
                user_id=user_id,
                occurred_at=now,
                account_id=account_id,
                pending_transaction_id=m.pending_id,
                posted_transaction_id=m.posted_id,
                reason=m.reason,
            )
            for m in matches
        )
        await write_events(conn, events, now=now)
    return Ok(counts)


__all__ = ["DEFAULT_BATCH_SIZE", "DateWindow", "TransactionCounts", "ingest_transactions"]
