"""PostgreSQL fast paths of the transactions stage: ``COPY`` new rows, compare on the server.

Rows whose key the account does not hold yet (the whole answer on a first sync) do not need
``ON CONFLICT``: the engine holds the user's change-feed advisory lock, which every transactions
writer takes before reading the stored state, so nobody else can insert those keys meanwhile.
They are streamed with ``COPY ... FROM STDIN (FORMAT binary)`` (asyncpg's
``copy_records_to_table``) on the caller's connection, inside the caller's transaction, in a
savepoint. The rows are produced lazily, so validation, hashing and id generation in Python
overlap with the server inserting the rows already sent.

* A validation problem found while streaming aborts the ``COPY``: the savepoint is rolled back
  and :class:`Rejected` is raised (nothing written).
* A unique-key conflict (a writer that did not take the lock) rolls the savepoint back and
  :func:`copy_new_transactions` returns ``None``; the engine then falls back to the
  ``ON CONFLICT`` upsert.

For accounts that hold rows already, :func:`classify` compares the answer's content hashes with
the stored ones on the server and returns only what needs writing, and the engine asks for
withdrawn rows only when the live rows dated in the window outnumber those
the answer names: an identical re-sync moves a few integers instead of every stored row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    String,
    bindparam,
    column,
    exists,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from dashtam_core.adapters.sqlalchemy.base import UTCDateTime, UUIDType
from dashtam_core.adapters.sqlalchemy.tables_data import transactions
from dashtam_core.domain.ids import uuid7_batch
from dashtam_core.errors import FieldError
from dashtam_core.ports.provider import ProviderTransaction
from dashtam_core.sync.bulk import copy_rows, driver_uuid
from dashtam_core.sync.changes import ADDED
from dashtam_core.sync.identity import iter_checked
from dashtam_core.sync.upsert import SETTLED, Stored

#: The ``transactions`` columns a new row gets, in :class:`TransactionRows` order.
COPY_COLUMNS = (
    "id",
    "account_id",
    "provider_transaction_id",
    "dedupe_key",
    "date",
    "posted_at",
    "amount",
    "currency",
    "description",
    "merchant",
    "type",
    "subtype",
    "status",
    "pending_link",
    "security_symbol",
    "security_quantity",
    "security_price",
    "security_asset_type",
    "fees",
    "content_hash",
    "created_at",
    "updated_at",
)
_ID_CHUNK = 1024
_STATE_CHUNK = 20000


class Rejected(Exception):
    """Raised when a streamed record fails validation (the ``COPY`` was rolled back)."""


async def account_is_empty(conn: AsyncConnection, account_id: UUID) -> bool:
    """True when the account holds no transaction row at all (removed ones count)."""
    t = transactions
    stmt = select(exists().where(t.c.account_id == account_id))
    return not bool((await conn.execute(stmt)).scalar_one())


class TransactionRows:
    """``COPY`` tuples (:data:`COPY_COLUMNS`) for ``(record, content_hash)`` pairs, lazily.

    Fresh UUIDv7s are drawn in chunks; they are appended to ``ids`` in row order when a list is
    given (else dropped right after encoding). ``count`` says how many rows were produced. Enum
    members go to the driver as they are (``StrEnum``: their text is their value).
    """

    def __init__(
        self,
        account_id: UUID,
        pairs: Iterable[tuple[ProviderTransaction, str]],
        now: datetime,
        ids: list[UUID] | None = None,
    ) -> None:
        self.account_id = account_id
        self.pairs = pairs
        self.now = now
        self.ids = ids
        self.count = 0

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        account_id, now, keep = driver_uuid(self.account_id), self.now, self.ids
        fresh: list[UUID] = []
        index = 0
        for r, digest in self.pairs:
            if index == len(fresh):
                fresh = uuid7_batch(_ID_CHUNK)
                index = 0
            tx_id = fresh[index]
            index += 1
            if keep is not None:
                keep.append(tx_id)
            self.count += 1
            sec = r.security
            if sec is None:
                symbol = quantity = price = asset_type = None
            else:
                symbol, quantity, price = sec.symbol, sec.quantity, sec.price
                asset_type = sec.asset_type
            yield (
                tx_id,
                account_id,
                r.provider_transaction_id,
                r.dedupe_key,
                r.date,
                r.posted_at,
                r.amount,
                r.currency,
                r.description,
                r.merchant,
                r.type,
                r.subtype,
                r.status,
                r.pending_link,
                symbol,
                quantity,
                price,
                asset_type,
                r.fees,
                digest,
                now,
                now,
            )


def checked_stream(
    records: Sequence[ProviderTransaction], errors: list[FieldError]
) -> Iterator[tuple[ProviderTransaction, str]]:
    """:func:`~dashtam_core.sync.identity.iter_checked` that raises :class:`Rejected` at the end
    if any record was invalid (so a ``COPY`` consuming it aborts)."""
    yield from iter_checked(records, errors)
    if errors:
        raise Rejected(f"{len(errors)} invalid field(s)")


async def copy_new_transactions(
    conn: AsyncConnection,
    account_id: UUID,
    pairs: Iterable[tuple[ProviderTransaction, str]],
    now: datetime,
    ids: list[UUID] | None = None,
) -> int | None:
    """Insert rows for records whose key the account does not hold.

    Args:
        conn: the caller's PostgreSQL connection (see :func:`~dashtam_core.sync.bulk.copy_rows`).
        account_id: the stored account.
        pairs: validated ``(record, content_hash)`` pairs (may raise :class:`Rejected`).
        now: ``created_at`` / ``updated_at``.
        ids: receives the new rows' ids in row order, when given.

    Returns:
        How many rows were copied, or ``None`` after a unique-key conflict (nothing written).

    Raises:
        Rejected: when ``pairs`` raised it (nothing written).
    """
    rows = TransactionRows(account_id, pairs, now, ids)
    if not await copy_rows(conn, transactions.name, COPY_COLUMNS, rows):
        return None
    return rows.count


@dataclass(frozen=True, slots=True)
class KeyStates:
    """How an answer's keys stand against the stored rows (see :func:`classify`)."""

    unchanged: frozenset[int]  # positions (0-based) of records stored with the same content
    changed: dict[str, Stored]  # stored keys whose content differs, or that were removed
    live_in_window: int  # stored rows among the answer's keys, live and dated in the window


# One index probe per key (LATERAL with LIMIT is not flattened into a join whose method would
# depend on statistics a freshly loaded table does not have yet).
_CLASSIFY = text(
    """
    WITH j AS MATERIALIZED (
        SELECT s.ord, s.key, t.content_hash, t.removed_at IS NOT NULL AS removed,
               t.removed_reason,
               (t.content_hash = s.hash AND t.removed_at IS NULL)
               OR coalesce(t.removed_reason = :settled, false) AS same,
               t.removed_at IS NULL AND t.date >= :start AND t.date <= :end AS live_in_window
        FROM unnest(CAST(:keys AS text[]), CAST(:hashes AS text[])) WITH ORDINALITY
             AS s(key, hash, ord)
        CROSS JOIN LATERAL (
            SELECT x.content_hash, x.removed_at, x.removed_reason, x.date
            FROM transactions AS x
            WHERE x.account_id = :account_id AND x.dedupe_key = s.key
            LIMIT 1
        ) AS t
    )
    SELECT NULL AS key, NULL AS content_hash, NULL AS removed, NULL AS removed_reason,
           (SELECT array_agg(ord) FROM j WHERE same) AS same_positions,
           (SELECT count(*) FROM j WHERE live_in_window) AS live_in_window
    UNION ALL
    SELECT key, content_hash, removed, removed_reason, NULL, NULL FROM j WHERE NOT same
    """
).columns(
    column("key", String()),
    column("content_hash", String()),
    column("removed", Boolean()),
    column("removed_reason", String()),
    column("same_positions", postgresql.ARRAY(BigInteger())),
    column("live_in_window", BigInteger()),
)


async def classify(
    conn: AsyncConnection,
    account_id: UUID,
    pairs: Sequence[tuple[ProviderTransaction, str]],
    window: tuple[date, date] | None = None,
) -> KeyStates:
    """Compare ``(record, content_hash)`` pairs with the stored rows, on the server.

    Only what needs writing comes back: the positions of unchanged records (one integer array;
    a settled row counts as unchanged, it is frozen), the stored state of changed or removed
    keys (keys in neither are new), and how many of the stored rows are live and dated in
    ``window``. One statement per 20k keys.
    """
    start, end = window if window is not None else (None, None)
    unchanged: set[int] = set()
    changed: dict[str, Stored] = {}
    live = 0
    for first in range(0, len(pairs), _STATE_CHUNK):
        chunk = pairs[first : first + _STATE_CHUNK]
        params = {
            "keys": [r.dedupe_key for r, _ in chunk],
            "hashes": [digest for _, digest in chunk],
            "account_id": account_id,
            "settled": SETTLED,
            "start": start,
            "end": end,
        }
        rows = await conn.execute(_CLASSIFY, params)
        for key, digest, removed, reason, same, in_window in rows:
            if key is None:
                unchanged.update(first + position - 1 for position in same or ())
                live += int(in_window or 0)
            else:
                changed[key] = Stored(digest, bool(removed), reason)
    return KeyStates(frozenset(unchanged), changed, live)


async def count_live_in_window(
    conn: AsyncConnection, account_id: UUID, start: date, end: date
) -> int:
    """How many live rows of the account are dated in ``[start, end]`` (an index range)."""
    t = transactions
    stmt = select(func.count()).where(
        t.c.account_id == account_id, t.c.removed_at.is_(None), t.c.date >= start, t.c.date <= end
    )
    return int((await conn.execute(stmt)).scalar_one())


_LOG_ACCOUNT = text(
    """
    INSERT INTO change_log (user_id, account_id, transaction_id, kind, created_at)
    SELECT CAST(:user_id AS uuid), CAST(:account_id AS uuid), t.id, CAST(:kind AS varchar),
           CAST(:now AS timestamptz)
    FROM transactions AS t
    WHERE t.account_id = :account_id ORDER BY t.id
    """
).bindparams(
    bindparam("user_id", type_=UUIDType()),
    bindparam("account_id", type_=UUIDType()),
    bindparam("now", type_=UTCDateTime()),
)


async def log_copied_account(
    conn: AsyncConnection, user_id: UUID, account_id: UUID, now: datetime
) -> None:
    """Log every row of an account that was empty before this unit's ``COPY`` as ``added``.

    Server-side ``INSERT ... SELECT`` in id order, which is the copy order (the ids are
    UUIDv7s drawn in row order). Only valid right after :func:`copy_new_transactions` into an
    account :func:`account_is_empty` reported empty, under the user's feed lock.
    """
    params = {"user_id": user_id, "account_id": account_id, "kind": ADDED, "now": now}
    await conn.execute(_LOG_ACCOUNT, params)


__all__ = [
    "COPY_COLUMNS",
    "KeyStates",
    "Rejected",
    "TransactionRows",
    "account_is_empty",
    "checked_stream",
    "classify",
    "copy_new_transactions",
    "log_copied_account",
    "count_live_in_window",
]
