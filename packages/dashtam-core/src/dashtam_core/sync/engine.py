"""The transactions stage of the sync engine: validate, upsert, reconcile, remove, log, publish.

Everything happens on the caller's connection inside the caller's transaction (one database
transaction per connection, account and stage: sync.md rule 2). Commit after a successful
return; on ``Err`` or an exception roll back and nothing is left behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dashtam_core.adapters.sqlalchemy.tables_data import pending_matches, transactions
from dashtam_core.domain.events import DomainEvent, PendingTransactionPosted, TransactionsChanged
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.transaction import TransactionStatus
from dashtam_core.errors import FieldError, ValidationError
from dashtam_core.ports.provider import ProviderTransaction
from dashtam_core.result import Err, Ok, Result
from dashtam_core.sync.changes import ADDED, MODIFIED, REMOVED, lock_change_feed, write_changes
from dashtam_core.sync.copyin import (
    Rejected,
    account_is_empty,
    checked_stream,
    classify,
    copy_new_transactions,
    count_live_in_window,
    log_copied_account,
)
from dashtam_core.sync.identity import checked_transactions, invalid, mixed_accounts
from dashtam_core.sync.outbox import write_events
from dashtam_core.sync.reconcile import Candidate, Match, MatchRules, match_pending
from dashtam_core.sync.upsert import (
    SETTLED,
    WITHDRAWN,
    Stored,
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


def _candidate(row: Any, touched: set[UUID] | None) -> Candidate:
    return Candidate(
        id=row.id,
        provider_transaction_id=row.provider_transaction_id,
        date=row.date,
        amount=row.amount,
        currency=row.currency,
        description=row.description,
        pending_link=row.pending_link,
        touched=touched is None or row.id in touched,
    )


async def _reconcile(
    conn: AsyncConnection,
    account_id: UUID,
    touched: set[UUID] | None,
    rules: MatchRules,
    now: datetime,
) -> list[Match]:
    """Match live pending rows with posted rows, at least one side written in this unit.

    ``touched`` is the ids written in this unit (``None``: every row of the account).
    """
    if touched is not None and not touched:
        return []
    t = transactions
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


@dataclass(slots=True)
class _Stored:
    """What the write step did: ``(id, kind)`` of every row written, in answer order."""

    entries: list[tuple[UUID, str]]
    unchanged: int
    seen: set[str]
    keys: list[str] = field(default_factory=list)  # of ``entries`` (upsert path only)
    copied: int = 0  # rows added by the first-sync COPY (logged already; all rows touched)
    window_complete: bool = False  # no live row in the window can be missing from the answer


async def _store_upserts(
    conn: AsyncConnection,
    account_id: UUID,
    pairs: list[tuple[ProviderTransaction, str]],
    now: datetime,
    batch_size: int,
    existing: dict[str, Stored] | None = None,
) -> _Stored:
    """Upsert validated ``pairs`` in batches (both databases).

    ``existing`` is the stored state of the keys when the caller has read it already.
    """
    if existing is None:
        existing = await stored_state(conn, account_id, [r.dedupe_key for r, _ in pairs])
    written: list[Written] = []
    unchanged = 0
    for i in range(0, len(pairs), batch_size):
        batch = await upsert_batch(conn, account_id, pairs[i : i + batch_size], now, existing)
        written.extend(batch.written)
        unchanged += batch.unchanged
    seen = {r.dedupe_key for r, _ in pairs}
    entries = [(w.id, w.kind) for w in written]
    return _Stored(entries, unchanged, seen, keys=[w.key for w in written])


async def _store_postgresql(
    conn: AsyncConnection,
    user_id: UUID,
    account_id: UUID,
    records: Sequence[ProviderTransaction],
    now: datetime,
    batch_size: int,
    window: DateWindow | None,
) -> _Stored | list[FieldError]:
    """PostgreSQL: ``COPY`` the rows the account does not hold yet, upsert the others.

    An empty account (a first sync) streams validation, hashing and the ``COPY`` together.
    Returns the problems instead when a record is invalid (nothing written).
    """
    if await account_is_empty(conn, account_id):
        problems = mixed_accounts(records)
        if problems:
            return checked_transactions(records)[0]
        try:
            count = await copy_new_transactions(
                conn, account_id, checked_stream(records, problems), now
            )
        except Rejected:
            return problems
        if count is not None:
            await log_copied_account(conn, user_id, account_id, now)
            # Every live row of the account now comes from this answer: none can be missing.
            return _Stored([], 0, set(), copied=count, window_complete=True)
        # A writer without the feed lock inserted keys meanwhile: the general path.
    problems, pairs = checked_transactions(records)
    if problems:
        return problems
    span = None if window is None else (window.start, window.end)
    states = await classify(conn, account_id, pairs, span)
    complete = False
    if span is not None:
        # Before any write: rows this unit writes all have keys in the answer, so a live row
        # of the window can only be missing if it is one the answer does not name, and there
        # is none when the counts agree.
        live = await count_live_in_window(conn, account_id, *span)
        complete = live == states.live_in_window
    fresh: list[tuple[ProviderTransaction, str]] = []
    known: list[tuple[ProviderTransaction, str]] = []
    for position, pair in enumerate(pairs):
        if position not in states.unchanged:
            (known if pair[0].dedupe_key in states.changed else fresh).append(pair)
    copied: list[UUID] = []
    if fresh and await copy_new_transactions(conn, account_id, fresh, now, copied) is None:
        # conflict: a writer without the lock; upsert everything
        return await _store_upserts(conn, account_id, pairs, now, batch_size)
    stage = await _store_upserts(conn, account_id, known, now, batch_size, states.changed)
    stage.unchanged += len(states.unchanged)
    stage.seen = {r.dedupe_key for r, _ in pairs}
    stage.window_complete = complete
    # Entries in answer order (as the upsert alone would have logged them).
    upserted = dict(zip(stage.keys, stage.entries, strict=True))
    new_ids = dict(zip((r.dedupe_key for r, _ in fresh), copied, strict=True))
    entries: list[tuple[UUID, str]] = []
    for r, _ in pairs:
        tx_id = new_ids.get(r.dedupe_key)
        if tx_id is not None:
            entries.append((tx_id, ADDED))
        elif (entry := upserted.get(r.dedupe_key)) is not None:
            entries.append(entry)
    stage.entries = entries
    return stage


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
    on PostgreSQL, rows for keys the account does not hold are written with a binary ``COPY``
    instead, the content comparison runs on the server (:func:`~dashtam_core.sync.copyin.classify`)
    and a first sync into an empty account streams validation, hashing and the ``COPY``
    together (see :mod:`dashtam_core.sync.copyin`);
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
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    now = now or datetime.now(UTC)
    rules = rules or MatchRules()
    pg = conn.dialect.name == "postgresql"
    if pg and records:
        await lock_change_feed(conn, user_id)
        stage = await _store_postgresql(
            conn, user_id, account_id, records, now, batch_size, window if authoritative else None
        )
    else:
        problems, pairs = checked_transactions(records)
        if problems:
            return Err(invalid(problems, "transactions"))
        await lock_change_feed(conn, user_id)
        stage = await _store_upserts(conn, account_id, pairs, now, batch_size)
    if isinstance(stage, list):
        return Err(invalid(stage, "transactions"))

    # After a first-sync COPY every row of the account was written in this unit.
    touched = None if stage.copied else {tx_id for tx_id, _ in stage.entries}
    matches = await _reconcile(conn, account_id, touched, rules, now)

    withdrawn: list[UUID] = []
    if authoritative and window is not None and stage.seen and not stage.window_complete:
        withdrawn = await missing_in_window(conn, account_id, window.start, window.end, stage.seen)
        await mark_removed(conn, withdrawn, reason=WITHDRAWN, now=now)

    entries = stage.entries
    for m in matches:
        entries.append((m.pending_id, REMOVED))
        if touched is not None and m.posted_id not in touched:
            entries.append((m.posted_id, MODIFIED))
    entries.extend((tx_id, REMOVED) for tx_id in withdrawn)
    await write_changes(conn, user_id=user_id, account_id=account_id, entries=entries, now=now)

    counts = TransactionCounts(
        added=stage.copied + sum(1 for _, k in entries if k == ADDED),
        modified=sum(1 for _, k in entries if k == MODIFIED),
        removed=sum(1 for _, k in entries if k == REMOVED),
        unchanged=stage.unchanged,
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
